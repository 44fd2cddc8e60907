//! A cpio "newc" archive writer: the format Linux unpacks as an initramfs
//! (the kernel's early-userspace buffer format). The runner appends one to
//! the cached dom0 initramfs to hand a run's files to dom0; Linux unpacks
//! concatenated archives one after the other, a later one adding files.

/// An archive being built in memory.
#[derive(Default)]
pub struct Archive {
    bytes: Vec<u8>,
    next_ino: u32,
}

const MODE_DIR: u32 = 0o040_000;
const MODE_FILE: u32 = 0o100_000;

impl Archive {
    pub fn new() -> Self {
        Self {
            bytes: Vec::new(),
            next_ino: 1,
        }
    }

    fn entry(&mut self, mode: u32, name: &str, data: &[u8]) {
        let ino = self.next_ino;
        self.next_ino += 1;
        let nlink = if mode & MODE_DIR != 0 { 2 } else { 1 };
        // c_magic, then 13 eight-digit hex fields: ino, mode, uid, gid,
        // nlink, mtime, filesize, devmajor, devminor, rdevmajor,
        // rdevminor, namesize (with its NUL), check.
        let fields = [
            ino,
            mode,
            0,
            0,
            nlink,
            0,
            u32::try_from(data.len()).expect("a job file under 4 GiB"),
            0,
            0,
            0,
            0,
            u32::try_from(name.len() + 1).expect("short name"),
            0,
        ];
        self.bytes.extend_from_slice(b"070701");
        for f in fields {
            self.bytes.extend_from_slice(format!("{f:08X}").as_bytes());
        }
        self.bytes.extend_from_slice(name.as_bytes());
        self.bytes.push(0);
        self.pad();
        self.bytes.extend_from_slice(data);
        self.pad();
    }

    /// Header and data each start on a 4-byte boundary.
    fn pad(&mut self) {
        while !self.bytes.len().is_multiple_of(4) {
            self.bytes.push(0);
        }
    }

    pub fn dir(&mut self, name: &str) {
        self.entry(MODE_DIR | 0o755, name, &[]);
    }

    pub fn file(&mut self, name: &str, data: &[u8], executable: bool) {
        let perm = if executable { 0o755 } else { 0o644 };
        self.entry(MODE_FILE | perm, name, data);
    }

    /// The archive with its trailer.
    pub fn finish(mut self) -> Vec<u8> {
        self.entry(0, "TRAILER!!!", &[]);
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads the archive back: (name, mode, data) per entry.
    fn parse(mut b: &[u8]) -> Vec<(String, u32, Vec<u8>)> {
        let mut out = Vec::new();
        let total = b.len();
        loop {
            assert_eq!(&b[..6], b"070701");
            let field = |i: usize| {
                u32::from_str_radix(std::str::from_utf8(&b[6 + 8 * i..14 + 8 * i]).unwrap(), 16)
                    .unwrap()
            };
            let mode = field(1);
            let size = field(6) as usize;
            let namesize = field(11) as usize;
            let name = std::str::from_utf8(&b[110..110 + namesize - 1])
                .unwrap()
                .to_string();
            assert_eq!(b[110 + namesize - 1], 0);
            let data_at = (110 + namesize).next_multiple_of(4);
            let data = b[data_at..data_at + size].to_vec();
            let next = (data_at + size).next_multiple_of(4);
            assert_eq!((total - b.len() + next) % 4, 0);
            b = &b[next..];
            if name == "TRAILER!!!" {
                assert!(b.is_empty());
                return out;
            }
            out.push((name, mode, data));
        }
    }

    #[test]
    fn round_trips_dirs_and_files() {
        let mut a = Archive::new();
        a.dir("job");
        a.file("job/run.sh", b"echo hi\n", true);
        a.file("job/k/x", &[1, 2, 3, 4, 5], false);
        a.file("job/empty", b"", false);
        let bytes = a.finish();
        assert_eq!(bytes.len() % 4, 0);
        let entries = parse(&bytes);
        assert_eq!(
            entries,
            vec![
                ("job".into(), 0o040_755, vec![]),
                ("job/run.sh".into(), 0o100_755, b"echo hi\n".to_vec()),
                ("job/k/x".into(), 0o100_644, vec![1, 2, 3, 4, 5]),
                ("job/empty".into(), 0o100_644, vec![]),
            ]
        );
    }
}
