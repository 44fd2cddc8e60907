//! What the kernel keeps from its boot loader ([`BootInfo`]), read from the
//! multiboot information (the Multiboot Specification 0.6.96, "Boot
//! information format") or from a Linux zero page (the bzImage packaging),
//! and the kernel stack the packagings' entry code switches to.

use crate::sync::Global;

/// EAX at entry when a multiboot loader started the kernel.
pub const MULTIBOOT_BOOTLOADER_MAGIC: u32 = 0x2BAD_B002;

/// Size of each kernel stack.
pub const STACK_SIZE: usize = 64 * 1024;

/// A 16-byte aligned stack.
#[repr(C, align(16))]
pub struct Stack(pub [u8; STACK_SIZE]);

/// The stack the kernel and the cases run on (the packagings' entry code
/// switches to it).
pub static BOOT_STACK: Global<Stack> = Global::new(Stack([0; STACK_SIZE]));

/// The fixed part of the multiboot information structure.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct MultibootInfo {
    /// Which of the following fields are valid.
    pub flags: u32,
    /// KiB of memory below 1 MiB (flags bit 0).
    pub mem_lower: u32,
    /// KiB of memory from 1 MiB up to the first hole (flags bit 0).
    pub mem_upper: u32,
    /// Boot device (flags bit 1).
    pub boot_device: u32,
    /// Physical address of the NUL-terminated command line (flags bit 2).
    pub cmdline: u32,
}

/// Multiboot info flag: mem_lower/mem_upper valid.
pub const MBI_FLAG_MEMORY: u32 = 1 << 0;
/// Multiboot info flag: cmdline valid.
pub const MBI_FLAG_CMDLINE: u32 = 1 << 2;

/// What the kernel keeps from the boot loader.
#[derive(Clone, Copy, Debug)]
pub struct BootInfo {
    /// End of usable RAM above 1 MiB (physical, exclusive).
    pub ram_top: u32,
    /// The command line (a copy; the loader's page may be reused).
    pub cmdline: [u8; 256],
    /// Bytes of `cmdline` in use.
    pub cmdline_len: usize,
}

impl BootInfo {
    /// Boot information from its parts: RAM above 1 MiB ends at `ram_top`;
    /// the command line (cut to 256 bytes).
    pub fn new(ram_top: u32, cmdline: &[u8]) -> Self {
        let mut boot = BootInfo {
            ram_top,
            cmdline: [0; 256],
            cmdline_len: 0,
        };
        let n = cmdline.len().min(boot.cmdline.len());
        boot.cmdline[..n].copy_from_slice(&cmdline[..n]);
        boot.cmdline_len = n;
        boot
    }

    /// Reads the loader's information at `mbi` (physical, paging off).
    ///
    /// # Safety
    /// `mbi` must be the address the loader passed in EBX.
    pub unsafe fn from_multiboot(mbi: u32) -> Self {
        // SAFETY: per the caller, a multiboot information structure.
        let info = unsafe { (mbi as *const MultibootInfo).read() };
        let ram_top = if info.flags & MBI_FLAG_MEMORY != 0 {
            0x10_0000 + info.mem_upper.saturating_mul(1024)
        } else {
            16 << 20
        };
        let mut boot = BootInfo {
            ram_top,
            cmdline: [0; 256],
            cmdline_len: 0,
        };
        if info.flags & MBI_FLAG_CMDLINE != 0 && info.cmdline != 0 {
            let mut p = info.cmdline as *const u8;
            while boot.cmdline_len < boot.cmdline.len() {
                // SAFETY: the loader's command line is NUL-terminated.
                let b = unsafe { p.read() };
                if b == 0 {
                    break;
                }
                boot.cmdline[boot.cmdline_len] = b;
                boot.cmdline_len += 1;
                // SAFETY: still inside the string (no NUL seen yet).
                p = unsafe { p.add(1) };
            }
        }
        boot
    }

    /// The command line as text ("" if it is not UTF-8).
    pub fn cmdline(&self) -> &str {
        core::str::from_utf8(&self.cmdline[..self.cmdline_len]).unwrap_or("")
    }

    /// The value of `key=value` on the command line. QEMU puts the kernel's
    /// file name first; it never contains '=' ahead of a matching key.
    pub fn option(&self, key: &str) -> Option<&str> {
        self.cmdline()
            .split_ascii_whitespace()
            .find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
    }
}
