#!/usr/bin/env python3
"""Write a directory tree as a cpio "newc" archive (the initramfs format
Linux unpacks: Documentation/driver-api/early-userspace/buffer-format.rst)
to stdout.

Deterministic: entries sorted, owner root, mtime 0. Adds /dev/console
(character device 5:1) so that the kernel can open the console for /init
before devtmpfs is mounted; no root rights are needed to write it.
"""
import os
import stat
import sys

NEWC_MAGIC = b"070701"


def header(ino, mode, nlink, size, rdev_major, rdev_minor, name):
    fields = [ino, mode, 0, 0, nlink, 0, size, 0, 0, rdev_major, rdev_minor, len(name) + 1, 0]
    return NEWC_MAGIC + b"".join(b"%08X" % f for f in fields)


def pad4(n):
    return (4 - n % 4) % 4


def entry(out, ino, mode, name, data=b"", nlink=1, rdev=(0, 0)):
    name_b = name.encode()
    h = header(ino, mode, nlink, len(data), rdev[0], rdev[1], name_b)
    out.write(h + name_b + b"\0")
    out.write(b"\0" * pad4(len(h) + len(name_b) + 1))
    out.write(data)
    out.write(b"\0" * pad4(len(data)))


def main():
    root = sys.argv[1]
    out = sys.stdout.buffer
    paths = []
    for dirpath, dirnames, filenames in os.walk(root):
        for n in dirnames + filenames:
            paths.append(os.path.relpath(os.path.join(dirpath, n), root))
    ino = 1
    for rel in sorted(paths):
        full = os.path.join(root, rel)
        st = os.lstat(full)
        perm = stat.S_IMODE(st.st_mode)
        if stat.S_ISLNK(st.st_mode):
            entry(out, ino, stat.S_IFLNK | 0o777, rel, os.readlink(full).encode())
        elif stat.S_ISDIR(st.st_mode):
            entry(out, ino, stat.S_IFDIR | perm, rel, nlink=2)
        elif stat.S_ISREG(st.st_mode):
            with open(full, "rb") as f:
                entry(out, ino, stat.S_IFREG | perm, rel, f.read())
        else:
            sys.exit(f"mkcpio: {rel}: not a file, directory or symlink")
        ino += 1
    entry(out, ino, stat.S_IFCHR | 0o600, "dev/console", rdev=(5, 1))
    entry(out, 0, 0, "TRAILER!!!")


if __name__ == "__main__":
    main()
