//! The kernel's physical memory, planned from what Xen's builder left
//! (docs/boot-contract.md, "Two numberings of memory"), and the multiboot
//! information that describes it to the kernel.
//!
//! Xen's frames `0..mapped_end` hold the PV image, the kernel module, the
//! p2m, start_info, the bootstrap page tables and stack, and padding: the
//! ROM keeps all of them. Frames `mapped_end..nr_pages` become the kernel's
//! RAM: low RAM first (kernel frames 0x00-0x9E), then RAM from 1 MiB.

use crate::layout::{HIGH_RAM_START, LOW_RAM_END};
use crate::linux_boot::{E820Entry, E820_RAM, E820_RESERVED};

/// Kernel frames of low RAM (0 up to the reserved PC area).
pub const LOW_RAM_FRAMES: u32 = LOW_RAM_END >> 12;
/// Least RAM above 1 MiB the loader will start a kernel with.
pub const MIN_HIGH_RAM: u32 = 4 << 20;

/// Why the domain's memory cannot hold a kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlanError {
    /// Fewer frames than the ROM's own plus the minimum RAM.
    TooLittleMemory { nr_pages: u32, reserved: u32 },
    /// The kernel's segments end above the RAM the domain has.
    KernelTooBig { kernel_end: u32, ram_end: u32 },
    /// The initrd does not fit between the kernel's end and the top of the
    /// RAM it may use (`initrd_addr_max` or the end of RAM).
    InitrdTooBig { size: u32, room: u32, top: u32 },
}

/// Which of Xen's frames become which kernel frames.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemoryPlan {
    /// Domain frames (start_info.nr_pages).
    pub nr_pages: u32,
    /// First Xen frame handed to the kernel; all below stay the ROM's.
    pub first_kernel_pfn: u32,
    /// End (exclusive) of kernel-physical RAM above 1 MiB.
    pub ram_end: u32,
}

impl MemoryPlan {
    /// Plans with Xen frames `0..reserved` kept by the ROM.
    pub fn new(nr_pages: u32, reserved: u32) -> Result<Self, PlanError> {
        let free = nr_pages.saturating_sub(reserved);
        let high = free.saturating_sub(LOW_RAM_FRAMES);
        if reserved >= nr_pages || high < MIN_HIGH_RAM >> 12 {
            return Err(PlanError::TooLittleMemory { nr_pages, reserved });
        }
        Ok(Self {
            nr_pages,
            first_kernel_pfn: reserved,
            ram_end: HIGH_RAM_START + (high << 12),
        })
    }

    /// Kernel frames that are RAM, in order: low RAM, then from 1 MiB.
    pub fn kernel_frames(&self) -> impl Iterator<Item = u32> {
        (0..LOW_RAM_FRAMES).chain(HIGH_RAM_START >> 12..self.ram_end >> 12)
    }

    /// The Xen frame behind kernel frame `kfn`, if it is RAM.
    pub fn pfn_of(&self, kfn: u32) -> Option<u32> {
        if kfn < LOW_RAM_FRAMES {
            Some(self.first_kernel_pfn + kfn)
        } else if (HIGH_RAM_START >> 12..self.ram_end >> 12).contains(&kfn) {
            Some(self.first_kernel_pfn + LOW_RAM_FRAMES + kfn - (HIGH_RAM_START >> 12))
        } else {
            None
        }
    }

    /// Kernel frame numbers end here (exclusive): the size of the k2m table.
    pub fn kernel_frame_limit(&self) -> u32 {
        self.ram_end >> 12
    }

    /// Checks that the kernel's segments fit in RAM.
    pub fn check_kernel(&self, kernel_end: u32) -> Result<(), PlanError> {
        if kernel_end > self.ram_end {
            return Err(PlanError::KernelTooBig {
                kernel_end,
                ram_end: self.ram_end,
            });
        }
        Ok(())
    }

    /// The memory map as E820 entries (zero-page.txt `e820_map`).
    pub fn e820(&self) -> [E820Entry; 3] {
        self.memory_map()
            .map(|(addr, size, kind)| E820Entry { addr, size, kind })
    }

    /// KiB of RAM from 1 MiB to its end (the zero page's `alt_mem_k`, the
    /// multiboot `mem_upper`).
    pub fn kib_above_1mib(&self) -> u32 {
        (self.ram_end - HIGH_RAM_START) / 1024
    }

    /// Where an initrd of `size` bytes goes: page aligned, as high as RAM
    /// and `addr_max` (the highest address it may occupy, inclusive) allow,
    /// as Linux's boot loaders place it, and not below `kernel_end` (the
    /// end of what the kernel needs from its load address).
    pub fn place_initrd(
        &self,
        size: u32,
        kernel_end: u32,
        addr_max: u32,
    ) -> Result<u32, PlanError> {
        let top = self.ram_end.min(addr_max.saturating_add(1)) & !0xFFF;
        let floor = kernel_end.next_multiple_of(4096).max(HIGH_RAM_START);
        let room = top.saturating_sub(floor);
        if size > room {
            return Err(PlanError::InitrdTooBig { size, room, top });
        }
        Ok((top - size) & !0xFFF)
    }

    /// The memory map as a BIOS (E820) would give it: (base, length, type),
    /// type 1 = RAM, 2 = reserved.
    pub fn memory_map(&self) -> [(u64, u64, u32); 3] {
        [
            (0, u64::from(LOW_RAM_END), E820_RAM),
            (
                u64::from(LOW_RAM_END),
                u64::from(HIGH_RAM_START - LOW_RAM_END),
                E820_RESERVED,
            ),
            (
                u64::from(HIGH_RAM_START),
                u64::from(self.ram_end - HIGH_RAM_START),
                E820_RAM,
            ),
        ]
    }
}

/// Multiboot information flags (multiboot.h `MULTIBOOT_INFO_*`).
pub const MBI_MEMORY: u32 = 1 << 0;
pub const MBI_CMDLINE: u32 = 1 << 2;
pub const MBI_MODS: u32 = 1 << 3;
pub const MBI_MEM_MAP: u32 = 1 << 6;
pub const MBI_BOOT_LOADER_NAME: u32 = 1 << 9;

/// Size of the fixed multiboot info structure (through the boot loader
/// name field, spec 3.3).
const MBI_SIZE: usize = 0x48;
const MMAP_OFFSET: usize = 0x80;
const MODS_OFFSET: usize = 0xD0;
const NAME_OFFSET: usize = 0x100;
const MOD_STRING_OFFSET: usize = 0x180;
const CMDLINE_OFFSET: usize = 0x200;
/// Longest command line passed on (the page's remainder, NUL included).
pub const MAX_CMDLINE: usize = 4096 - CMDLINE_OFFSET;

/// The boot loader name the kernel sees.
pub const BOOT_LOADER_NAME: &[u8] = b"xen-vmi-rom";

/// The name the initrd module gets in the multiboot information.
pub const INITRD_MODULE_NAME: &[u8] = b"initrd";

/// Writes the multiboot information for `plan` into `page`, which the
/// kernel will find at kernel-physical `base` (the pointers inside are
/// kernel-physical). A command line longer than [`MAX_CMDLINE`] - 1 is cut.
/// `initrd` (kernel-physical start, length) becomes the one module.
pub fn write_multiboot_info(
    page: &mut [u8; 4096],
    base: u32,
    plan: &MemoryPlan,
    cmdline: &[u8],
    initrd: Option<(u32, u32)>,
) {
    page.fill(0);
    let put = |page: &mut [u8; 4096], off: usize, v: u32| {
        page[off..off + 4].copy_from_slice(&v.to_le_bytes());
    };
    let mods = if initrd.is_some() { MBI_MODS } else { 0 };
    put(
        page,
        0,
        MBI_MEMORY | MBI_CMDLINE | MBI_MEM_MAP | MBI_BOOT_LOADER_NAME | mods,
    );
    put(page, 4, LOW_RAM_END / 1024); // mem_lower, KiB from 0
    put(page, 8, plan.kib_above_1mib()); // mem_upper, KiB from 1 MiB
    if let Some((start, len)) = initrd {
        // mods_count, mods_addr; each module: mod_start, mod_end, string,
        // reserved (spec 3.3).
        put(page, 20, 1);
        put(page, 24, base + MODS_OFFSET as u32);
        put(page, MODS_OFFSET, start);
        put(page, MODS_OFFSET + 4, start + len);
        put(page, MODS_OFFSET + 8, base + MOD_STRING_OFFSET as u32);
        page[MOD_STRING_OFFSET..MOD_STRING_OFFSET + INITRD_MODULE_NAME.len()]
            .copy_from_slice(INITRD_MODULE_NAME);
    }
    put(page, 16, base + CMDLINE_OFFSET as u32);
    let map = plan.memory_map();
    // Each entry: u32 size (20, not counting itself), u64 base, u64 length, u32 type.
    for (i, (addr, len, kind)) in map.iter().enumerate() {
        let e = MMAP_OFFSET + i * 24;
        put(page, e, 20);
        page[e + 4..e + 12].copy_from_slice(&addr.to_le_bytes());
        page[e + 12..e + 20].copy_from_slice(&len.to_le_bytes());
        put(page, e + 20, *kind);
    }
    put(page, 44, (map.len() * 24) as u32); // mmap_length
    put(page, 48, base + MMAP_OFFSET as u32); // mmap_addr
    page[NAME_OFFSET..NAME_OFFSET + BOOT_LOADER_NAME.len()].copy_from_slice(BOOT_LOADER_NAME);
    put(page, 64, base + NAME_OFFSET as u32); // boot_loader_name
    let n = cmdline.len().min(MAX_CMDLINE - 1);
    page[CMDLINE_OFFSET..CMDLINE_OFFSET + n].copy_from_slice(&cmdline[..n]);
    const _: () = assert!(
        MBI_SIZE <= MMAP_OFFSET
            && MMAP_OFFSET + 3 * 24 <= MODS_OFFSET
            && MODS_OFFSET + 16 <= NAME_OFFSET
            && NAME_OFFSET + BOOT_LOADER_NAME.len() < MOD_STRING_OFFSET
            && MOD_STRING_OFFSET + INITRD_MODULE_NAME.len() < CMDLINE_OFFSET
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_64_mib_domain_with_4_mib_kept() {
        let plan = MemoryPlan::new(16384, 1024).unwrap();
        assert_eq!(plan.pfn_of(0), Some(1024));
        assert_eq!(plan.pfn_of(0x9E), Some(1024 + 0x9E));
        assert_eq!(plan.pfn_of(0x9F), None);
        assert_eq!(plan.pfn_of(0xC0), None);
        assert_eq!(plan.pfn_of(0x100), Some(1024 + 0x9F));
        let frames = plan.kernel_frames().count() as u32;
        assert_eq!(frames, 16384 - 1024);
        assert_eq!(plan.pfn_of(plan.kernel_frame_limit() - 1), Some(16383));
        assert_eq!(plan.pfn_of(plan.kernel_frame_limit()), None);
    }

    #[test]
    fn every_free_frame_is_used_exactly_once() {
        for (nr, kept) in [(16384, 1024), (5000, 700), (262_144, 2048)] {
            let plan = MemoryPlan::new(nr, kept).unwrap();
            let mut seen = vec![false; nr as usize];
            for kfn in plan.kernel_frames() {
                let pfn = plan.pfn_of(kfn).unwrap() as usize;
                assert!(
                    pfn >= kept as usize && !seen[pfn],
                    "pfn {pfn} twice or kept"
                );
                seen[pfn] = true;
            }
            assert!(seen[kept as usize..].iter().all(|&s| s));
        }
    }

    #[test]
    fn too_little_memory_and_too_big_kernels_are_refused() {
        assert_eq!(
            MemoryPlan::new(1500, 1024),
            Err(PlanError::TooLittleMemory {
                nr_pages: 1500,
                reserved: 1024
            })
        );
        let plan = MemoryPlan::new(16384, 1024).unwrap();
        assert!(plan.check_kernel(plan.ram_end).is_ok());
        assert_eq!(
            plan.check_kernel(plan.ram_end + 1),
            Err(PlanError::KernelTooBig {
                kernel_end: plan.ram_end + 1,
                ram_end: plan.ram_end
            })
        );
    }

    #[test]
    fn multiboot_info_layout() {
        let plan = MemoryPlan::new(16384, 1024).unwrap();
        let mut page = [0u8; 4096];
        write_multiboot_info(&mut page, 0x9000, &plan, b"console=ttyS0 quiet", None);
        let u32_at = |o: usize| u32::from_le_bytes(page[o..o + 4].try_into().unwrap());
        assert_eq!(
            u32_at(0),
            MBI_MEMORY | MBI_CMDLINE | MBI_MEM_MAP | MBI_BOOT_LOADER_NAME
        );
        assert_eq!(u32_at(4), 636);
        assert_eq!(u32_at(8), (plan.ram_end - 0x10_0000) / 1024);
        let cmd = (u32_at(16) - 0x9000) as usize;
        assert_eq!(&page[cmd..cmd + 20], b"console=ttyS0 quiet\0");
        assert_eq!(u32_at(44), 72);
        let map = (u32_at(48) - 0x9000) as usize;
        // Third entry: RAM from 1 MiB.
        let e = map + 48;
        assert_eq!(u32_at(e), 20);
        assert_eq!(
            u64::from_le_bytes(page[e + 4..e + 12].try_into().unwrap()),
            0x10_0000
        );
        assert_eq!(u32_at(e + 20), 1);
        let name = (u32_at(64) - 0x9000) as usize;
        assert_eq!(&page[name..name + 12], b"xen-vmi-rom\0");
    }

    #[test]
    fn an_initrd_is_the_one_multiboot_module() {
        let plan = MemoryPlan::new(16384, 1024).unwrap();
        let mut page = [0u8; 4096];
        write_multiboot_info(&mut page, 0x9000, &plan, b"", Some((0x300_0000, 0x1234)));
        let u32_at = |o: usize| u32::from_le_bytes(page[o..o + 4].try_into().unwrap());
        assert_ne!(u32_at(0) & MBI_MODS, 0);
        assert_eq!(u32_at(20), 1);
        let m = (u32_at(24) - 0x9000) as usize;
        assert_eq!((u32_at(m), u32_at(m + 4)), (0x300_0000, 0x300_1234));
        let name = (u32_at(m + 8) - 0x9000) as usize;
        assert_eq!(&page[name..name + 7], b"initrd\0");
    }

    #[test]
    fn the_initrd_goes_high_and_never_over_the_kernel() {
        let plan = MemoryPlan::new(16384, 1024).unwrap(); // RAM to 0x3F9F000
        let at = plan.place_initrd(0x10_0001, 0x50_0000, u32::MAX).unwrap();
        assert_eq!(at % 4096, 0);
        assert!(at + 0x10_0001 <= plan.ram_end);
        assert!(at >= 0x50_0000);
        assert_eq!(at, (plan.ram_end - 0x10_0001) & !0xFFF);
        // initrd_addr_max caps it (inclusive).
        let at = plan.place_initrd(0x1000, 0x50_0000, 0x00FF_FFFF).unwrap();
        assert_eq!(at, 0xFF_F000);
        // Too big: named with the room there was.
        assert_eq!(
            plan.place_initrd(plan.ram_end, 0x50_0000, u32::MAX),
            Err(PlanError::InitrdTooBig {
                size: plan.ram_end,
                room: (plan.ram_end & !0xFFF) - 0x50_0000,
                top: plan.ram_end & !0xFFF
            })
        );
        assert!(plan.place_initrd(0x1000, 0x50_0000, 0x40_0000).is_err());
    }

    proptest::proptest! {
        #[test]
        fn placed_initrds_fit(size in 1u32..0x400_0000, kernel_end in 0x10_0000u32..0x300_0000,
                              addr_max in 0x10_0000u32..u32::MAX) {
            let plan = MemoryPlan::new(16384, 1024).unwrap();
            if let Ok(at) = plan.place_initrd(size, kernel_end, addr_max) {
                proptest::prop_assert_eq!(at % 4096, 0);
                proptest::prop_assert!(at >= kernel_end);
                proptest::prop_assert!(u64::from(at) + u64::from(size) <= u64::from(plan.ram_end));
                proptest::prop_assert!(u64::from(at) + u64::from(size) <= u64::from(addr_max) + 1);
            }
        }
    }

    #[test]
    fn e820_is_the_legacy_layout() {
        let plan = MemoryPlan::new(16384, 1024).unwrap();
        let map = plan.e820();
        assert_eq!(
            (map[0].addr, map[0].size, map[0].kind),
            (0, 0x9_F000, E820_RAM)
        );
        assert_eq!(
            (map[1].addr, map[1].size, map[1].kind),
            (0x9_F000, 0x6_1000, E820_RESERVED)
        );
        assert_eq!(map[2].addr, 0x10_0000);
        assert_eq!(map[2].addr + map[2].size, u64::from(plan.ram_end));
        assert_eq!(plan.kib_above_1mib(), (plan.ram_end - 0x10_0000) / 1024);
    }

    #[test]
    fn long_command_lines_are_cut_and_terminated() {
        let plan = MemoryPlan::new(16384, 1024).unwrap();
        let mut page = [0u8; 4096];
        write_multiboot_info(&mut page, 0, &plan, &[b'x'; 5000], None);
        assert_eq!(page[4095], 0);
        assert_eq!(page[4094], b'x');
    }
}
