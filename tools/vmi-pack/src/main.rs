//! `vmi-pack`: files for the PV loader (docs/boot-contract.md).
//!
//! - `bundle KERNEL [INITRD] -o OUT`: one module holding a kernel and its
//!   initrd (xen_vmi_rom::bundle), for `xl`'s `ramdisk=` or a dom0's second
//!   multiboot module: Xen passes the PV image exactly one module.
//! - `bzimage ELF -o OUT`: a bzImage from an i386 kernel ELF linked with its
//!   real-mode setup at 0 (a segment below 1 MiB whose bytes carry the
//!   setup header) and its protected-mode part at 1 MiB: the setup padded
//!   to whole sectors, the protected-mode segments laid out flat from
//!   `code32_start`, and the header's `setup_sects`, `syssize` and
//!   `init_size` filled (the generic VMI guest's bzImage packaging).
//! - `show FILE`: what the loader sees in FILE (bundle parts, kernel kind,
//!   boot protocol, entry, segments, setup header), or why it refuses it,
//!   in the loader's words.

use std::process::ExitCode;

use xen_vmi_rom::bundle;
use xen_vmi_rom::kernel_image::{self, BootProtocol, ImageKind, KernelImage};
use xen_vmi_rom::linux_boot::{self, offset, SetupHeader};

mod bzimage;

const USAGE: &str = "usage: vmi-pack bundle KERNEL [INITRD] -o OUT\n       vmi-pack bzimage ELF -o OUT\n       vmi-pack show FILE";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let result = match args[..] {
        ["bundle", kernel, "-o", out] => make_bundle(kernel, None, out),
        ["bundle", kernel, initrd, "-o", out] => make_bundle(kernel, Some(initrd), out),
        ["bzimage", elf, "-o", out] => make_bzimage(elf, out),
        ["show", file] => show(file),
        _ => Err(USAGE.to_string()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("vmi-pack: {e}");
            ExitCode::FAILURE
        }
    }
}

fn read(path: &str) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("{path}: {e}"))
}

fn write(path: &str, bytes: &[u8]) -> Result<(), String> {
    let tmp = format!("{path}.tmp");
    std::fs::write(&tmp, bytes)
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|e| format!("{path}: {e}"))
}

/// The kernel the loader would start from `bytes`, or its message.
fn parse_kernel(what: &str, bytes: &[u8]) -> Result<KernelImage, String> {
    kernel_image::parse(bytes).map_err(|e| {
        format!(
            "{what} ({} bytes) is not a kernel the loader can start: {} ({e:?})",
            bytes.len(),
            e.describe()
        )
    })
}

fn make_bundle(kernel: &str, initrd: Option<&str>, out: &str) -> Result<(), String> {
    let k = read(kernel)?;
    parse_kernel(kernel, &k)?;
    let rd = initrd.map(read).transpose()?.unwrap_or_default();
    if initrd.is_some() && rd.is_empty() {
        return Err(format!("{}: an empty initrd", initrd.unwrap_or("")));
    }
    let too_big = || format!("{kernel} and its initrd do not fit in a 4 GiB bundle");
    let k_len = u32::try_from(k.len()).map_err(|_| too_big())?;
    let rd_len = u32::try_from(rd.len()).map_err(|_| too_big())?;
    let layout = bundle::header(k_len, rd_len).ok_or_else(too_big)?;
    let mut b = vec![0u8; layout.total as usize];
    b[..bundle::HEADER_SIZE].copy_from_slice(&layout.header);
    let ko = layout.kernel_offset as usize;
    b[ko..ko + k.len()].copy_from_slice(&k);
    if !rd.is_empty() {
        let ro = layout.initrd_offset as usize;
        b[ro..ro + rd.len()].copy_from_slice(&rd);
    }
    // What the loader will see, checked before anyone boots it.
    let parts = bundle::unpack(&b).map_err(|e| format!("the bundle does not read back: {e:?}"))?;
    assert_eq!(parts.kernel, &k[..]);
    write(out, &b)?;
    println!(
        "vmi-pack: {out}: kernel {} bytes at {:#x}{}",
        k.len(),
        layout.kernel_offset,
        if rd.is_empty() {
            String::new()
        } else {
            format!(", initrd {} bytes at {:#x}", rd.len(), layout.initrd_offset)
        }
    );
    Ok(())
}

fn make_bzimage(elf: &str, out: &str) -> Result<(), String> {
    let bytes = read(elf)?;
    let image = parse_kernel(elf, &bytes)?;
    if image.kind != ImageKind::Elf {
        return Err(format!("{elf}: not an ELF kernel"));
    }
    let bz = bzimage::build(&bytes, image.segments()).map_err(|e| format!("{elf}: {e}"))?;
    // The loader's own parser must take the result as a bzImage entered
    // where the ELF says.
    let back = parse_kernel(out, &bz)?;
    if back.kind != ImageKind::BzImage || back.entry != image.entry {
        return Err(format!(
            "{out}: reads back as {:?} with entry {:#x}, not a bzImage entered at {:#x}",
            back.kind, back.entry, image.entry
        ));
    }
    write(out, &bz)?;
    let h = back.setup.expect("a bzImage has a setup header");
    println!(
        "vmi-pack: {out}: bzImage, protocol {}.{:02}, {} setup bytes, {} bytes of protected-mode code at {:#x}, init_size {:#x}",
        h.version >> 8,
        h.version & 0xFF,
        h.setup_len,
        h.payload_len,
        h.code32_start,
        h.init_size
    );
    Ok(())
}

fn show(file: &str) -> Result<(), String> {
    let bytes = read(file)?;
    let parts = bundle::unpack(&bytes).map_err(|e| {
        format!(
            "{file}: a kernel+initrd bundle the loader cannot use: {} ({e:?})",
            e.describe()
        )
    })?;
    if bundle::is_bundle(&bytes) {
        println!(
            "{file}: bundle: kernel {} bytes, initrd {}",
            parts.kernel.len(),
            parts
                .initrd
                .map_or("none".to_string(), |r| format!("{} bytes", r.len()))
        );
    }
    let k = parse_kernel(file, parts.kernel)?;
    let protocol = match k.protocol() {
        BootProtocol::Multiboot => "multiboot",
        BootProtocol::Linux32 => "Linux 32-bit boot protocol",
    };
    println!(
        "{file}: {:?} kernel, {protocol}, entry {:#x}, memory to {:#x}",
        k.kind,
        k.entry,
        k.memory_end()
    );
    for s in k.segments() {
        println!(
            "  segment: file {:#x}+{:#x} -> {:#x}+{:#x}",
            s.file_offset, s.file_len, s.phys, s.mem_len
        );
    }
    if let Some(h) = k.setup {
        let SetupHeader {
            version,
            loadflags,
            initrd_addr_max,
            cmdline_size,
            ..
        } = h;
        let kernel = parts.kernel;
        let u16_at = |o: usize| u16::from_le_bytes([kernel[o], kernel[o + 1]]);
        println!(
            "  setup header: protocol {}.{:02}, loadflags {loadflags:#x}, initrd_addr_max {initrd_addr_max:#x}, cmdline_size {cmdline_size}, vid_mode {:#x}",
            version >> 8,
            version & 0xFF,
            u16_at(offset::VID_MODE)
        );
        let kv = usize::from(u16_at(0x20E)) + 0x200;
        if u16_at(0x20E) != 0 && kv < kernel.len() {
            let end = kernel[kv..].iter().position(|&b| b == 0).unwrap_or(0);
            println!(
                "  kernel_version: {}",
                String::from_utf8_lossy(&kernel[kv..kv + end.min(200)])
            );
        }
        debug_assert!(linux_boot::has_setup_header(kernel));
    }
    Ok(())
}
