//! `rom-inspect`: the post-link checks and the finishing of the VMI ROM.
//!
//! - `check-relocs ROM.elf`: the ROM runs wherever the kernel maps it, so
//!   nothing in it may need fixing up. ld keeps every input relocation
//!   (`--emit-relocs`); each one that lands in the ROM must be relative to
//!   the place or to the GOT (which moves with the code). An absolute one
//!   (a pointer in a static, a GOT slot) fails the build, naming the symbol.
//! - `finalize RAW OUT`: sets the length (option-ROM byte 2 and the PCI
//!   header's chunk count), pads to 512 bytes, fixes the checksum, and
//!   validates the result the way Linux's probe does.
//! - `show ROM`: prints what a kernel's probe would see.

use std::process::ExitCode;

use object::elf;
use object::read::elf::{ElfFile32, FileHeader, Rel, SectionHeader, Sym};
use object::Endianness;

mod relocs;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["check-relocs", elf_path] => check_relocs(elf_path),
        ["finalize", raw, out] => finalize(raw, out),
        ["show", rom] => show(rom),
        _ => Err("usage: rom-inspect check-relocs ROM.elf | finalize RAW OUT | show ROM".into()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rom-inspect: {e}");
            ExitCode::FAILURE
        }
    }
}

fn read(path: &str) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("{path}: {e}"))
}

fn check_relocs(path: &str) -> Result<(), String> {
    let data = read(path)?;
    let file = ElfFile32::<Endianness>::parse(&*data).map_err(|e| format!("{path}: {e}"))?;
    let endian = file.endian();
    let header = file.elf_header();
    let sections = header
        .sections(endian, &*data)
        .map_err(|e| format!("{path}: {e}"))?;
    let symbols = sections
        .symbols(endian, &*data, elf::SHT_SYMTAB)
        .map_err(|e| format!("{path}: {e}"))?;
    let mut checked = 0usize;
    let mut bad = Vec::new();
    for (index, section) in sections.iter().enumerate() {
        if section.sh_type(endian) != elf::SHT_REL {
            continue;
        }
        let target = sections
            .section(object::SectionIndex(section.sh_info(endian) as usize))
            .map_err(|e| format!("{path}: {e}"))?;
        let target_name = sections
            .section_name(endian, target)
            .map(|n| String::from_utf8_lossy(n).into_owned())
            .unwrap_or_default();
        if target.sh_flags(endian) & elf::SHF_ALLOC == 0 {
            continue;
        }
        let rels = section
            .data_as_array::<elf::Rel32<Endianness>, _>(endian, &*data)
            .map_err(|e| format!("{path}: section {index}: {e}"))?;
        for rel in rels {
            checked += 1;
            let kind = rel.r_type(endian);
            if relocs::position_independent(kind) {
                continue;
            }
            let sym = symbols
                .symbol(object::SymbolIndex(rel.r_sym(endian) as usize))
                .ok()
                .and_then(|s| s.name(endian, symbols.strings()).ok())
                .map(|n| String::from_utf8_lossy(n).into_owned())
                .unwrap_or_else(|| "?".into());
            bad.push(format!(
                "{target_name}+{:#x}: {} against {sym}",
                rel.r_offset(endian),
                relocs::name(kind)
            ));
        }
    }
    if checked == 0 {
        return Err(format!(
            "{path}: no relocations kept: was it linked with --emit-relocs?"
        ));
    }
    if !bad.is_empty() {
        for b in &bad {
            eprintln!("rom-inspect: {path}: needs a fix-up: {b}");
        }
        return Err(format!(
            "{path}: {} of {checked} relocations are absolute: the ROM would break \
             when the kernel maps it anywhere but its link address",
            bad.len()
        ));
    }
    // Writable data is kept out by rom.ld (its .data must be empty): a
    // static with interior mutability or a `static mut` lands there.
    println!("rom-inspect: {path}: {checked} relocations, all position independent");
    Ok(())
}

fn finalize(raw: &str, out: &str) -> Result<(), String> {
    let mut rom = read(raw)?;
    let size = rom.len().div_ceil(512) * 512;
    if size == 0 || size > 255 * 512 {
        return Err(format!(
            "{raw}: {} bytes does not fit an option ROM (1..=255 blocks of 512)",
            rom.len()
        ));
    }
    rom.resize(size, 0);
    let blocks = (size / 512) as u8;
    rom[2] = blocks;
    let pci = usize::from(u16::from_le_bytes([rom[0x18], rom[0x19]]));
    if pci == 0 || pci + 24 > rom.len() || &rom[pci..pci + 4] != b"PCIR" {
        return Err(format!("{raw}: no PCI data structure at {pci:#x}"));
    }
    rom[pci + 16..pci + 18].copy_from_slice(&u16::from(blocks).to_le_bytes());
    vmi_abi::fix_checksum(&mut rom).map_err(|e| format!("{raw}: checksum: {e:?}"))?;
    let info = vmi_abi::check_rom(&rom).map_err(|e| format!("{raw}: {}", e.describe()))?;
    std::fs::write(out, &rom).map_err(|e| format!("{out}: {e}"))?;
    println!("rom-inspect: {out}: {size} bytes, {info}");
    Ok(())
}

fn show(path: &str) -> Result<(), String> {
    let rom = read(path)?;
    let info = vmi_abi::check_rom(&rom).map_err(|e| format!("{path}: {}", e.describe()))?;
    let checksum = if vmi_abi::verify_checksum(&rom).is_ok() {
        "valid"
    } else {
        "INVALID"
    };
    println!("{path}: {info}");
    println!(
        "  length {} bytes, checksum {checksum}, virtual_top {:#x}",
        usize::from(rom[2]) * 512,
        u32::from_le_bytes([rom[0x10], rom[0x11], rom[0x12], rom[0x13]])
    );
    Ok(())
}
