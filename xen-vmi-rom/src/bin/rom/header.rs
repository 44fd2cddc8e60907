//! The option ROM / VMI header (vmi-abi) and the fixed jump points.

use vmi_abi::{build_header, RomSpec};
use xen_vmi_rom::layout::ROM_AREA_START;

/// Bytes 0x00-0x7F: option-ROM signature, VMI signature and API version,
/// virtual_top, PCI header (15AD:0801), license "GPL v2". The length (byte 2
/// and the PCI chunk count) and the checksum are set after linking, when the
/// size is known.
const HEADER: [u8; 144] = match build_header(&RomSpec {
    manufacturer: Some(b"Xen"),
    product: Some(b"xen-vmi-rom"),
    // The jump points are assembled below; these bytes are not used.
    ..RomSpec::new(1, ROM_AREA_START, [0xCC; 8], [0xCC; 8])
}) {
    Ok(h) => h,
    Err(_) => panic!("the VMI ROM header does not build"),
};

#[used]
#[link_section = ".rom.header"]
static ROM_HEADER: [u8; 0x80] = {
    let mut out = [0u8; 0x80];
    let mut i = 0;
    while i < 0x80 {
        out[i] = HEADER[i];
        i += 1;
    }
    out
};

// The jump points Linux calls (vmi.h: vmi_init[8] at 0x80, get_reloc[8] at
// 0x88), then the loader's own entry at 0x90. Relative jumps: valid at any
// address the ROM is mapped.
core::arch::global_asm!(
    r#"
    .pushsection .rom.jumps, "ax"
    jmp {init}
    .balign 8, 0xCC
    jmp {reloc}
    .balign 8, 0xCC
    jmp {boot}
    .balign 8, 0xCC
    .popsection
    "#,
    init = sym crate::calls::vmi_init,
    reloc = sym crate::calls::get_relocation_info_entry,
    boot = sym crate::boot::vmi_loader_entry,
);
