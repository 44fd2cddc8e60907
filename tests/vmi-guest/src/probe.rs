//! Finding the VMI ROM the way Linux's `probe_vmi_rom` does: the option ROM
//! area 0xC0000-0xE0000 in 2 KiB steps, each candidate judged by
//! [`vmi_abi::check_rom`] (Linux's `check_vmi_rom`).
//!
//! Unlike Linux, every refusal gets a line, including the two Linux is
//! silent about (an option ROM that is not a VMI ROM), so a run shows why
//! it went native.

use vmi_abi::{
    probe_rom_area_reporting, RomRejection, ROM_BLOCK_SIZE, VMI_PROBE_END, VMI_PROBE_START,
};

use crate::console::kprintln;

/// The ROM the kernel will use.
#[derive(Clone, Copy, Debug)]
pub struct FoundRom {
    /// Physical (and, paging off, linear) address.
    pub base: u32,
    /// `rom_length * 512`.
    pub size: u32,
    /// The header's `virtual_top`.
    pub virtual_top: u32,
}

/// Scans the option ROM area (paging must be off, or the area mapped 1:1).
pub fn find_vmi_rom() -> Option<FoundRom> {
    let len = (VMI_PROBE_END - VMI_PROBE_START) as usize;
    // SAFETY: the ISA option ROM window is always readable on a PC (ROMs,
    // or open bus reading 0xFF), and nothing writes it while we look.
    let area = unsafe { core::slice::from_raw_parts(VMI_PROBE_START as *const u8, len) };
    let found = probe_rom_area_reporting(area, VMI_PROBE_START, |addr, why: &RomRejection<'_>| {
        if let RomRejection::NotOptionRom { .. } = why {
            return;
        }
        let kb = area
            .get((addr - VMI_PROBE_START) as usize + 2)
            .copied()
            .unwrap_or(0) as usize
            * ROM_BLOCK_SIZE
            / 1024;
        kprintln!("vmi: option ROM at {addr:#07x} ({kb} KiB) refused: {why}");
    });
    let (base, info) = found?;
    kprintln!(
        "vmi: found VMI ROM at {base:#07x}: {info}, license {}",
        vmi_abi::ByteStr(info.license)
    );
    if let Some(warning) = info.warning {
        kprintln!("vmi: {warning}");
    }
    Some(FoundRom {
        base,
        size: u32::from(info.header.rom_length) * ROM_BLOCK_SIZE as u32,
        virtual_top: info.virtual_top(),
    })
}
