//! Loading a VMI kernel and handing over to the ROM (docs/boot-contract.md).
//!
//! The loader runs in the address space Xen's builder made: every frame of
//! the bootstrap region at virtual = pseudo-physical, read-write (the page
//! tables read-only). It builds what the kernel will run in, from frames of
//! that region it keeps for the ROM (the "pool"), and never touches the
//! kernel's frames except through a one-page window.

use xen_abi::arch_x86_32::{_PAGE_ACCESSED, _PAGE_DIRTY, _PAGE_PRESENT, _PAGE_RW, _PAGE_USER};
use xen_abi::errno::XenError;
use xen_abi::hypercall::Hypervisor;
use xen_abi::p2m::{Mfn, Pfn};
use xen_abi::xen::{MmuUpdate, MmuextOp, StartInfo, DOMID_SELF, UVMF_INVLPG};
use xen_vmi_rom::boot_plan::{write_multiboot_info, MemoryPlan, PlanError};
use xen_vmi_rom::bundle::{self, BundleError};
use xen_vmi_rom::kernel_image::{self, BootProtocol, ImageError, MULTIBOOT_BOOTLOADER_MAGIC};
use xen_vmi_rom::layout::*;
use xen_vmi_rom::linux_boot::{self, ZeroPageParams, SETUP_HEADER_START};
use xen_vmi_rom::rom_state::*;

use crate::console::Console;
use crate::xen::{hypercall_page_base, hypervisor};

/// Kernel-physical page of the multiboot information, or of the Linux
/// zero page (docs/boot-contract.md).
const MBI_PHYS: u32 = 0x9000;
const ZERO_PAGE_PHYS: u32 = MBI_PHYS;
/// Kernel-physical page of a Linux kernel's command line.
const LINUX_CMDLINE_PHYS: u32 = 0xA000;
/// Kernel-physical page of the boot GDT a Linux kernel is entered with.
const BOOT_GDT_PHYS: u32 = 0xB000;
/// Longest command line a made-up (vmlinux) header allows.
const VMLINUX_CMDLINE_SIZE: u32 = 2047;
/// The stack pointer the kernel starts with (a multiboot kernel sets its own
/// at once): the top of low RAM.
const ENTRY_ESP: u32 = LOW_RAM_END;
/// Pages the loader leaves in the pool for the ROM's own page tables.
const POOL_RESERVE_FOR_ROM: u32 = 64;

const PTE_FRAME: u64 = 0x000F_FFFF_FFFF_F000;
const PTE_RW: u64 = _PAGE_PRESENT | _PAGE_RW | _PAGE_ACCESSED | _PAGE_DIRTY;
const PTE_RO: u64 = _PAGE_PRESENT | _PAGE_ACCESSED;
/// With paging off nothing is protected from ring 3: the "paging off"
/// address space maps every kernel frame user-accessible too (the ROM's
/// private area stays supervisor-only).
const PTE_USER: u64 = _PAGE_USER;
/// Xen adds what an L3 entry needs (adjust_guest_l3e); present is enough.
const L3E: u64 = _PAGE_PRESENT;

/// Why the kernel could not be started; each says what was wrong.
#[derive(Debug)]
pub enum BootError {
    Image(ImageError, usize),
    Bundle(BundleError, usize),
    /// The command line names an initrd (`initrd=NAME`) the module does
    /// not carry.
    InitrdMissing,
    Plan(PlanError),
    PoolTooSmall {
        need: u32,
        have: u32,
    },
    NoRom,
    KernelOverlapsBootInfo {
        phys: u32,
        info: core::ops::Range<u32>,
    },
    Xen(&'static str, XenError),
}

impl BootError {
    pub fn report(&self, con: &mut Console) {
        match self {
            BootError::Image(e, len) => con.line(format_args!(
                "xen-vmi-rom: the module ({len} bytes) is not a kernel this loader can start: {} ({e:?})",
                e.describe()
            )),
            BootError::Bundle(e, len) => con.line(format_args!(
                "xen-vmi-rom: the module ({len} bytes) is a kernel+initrd bundle this loader cannot use: {} ({e:?})",
                e.describe()
            )),
            BootError::InitrdMissing => con.line(format_args!(
                "xen-vmi-rom: the initrd is missing: the command line names one (initrd=) but the module carries \
                 only a kernel; pack the kernel and its initrd into one module with vmi-pack (docs/boot-contract.md)"
            )),
            BootError::Plan(PlanError::InitrdTooBig { size, room, top }) => con.line(format_args!(
                "xen-vmi-rom: the initrd is too big: {size} bytes, but only {room} bytes of RAM lie between the kernel's \
                 end and {top:#x} (the end of RAM or the kernel's initrd_addr_max): give the domain more memory"
            )),
            BootError::Plan(PlanError::TooLittleMemory { nr_pages, reserved }) => con.line(format_args!(
                "xen-vmi-rom: too little memory: the domain has {nr_pages} pages, the ROM keeps {reserved}, \
                 and a kernel needs at least 4 MiB above 1 MiB: give the domain more memory"
            )),
            BootError::Plan(PlanError::KernelTooBig { kernel_end, ram_end }) => con.line(format_args!(
                "xen-vmi-rom: the kernel ends at {kernel_end:#x} but RAM ends at {ram_end:#x}: give the domain more memory"
            )),
            BootError::PoolTooSmall { need, have } => con.line(format_args!(
                "xen-vmi-rom: the ROM needs {need} frames of the bootstrap region for its tables but only {have} are free \
                 (a domain this large is not supported yet)"
            )),
            BootError::KernelOverlapsBootInfo { phys, info } => con.line(format_args!(
                "xen-vmi-rom: a kernel segment at {phys:#x} covers {:#x}..{:#x}, where the boot \
                 information goes: this loader cannot start it",
                info.start, info.end
            )),
            BootError::NoRom => con.line(format_args!(
                "xen-vmi-rom: this PV image was built without its ROM (run tools/build-images)"
            )),
            BootError::Xen(what, e) => con.line(format_args!(
                "xen-vmi-rom: Xen refused {what}: {} ({})",
                e.name(),
                e.errno()
            )),
        }
    }
}

fn xen_err(what: &'static str) -> impl FnOnce(XenError) -> BootError {
    move |e| BootError::Xen(what, e)
}

/// Frames of the domain: the p2m (start_info.mfn_list) and the bootstrap
/// region's identity mapping.
struct Frames<'a> {
    p2m: &'a [u32],
    m2p: *const u32,
}

impl Frames<'_> {
    fn mfn(&self, pfn: u32) -> u32 {
        self.p2m[pfn as usize]
    }

    fn pfn_of_mfn(&self, mfn: u32) -> u32 {
        // SAFETY: Xen maps the read-only m2p for every frame of the domain.
        unsafe { core::ptr::read_volatile(self.m2p.add(mfn as usize)) }
    }

    /// A table page of the bootstrap region, by machine frame.
    fn table(&self, mfn: u32) -> &[u64; 512] {
        let pfn = self.pfn_of_mfn(mfn);
        // SAFETY: bootstrap page tables are mapped read-only at their
        // pseudo-physical address (VIRT_BASE 0).
        unsafe { &*((pfn << 12) as *const [u64; 512]) }
    }
}

/// Identity-mapped bootstrap frames handed out in order.
struct Pool {
    next: u32,
    end: u32,
}

impl Pool {
    /// A zeroed frame of the pool: (pfn, writable page).
    fn take(&mut self) -> (u32, &'static mut [u64; 512]) {
        assert!(self.next < self.end, "pool sized before use");
        let pfn = self.next;
        self.next += 1;
        // SAFETY: pool frames lie in the bootstrap region, mapped read-write
        // at their pseudo-physical address, and are handed out once.
        let page = unsafe { &mut *((pfn << 12) as *mut [u64; 512]) };
        page.fill(0);
        (pfn, page)
    }
}

#[repr(C, align(4096))]
struct Page([u8; 4096]);

/// The loader's window onto kernel frames.
static mut WINDOW: Page = Page([0; 4096]);

/// Runs `f` on machine frame `mfn` through the window.
fn with_frame<R>(mfn: u32, f: impl FnOnce(&mut [u8; 4096]) -> R) -> Result<R, BootError> {
    let va = (&raw mut WINDOW) as u32;
    // SAFETY: the window page is the loader's own and only used here.
    unsafe { hypervisor().update_va_mapping(va, (u64::from(mfn) << 12) | PTE_RW, UVMF_INVLPG) }
        .map_err(xen_err("mapping a kernel frame in the loader's window"))?;
    let page = (&raw mut WINDOW).cast::<[u8; 4096]>();
    // SAFETY: the window now maps `mfn`, a frame of the domain; no other
    // reference to the window exists.
    Ok(f(unsafe { &mut *page }))
}

/// Where the builder's mapping ends: L2 entries present from VA 0.
fn mapped_end_pfn(frames: &Frames<'_>, si: &StartInfo) -> u32 {
    // SAFETY: pt_base is the mapped (read-only) bootstrap L3.
    let l3 = unsafe { &*(si.pt_base as *const [u64; 512]) };
    let mut end = 0;
    'slots: for l3e in l3.iter().take(3) {
        if l3e & _PAGE_PRESENT == 0 {
            break;
        }
        let l2 = frames.table(((l3e & PTE_FRAME) >> 12) as u32);
        for e in l2.iter() {
            if e & _PAGE_PRESENT == 0 {
                break 'slots;
            }
            end += 512;
        }
    }
    end
}

pub fn boot(
    con: &mut Console,
    si: &StartInfo,
    module: &[u8],
    cmdline: &[u8],
) -> Result<(), BootError> {
    let rom = crate::VMI_ROM;
    if rom.is_empty() {
        return Err(BootError::NoRom);
    }
    let parts = bundle::unpack(module).map_err(|e| BootError::Bundle(e, module.len()))?;
    let kernel = parts.kernel;
    let image = kernel_image::parse(kernel).map_err(|e| BootError::Image(e, kernel.len()))?;
    let names_initrd = cmdline
        .split(|b| b.is_ascii_whitespace())
        .any(|w| w.starts_with(b"initrd="));
    if parts.initrd.is_none() && names_initrd {
        return Err(BootError::InitrdMissing);
    }
    let protocol = image.protocol();
    let mut xen = hypervisor();
    let m2p = xen
        .machphys_mapping()
        .map_err(xen_err("XENMEM_machphys_mapping"))?;
    // SAFETY: mfn_list is the builder's p2m, nr_pages entries, mapped.
    let p2m =
        unsafe { core::slice::from_raw_parts(si.mfn_list as *const u32, si.nr_pages as usize) };
    let frames = Frames {
        p2m,
        m2p: m2p.v_start as *const u32,
    };

    let mapped_end = mapped_end_pfn(&frames, si);
    let plan = MemoryPlan::new(si.nr_pages, mapped_end).map_err(BootError::Plan)?;
    plan.check_kernel(image.memory_end())
        .map_err(BootError::Plan)?;
    let info = match protocol {
        BootProtocol::Multiboot => MBI_PHYS..MBI_PHYS + 4096,
        BootProtocol::Linux32 => ZERO_PAGE_PHYS..BOOT_GDT_PHYS + 4096,
    };
    if let Some(seg) = image.segments().iter().find(|s| {
        s.mem_len > 0 && s.phys < info.end && s.phys.saturating_add(s.mem_len) > info.start
    }) {
        return Err(BootError::KernelOverlapsBootInfo {
            phys: seg.phys,
            info,
        });
    }
    let initrd_addr_max = image
        .setup
        .map_or(linux_boot::DEFAULT_INITRD_ADDR_MAX, |h| h.initrd_addr_max);
    let initrd = match parts.initrd {
        Some(rd) => {
            let size = rd.len() as u32;
            let at = plan
                .place_initrd(size, image.memory_end(), initrd_addr_max)
                .map_err(BootError::Plan)?;
            Some((rd, at))
        }
        None => None,
    };

    // What the pool must hold.
    let rom_pages = (rom.len() as u32).div_ceil(4096);
    let k2m_pages = (plan.kernel_frame_limit() * 4).div_ceil(4096);
    let state_pages = ROM_STATE_MAX / 4096;
    let boot_l1s = plan.ram_end.div_ceil(1 << 21);
    let boot_l2s = plan.ram_end.div_ceil(1 << 30).max(1) + 1;
    // The boot root's tables are counted in a fixed array.
    if 1 + boot_l2s + boot_l1s > 1024 {
        return Err(BootError::PoolTooSmall {
            need: 1 + boot_l2s + boot_l1s,
            have: 1024,
        });
    }
    let need = rom_pages
        + 1 // the empty bus's frame
        + k2m_pages
        + state_pages
        + ROM_AREA_L1_TABLES
        + 1
        + boot_l2s
        + boot_l1s
        + POOL_RESERVE_FOR_ROM;
    let pool_start = (si.pt_base >> 12) + si.nr_pt_frames + 1;
    let have = mapped_end.saturating_sub(pool_start);
    if need > have {
        return Err(BootError::PoolTooSmall { need, have });
    }
    let mut pool = Pool {
        next: pool_start,
        end: mapped_end,
    };
    con.line(format_args!(
        "xen-vmi-rom: kernel {:?} ({}), entry {:#x}, {} segment(s) at {:#x}..{:#x}; RAM 0..{:#x} and 1 MiB..{:#x}; \
         the ROM keeps {} of {} frames",
        image.kind,
        match (protocol, image.setup) {
            (BootProtocol::Multiboot, _) => "multiboot",
            (BootProtocol::Linux32, Some(_)) => "Linux boot protocol",
            (BootProtocol::Linux32, None) => "Linux 32-bit entry, a vmlinux",
        },
        image.entry,
        image.segments().len(),
        image.phys_span().0,
        image.phys_span().1,
        LOW_RAM_END,
        plan.ram_end,
        mapped_end,
        si.nr_pages
    ));

    // The ROM's state, its code, and the k2m table.
    let state_first = pool.next;
    for _ in 0..state_pages {
        pool.take();
    }
    let rom_first = pool.next;
    for i in 0..rom_pages {
        let (_, page) = pool.take();
        let bytes = page.as_mut_ptr() as *mut u8;
        let off = (i * 4096) as usize;
        let n = (rom.len() - off).min(4096);
        // SAFETY: `page` is a whole writable frame; n <= 4096.
        unsafe { core::ptr::copy_nonoverlapping(rom.as_ptr().add(off), bytes, n) };
    }
    let rom_mfn = |i: u32| frames.mfn(rom_first + i);
    let k2m_first = pool.next;
    for _ in 0..k2m_pages {
        pool.take();
    }
    // SAFETY: the k2m pages are consecutive identity-mapped pool frames.
    let k2m = unsafe {
        core::slice::from_raw_parts_mut(
            (k2m_first << 12) as *mut u32,
            plan.kernel_frame_limit() as usize,
        )
    };
    k2m.fill(u32::MAX);
    for kfn in plan.kernel_frames() {
        k2m[kfn as usize] = frames.mfn(plan.pfn_of(kfn).expect("kernel frame"));
    }
    for i in 0..rom_pages {
        k2m[((ROM_KERNEL_PHYS >> 12) + i) as usize] = rom_mfn(i);
    }
    // The rest of the reserved area is an empty ISA bus: every frame of it
    // reads as all-ones from one shared frame, mapped read-only (the BIOS
    // area scans of a kernel find nothing there instead of faulting).
    let (bus_pfn, bus_page) = pool.take();
    bus_page.fill(u64::MAX);
    for slot in &mut k2m[(LOW_RAM_END >> 12) as usize..(HIGH_RAM_START >> 12) as usize] {
        if *slot == u32::MAX {
            *slot = frames.mfn(bus_pfn);
        }
    }

    // The kernel, its initrd and its boot information, through the window.
    for seg in image.segments() {
        load(kernel, seg, k2m)?;
    }
    if let Some((rd, at)) = initrd {
        let seg = kernel_image::Segment {
            file_offset: 0,
            file_len: rd.len() as u32,
            phys: at,
            mem_len: rd.len() as u32,
        };
        load(rd, &seg, k2m)?;
    }
    let initrd_extent = initrd.map(|(rd, at)| (at, rd.len() as u32));
    match protocol {
        BootProtocol::Multiboot => with_frame(k2m[(MBI_PHYS >> 12) as usize], |page| {
            write_multiboot_info(page, MBI_PHYS, &plan, cmdline, initrd_extent)
        })?,
        BootProtocol::Linux32 => {
            write_linux_boot_info(con, kernel, &image, &plan, cmdline, initrd_extent, k2m)?
        }
    }
    if let Some((at, len)) = initrd_extent {
        con.line(format_args!(
            "xen-vmi-rom: initrd of {len} bytes at {at:#x}..{:#x}",
            at + len
        ));
    }

    // Xen's m2p answers "which kernel frame is this machine frame" from now
    // on; the ROM's own frames get a number no kernel frame has.
    set_m2p(&frames, &plan, k2m, rom_first, rom_pages)?;

    // The ROM area: its L1s, then linked into the bootstrap top L2.
    let mut area: [(u32, &mut [u64; 512]); ROM_AREA_L1_TABLES as usize] =
        core::array::from_fn(|_| pool.take());
    let area_l1: [u32; ROM_AREA_L1_TABLES as usize] = core::array::from_fn(|i| area[i].0);
    let mut map_area = |va: u32, pte: u64| {
        let idx = ((va - ROM_AREA_START) >> 12) as usize;
        area[idx / 512].1[idx % 512] = pte;
    };
    for i in 0..rom_pages {
        map_area(
            ROM_CODE_VA + i * 4096,
            (u64::from(rom_mfn(i)) << 12) | PTE_RO,
        );
    }
    let hcall_mfn = frames.mfn((hypercall_page_base() >> 12) as u32);
    map_area(HYPERCALL_PAGE_VA, (u64::from(hcall_mfn) << 12) | PTE_RO);
    map_area(SHARED_INFO_VA, u64::from(si.shared_info) | PTE_RW);
    if si.flags & xen_abi::xen::SIF_INITDOMAIN == 0 {
        map_area(CONSOLE_RING_VA, (u64::from(si.console.mfn) << 12) | PTE_RW);
        map_area(XENSTORE_RING_VA, (u64::from(si.store_mfn) << 12) | PTE_RW);
    }
    for i in 0..state_pages {
        map_area(
            ROM_STATE_VA + i * 4096,
            (u64::from(frames.mfn(state_first + i)) << 12) | PTE_RW,
        );
    }
    for i in 0..k2m_pages {
        map_area(
            K2M_VA + i * 4096,
            (u64::from(frames.mfn(k2m_first + i)) << 12) | PTE_RW,
        );
    }

    // The kernel's first address space: "paging off".
    let root = build_boot_root(&mut pool, &frames, &plan, k2m, &area_l1);
    let boot_l3 = root.l3();

    // The ROM's pool: what is left of the bootstrap frames.
    // SAFETY: the state pages are identity-mapped pool frames, 64 KiB.
    let state_base = state_first << 12;
    let pool_mfns_len = (pool.end - pool.next).min(POOL_MFNS_MAX);
    // SAFETY: the table lies inside the state pages (POOL_MFNS_MAX bound).
    let pool_mfns = unsafe {
        core::slice::from_raw_parts_mut(
            (state_base + POOL_MFNS_OFFSET) as *mut u32,
            pool_mfns_len as usize,
        )
    };
    for (i, slot) in pool_mfns.iter_mut().enumerate() {
        *slot = frames.mfn(pool.next + i as u32);
    }
    let state = RomState {
        magic: ROM_STATE_MAGIC,
        version: ROM_STATE_VERSION,
        start_info_flags: si.flags,
        console_mfn: si.console.mfn,
        console_evtchn: si.console.evtchn,
        store_mfn: si.store_mfn,
        store_evtchn: si.store_evtchn,
        kernel_frame_limit: plan.kernel_frame_limit(),
        ram_end: plan.ram_end,
        boot_l3_mfn: frames.mfn(boot_l3),
        rom_area_l1_mfns: area_l1.map(|p| frames.mfn(p)),
        entry: image.entry,
        entry_esp: ENTRY_ESP,
        pool_next: 0,
        pool_free: pool_mfns_len,
        rom_size: rom.len() as u32,
        bootstrap_l3_mfn: frames.mfn(si.pt_base >> 12),
        vmi_init_calls: 0,
        ..entry_registers(protocol)
    };
    // SAFETY: the state struct fits the first state page (asserted in
    // rom_state.rs).
    unsafe { core::ptr::write_volatile(state_base as *mut RomState, state) };

    // Page-table frames must have no writable mapping before Xen types
    // them: make the ROM area's and the boot root's read-only here.
    let tables = area_l1.iter().copied().chain(root.tables().iter().copied());
    for pfn in tables {
        // SAFETY: remaps pool frames the loader no longer writes.
        unsafe { xen.update_va_mapping(pfn << 12, (u64::from(frames.mfn(pfn)) << 12) | PTE_RO, 0) }
            .map_err(xen_err("making a page-table frame read-only"))?;
    }
    // SAFETY: a TLB flush has no memory-safety effect.
    unsafe { xen.mmuext_op(&[MmuextOp::tlb_flush_local()], u32::from(DOMID_SELF)) }
        .map_err(|e| BootError::Xen("a TLB flush", e.error))?;

    // Link the ROM area into the bootstrap address space (so the handover
    // code runs from its alias), then pin the kernel's root.
    // SAFETY: pt_base is the mapped bootstrap L3.
    let l3 = unsafe { &*(si.pt_base as *const [u64; 512]) };
    let top_l2_mfn = ((l3[PAE_TOP_L3_SLOT as usize] & PTE_FRAME) >> 12) as u32;
    let mut links = [MmuUpdate::default(); ROM_AREA_L1_TABLES as usize];
    for (i, (slot, pfn)) in rom_area_l2_slots().zip(area_l1).enumerate() {
        links[i] = MmuUpdate::normal_pt_update(
            (u64::from(top_l2_mfn) << 12) + u64::from(slot) * 8,
            (u64::from(frames.mfn(pfn)) << 12) | PTE_RW,
        );
    }
    // SAFETY: maps the ROM area, which nothing in the loader uses yet.
    unsafe { xen.mmu_update(&links, u32::from(DOMID_SELF)) }
        .map_err(|e| BootError::Xen("linking the ROM area into the bootstrap tables", e.error))?;
    // SAFETY: pinning validates the new root; the current one is untouched.
    unsafe {
        xen.mmuext_op(
            &[MmuextOp::pin_l3_table(Mfn(frames.mfn(boot_l3)))],
            u32::from(DOMID_SELF),
        )
    }
    .map_err(|e| BootError::Xen("pinning the kernel's first address space", e.error))?;
    con.line(format_args!(
        "xen-vmi-rom: handing over to the ROM at {:#x} ({} bytes; virtual_top {:#x})",
        ROM_CODE_VA,
        rom.len(),
        ROM_AREA_START
    ));
    Ok(())
}

/// Copies `seg` of `src` (file offsets relative to `src`) into kernel
/// memory, zero-filling past its file bytes, a page at a time.
fn load(src: &[u8], seg: &kernel_image::Segment, k2m: &[u32]) -> Result<(), BootError> {
    let mut addr = seg.phys & !0xFFF;
    let end = seg.phys + seg.mem_len;
    while addr < end {
        let mfn = k2m[(addr >> 12) as usize];
        with_frame(mfn, |page| {
            // This page's part of the segment: page offsets lo..hi.
            let lo = seg.phys.max(addr) - addr;
            let hi = end.min(addr + 4096) - addr;
            let seg_off = addr + lo - seg.phys;
            let from_file = seg.file_len.saturating_sub(seg_off).min(hi - lo);
            let (file_part, zero_part) =
                page[lo as usize..hi as usize].split_at_mut(from_file as usize);
            if from_file > 0 {
                let src_at = (seg.file_offset + seg_off) as usize;
                file_part.copy_from_slice(&src[src_at..src_at + from_file as usize]);
            }
            zero_part.fill(0);
        })?;
        addr += 4096;
    }
    Ok(())
}

/// The registers and selectors a kernel of `protocol` is entered with
/// (the rest of `RomState` is the loader's business).
fn entry_registers(protocol: BootProtocol) -> RomState {
    match protocol {
        BootProtocol::Multiboot => RomState {
            entry_eax: MULTIBOOT_BOOTLOADER_MAGIC,
            entry_ebx: MBI_PHYS,
            ..RomState::default()
        },
        // boot.txt, "32-bit BOOT PROTOCOL": ESI the zero page; EBP, EDI and
        // EBX zero; a GDT with flat __BOOT_CS and __BOOT_DS, loaded in CS
        // and DS, ES, SS (and FS, GS, as Linux's own setup leaves them).
        BootProtocol::Linux32 => RomState {
            entry_esi: ZERO_PAGE_PHYS,
            entry_gdt_base: BOOT_GDT_PHYS,
            entry_gdt_limit: (linux_boot::BOOT_GDT.len() * 8 - 1) as u32,
            entry_cs: u32::from(linux_boot::BOOT_CS),
            entry_ds: u32::from(linux_boot::BOOT_DS),
            ..RomState::default()
        },
    }
}

/// The zero page, the command line and the boot GDT of a Linux kernel.
fn write_linux_boot_info(
    con: &mut Console,
    kernel: &[u8],
    image: &kernel_image::KernelImage,
    plan: &MemoryPlan,
    cmdline: &[u8],
    initrd: Option<(u32, u32)>,
    k2m: &[u32],
) -> Result<(), BootError> {
    let max = image
        .setup
        .map_or(VMLINUX_CMDLINE_SIZE, |h| h.cmdline_size)
        .min(4095) as usize;
    let n = cmdline.len().min(max);
    if n < cmdline.len() {
        con.line(format_args!(
            "xen-vmi-rom: the command line ({} bytes) is longer than the kernel takes (cmdline_size {max}): cut",
            cmdline.len()
        ));
    }
    with_frame(k2m[(LINUX_CMDLINE_PHYS >> 12) as usize], |page| {
        page.fill(0);
        page[..n].copy_from_slice(&cmdline[..n]);
    })?;
    with_frame(k2m[(BOOT_GDT_PHYS >> 12) as usize], |page| {
        page.fill(0);
        for (i, d) in linux_boot::BOOT_GDT.iter().enumerate() {
            page[i * 8..i * 8 + 8].copy_from_slice(&d.to_le_bytes());
        }
    })?;
    let e820 = plan.e820();
    let params = ZeroPageParams {
        header: image
            .setup
            .map(|h| &kernel[SETUP_HEADER_START..h.header_end]),
        entry: image.entry,
        e820: &e820,
        alt_mem_k: plan.kib_above_1mib(),
        cmd_line_ptr: LINUX_CMDLINE_PHYS,
        ramdisk_image: initrd.map_or(0, |r| r.0),
        ramdisk_size: initrd.map_or(0, |r| r.1),
    };
    with_frame(k2m[(ZERO_PAGE_PHYS >> 12) as usize], |page| {
        linux_boot::write_zero_page(page, &params)
    })
}

fn set_m2p(
    frames: &Frames<'_>,
    plan: &MemoryPlan,
    k2m: &[u32],
    rom_first: u32,
    rom_pages: u32,
) -> Result<(), BootError> {
    let mut batch = [MmuUpdate::default(); 128];
    let mut n = 0;
    let flush = |batch: &mut [MmuUpdate; 128], n: &mut usize| -> Result<(), BootError> {
        // SAFETY: m2p updates change no mapping.
        unsafe { hypervisor().mmu_update(&batch[..*n], u32::from(DOMID_SELF)) }
            .map_err(|e| BootError::Xen("an m2p update", e.error))?;
        *n = 0;
        Ok(())
    };
    // Every frame the ROM keeps gets a number past the kernel's frames, so
    // Xen's m2p can never name one of them as kernel memory.
    let rom_frames = rom_first..rom_first + rom_pages;
    let kept = (0..plan.first_kernel_pfn)
        .filter(move |pfn| !rom_frames.contains(pfn))
        .map(|pfn| (frames.mfn(pfn), plan.kernel_frame_limit() + pfn));
    let frames_to_number = plan
        .kernel_frames()
        .map(|kfn| (k2m[kfn as usize], kfn))
        .chain((0..rom_pages).map(|i| (frames.mfn(rom_first + i), (ROM_KERNEL_PHYS >> 12) + i)))
        .chain(kept);
    for (mfn, kfn) in frames_to_number {
        batch[n] = MmuUpdate::machphys_update(Mfn(mfn), Pfn(kfn));
        n += 1;
        if n == batch.len() {
            flush(&mut batch, &mut n)?;
        }
    }
    if n > 0 {
        flush(&mut batch, &mut n)?;
    }
    Ok(())
}

/// The boot root's page-table frames (pfns), the L3 first.
struct BootRoot {
    tables: [u32; 1024],
    count: usize,
}

impl BootRoot {
    fn l3(&self) -> u32 {
        self.tables[0]
    }

    fn add(&mut self, pfn: u32) {
        self.tables[self.count] = pfn;
        self.count += 1;
    }

    fn tables(&self) -> &[u32] {
        &self.tables[..self.count]
    }
}

/// L3 -> L2s -> L1s mapping every kernel frame at its own address (RAM
/// read-write, the ROM read-only), plus the ROM area. Returns the L3's pfn.
fn build_boot_root(
    pool: &mut Pool,
    frames: &Frames<'_>,
    plan: &MemoryPlan,
    k2m: &[u32],
    area_l1: &[u32],
) -> BootRoot {
    let mut root = BootRoot {
        tables: [0; 1024],
        count: 0,
    };
    let (l3_pfn, l3) = pool.take();
    root.add(l3_pfn);
    let mut l2s: [Option<(u32, &'static mut [u64; 512])>; 4] = [None, None, None, None];
    let limit = plan.kernel_frame_limit();
    let mut kfn = 0;
    while kfn < limit {
        let slot = (kfn >> 18) as usize;
        if l2s[slot].is_none() {
            let (p, t) = pool.take();
            root.add(p);
            l2s[slot] = Some((p, t));
        }
        let (l1_pfn, l1) = pool.take();
        root.add(l1_pfn);
        for (i, e) in l1.iter_mut().enumerate() {
            let k = kfn + i as u32;
            if k >= limit || k2m[k as usize] == u32::MAX {
                continue;
            }
            // The reserved area (the ROM and the empty bus) is read-only.
            let reserved = (LOW_RAM_END >> 12..HIGH_RAM_START >> 12).contains(&k);
            let flags = if reserved { PTE_RO } else { PTE_RW };
            *e = (u64::from(k2m[k as usize]) << 12) | flags | PTE_USER;
        }
        let (_, l2) = l2s[slot].as_mut().expect("allocated above");
        l2[((kfn >> 9) & 511) as usize] = (u64::from(frames.mfn(l1_pfn)) << 12) | PTE_RW | PTE_USER;
        kfn += 512;
    }
    let top = PAE_TOP_L3_SLOT as usize;
    if l2s[top].is_none() {
        let (p, t) = pool.take();
        root.add(p);
        l2s[top] = Some((p, t));
    }
    let (_, top_l2) = l2s[top].as_mut().expect("allocated above");
    for (slot, pfn) in rom_area_l2_slots().zip(area_l1) {
        top_l2[slot as usize] = (u64::from(frames.mfn(*pfn)) << 12) | PTE_RW;
    }
    for (slot, l2) in l2s.iter().enumerate() {
        if let Some((pfn, _)) = l2 {
            l3[slot] = (u64::from(frames.mfn(*pfn)) << 12) | L3E;
        }
    }
    root
}
