//! i386 relocation types (the System V i386 psABI, as in elf.h) and which
//! of them leave a linked image position independent.

use object::elf;

/// True when the linked value is relative to the place being relocated or
/// to the GOT, which is part of the ROM and moves with it: such a value is
/// right wherever the ROM is mapped.
pub fn position_independent(kind: u32) -> bool {
    matches!(
        kind,
        elf::R_386_NONE
            | elf::R_386_PC32
            | elf::R_386_PLT32
            | elf::R_386_GOTPC
            | elf::R_386_GOTOFF
            | elf::R_386_PC16
            | elf::R_386_PC8
    )
}

/// The psABI name, for diagnostics.
pub fn name(kind: u32) -> String {
    let n = match kind {
        elf::R_386_NONE => "R_386_NONE",
        elf::R_386_32 => "R_386_32 (absolute address)",
        elf::R_386_PC32 => "R_386_PC32",
        elf::R_386_GOT32 => "R_386_GOT32 (GOT slot holding an absolute address)",
        elf::R_386_PLT32 => "R_386_PLT32",
        elf::R_386_RELATIVE => "R_386_RELATIVE",
        elf::R_386_GOTOFF => "R_386_GOTOFF",
        elf::R_386_GOTPC => "R_386_GOTPC",
        elf::R_386_GOT32X => "R_386_GOT32X (GOT slot holding an absolute address)",
        elf::R_386_16 => "R_386_16 (absolute address)",
        elf::R_386_8 => "R_386_8 (absolute address)",
        _ => return format!("relocation type {kind}"),
    };
    n.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absolute_and_got_slot_relocations_are_refused() {
        for bad in [
            elf::R_386_32,
            elf::R_386_GOT32,
            elf::R_386_GOT32X,
            elf::R_386_RELATIVE,
            elf::R_386_16,
        ] {
            assert!(!position_independent(bad), "{}", name(bad));
        }
        for good in [
            elf::R_386_PC32,
            elf::R_386_PLT32,
            elf::R_386_GOTPC,
            elf::R_386_GOTOFF,
        ] {
            assert!(position_independent(good), "{}", name(good));
        }
    }
}
