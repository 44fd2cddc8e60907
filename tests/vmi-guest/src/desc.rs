//! Descriptor tables: the GDT (flat kernel and user segments, TSS, LDT
//! slot, spares for the cases), the IDT and the TSS, with the descriptor
//! encodings of the Intel SDM vol. 3, "Segment Descriptors" and "IDT
//! Descriptors".
//!
//! Selector layout. SYSENTER/SYSEXIT derive the user segments from
//! IA32_SYSENTER_CS: user CS = kernel CS + 16, user SS = kernel CS + 24,
//! kernel SS = kernel CS + 8. Hence kernel code 0x08, kernel data 0x10,
//! user code 0x18, user data 0x20.
//!
//! Kernel selectors carry the kernel's privilege level, taken from CS after
//! VMI_Init (`pv::kernel_rpl`): 0 natively, possibly 1 under a hypervisor.
//! Descriptors are written with DPL 0; a hypervisor that runs the kernel in
//! ring 1 adjusts them as it validates them.

use native_rom::hw::cpu::DescriptorTablePointer;

use crate::sync::Global;

/// GDT index of the kernel code segment.
pub const GDT_KERNEL_CODE: usize = 1;
/// GDT index of the kernel data segment.
pub const GDT_KERNEL_DATA: usize = 2;
/// GDT index of the user code segment.
pub const GDT_USER_CODE: usize = 3;
/// GDT index of the user data segment.
pub const GDT_USER_DATA: usize = 4;
/// GDT index of the kernel's TSS.
pub const GDT_TSS: usize = 5;
/// GDT index of the LDT descriptor.
pub const GDT_LDT: usize = 6;
/// GDT index of a second TSS (SetTR case).
pub const GDT_TSS_ALT: usize = 7;
/// First GDT index free for the cases.
pub const GDT_SPARE: usize = 8;
/// Entries in use (the GDT's limit covers these).
pub const GDT_ENTRIES: usize = 32;

/// Selector of a GDT index with requested privilege level `rpl`.
pub const fn selector(index: usize, rpl: u16) -> u16 {
    ((index as u16) << 3) | rpl
}

/// User code selector (RPL 3).
pub const USER_CS: u16 = selector(GDT_USER_CODE, 3);
/// User data selector (RPL 3).
pub const USER_DS: u16 = selector(GDT_USER_DATA, 3);
/// The TSS selector.
pub const TSS_SELECTOR: u16 = selector(GDT_TSS, 0);
/// The second TSS's selector.
pub const TSS_ALT_SELECTOR: u16 = selector(GDT_TSS_ALT, 0);
/// The LDT descriptor's selector.
pub const LDT_SELECTOR: u16 = selector(GDT_LDT, 0);

/// Access byte: present, DPL 0, code, execute/read.
pub const ACCESS_KERNEL_CODE: u8 = 0x9A;
/// Access byte: present, DPL 0, data, read/write.
pub const ACCESS_KERNEL_DATA: u8 = 0x92;
/// Access byte: present, DPL 3, code, execute/read.
pub const ACCESS_USER_CODE: u8 = 0xFA;
/// Access byte: present, DPL 3, data, read/write.
pub const ACCESS_USER_DATA: u8 = 0xF2;
/// Access byte: present, DPL 0, 32-bit TSS, available.
pub const ACCESS_TSS_AVAILABLE: u8 = 0x89;
/// The busy bit of a TSS descriptor's type field.
pub const ACCESS_TSS_BUSY_BIT: u8 = 0x02;
/// Access byte: present, DPL 0, LDT.
pub const ACCESS_LDT: u8 = 0x82;
/// Flags nibble: 4 KiB granularity, 32-bit.
pub const FLAGS_4K_32BIT: u8 = 0xC;
/// Flags nibble: byte granularity.
pub const FLAGS_BYTE: u8 = 0x0;

/// A segment or system descriptor: `base`, 20-bit `limit`, access byte and
/// flags nibble (G, D/B, L, AVL).
pub const fn descriptor(base: u32, limit: u32, access: u8, flags: u8) -> u64 {
    let low = (limit & 0xFFFF) | ((base & 0xFFFF) << 16);
    let high = ((base >> 16) & 0xFF)
        | ((access as u32) << 8)
        | (limit & 0xF_0000)
        | (((flags & 0xF) as u32) << 20)
        | (base & 0xFF00_0000);
    (low as u64) | ((high as u64) << 32)
}

/// A flat 4 GiB segment.
pub const fn flat_segment(access: u8) -> u64 {
    descriptor(0, 0xF_FFFF, access, FLAGS_4K_32BIT)
}

/// The access byte of a descriptor.
pub const fn descriptor_access(desc: u64) -> u8 {
    (desc >> 40) as u8
}

/// IDT gate type/attributes: present, DPL 0, 32-bit interrupt gate.
pub const GATE_INTERRUPT: u8 = 0x8E;
/// IDT gate type/attributes: present, DPL 3, 32-bit interrupt gate
/// (reachable by INT n from ring 3).
pub const GATE_INTERRUPT_USER: u8 = 0xEE;

/// An IDT gate to `offset` in segment `selector`.
pub const fn gate(offset: u32, selector: u16, type_attr: u8) -> u64 {
    let low = (offset & 0xFFFF) | ((selector as u32) << 16);
    let high = (offset & 0xFFFF_0000) | ((type_attr as u32) << 8);
    (low as u64) | ((high as u64) << 32)
}

/// A descriptor table in its own page (a hypervisor takes GDT frames whole).
#[repr(C, align(4096))]
pub struct Table(pub [u64; 512]);

impl Table {
    /// The table's linear address.
    pub fn base(table: &Global<Table>) -> u32 {
        table.as_ptr() as u32
    }

    /// The address of entry `index`.
    pub fn entry_ptr(table: &Global<Table>, index: usize) -> *mut u64 {
        (table.as_ptr() as u32 + (index as u32) * 8) as *mut u64
    }

    /// Reads entry `index` (volatile: a VMI call may have written it).
    pub fn read(table: &Global<Table>, index: usize) -> u64 {
        // SAFETY: index < 512 is inside the page; reading a u64 of our own
        // static table.
        unsafe { Self::entry_ptr(table, index & 511).read_volatile() }
    }
}

/// The kernel's GDT.
pub static GDT: Global<Table> = Global::new(Table([0; 512]));
/// The kernel's IDT (256 gates).
pub static IDT: Global<Table> = Global::new(Table([0; 512]));
/// The LDT the cases use.
pub static LDT: Global<Table> = Global::new(Table([0; 512]));
/// A second GDT (SetGDT case copies the kernel's here).
pub static GDT_ALT: Global<Table> = Global::new(Table([0; 512]));
/// A second IDT (SetIDT case).
pub static IDT_ALT: Global<Table> = Global::new(Table([0; 512]));

/// The 32-bit TSS (Intel SDM "32-Bit Task-State Segment"), 104 bytes; no
/// I/O permission bitmap (its offset points past the limit), so ring 3 port
/// access is decided by IOPL alone.
#[repr(C, align(128))]
pub struct Tss {
    /// 0x00 previous task link.
    pub link: u32,
    /// 0x04 ring-0 stack pointer.
    pub esp0: u32,
    /// 0x08 ring-0 stack segment.
    pub ss0: u32,
    /// 0x0C-0x63 the rest of the task state, unused (no hardware task
    /// switches).
    pub unused: [u32; 22],
    /// 0x64 debug trap flag (bit 0).
    pub trap: u16,
    /// 0x66 I/O map base.
    pub iomap_base: u16,
}

const _: () = assert!(core::mem::offset_of!(Tss, esp0) == 4);
const _: () = assert!(core::mem::offset_of!(Tss, ss0) == 8);
const _: () = assert!(core::mem::offset_of!(Tss, iomap_base) == 0x66);
/// The TSS limit (104 bytes, minus one).
pub const TSS_LIMIT: u32 = 103;

impl Tss {
    /// An empty TSS without I/O bitmap.
    pub const fn new() -> Self {
        Tss {
            link: 0,
            esp0: 0,
            ss0: 0,
            unused: [0; 22],
            trap: 0,
            iomap_base: 104,
        }
    }
}

impl Default for Tss {
    fn default() -> Self {
        Self::new()
    }
}

/// The kernel's TSS.
pub static TSS: Global<Tss> = Global::new(Tss::new());
/// The second TSS (SetTR case).
pub static TSS_ALT: Global<Tss> = Global::new(Tss::new());

/// The TSS descriptor for a TSS at `tss`, available (not busy).
pub fn tss_descriptor(tss: &Global<Tss>) -> u64 {
    descriptor(
        tss.as_ptr() as u32,
        TSS_LIMIT,
        ACCESS_TSS_AVAILABLE,
        FLAGS_BYTE,
    )
}

/// The GDT contents the kernel runs with.
pub fn kernel_gdt_entries() -> [(usize, u64); 7] {
    [
        (GDT_KERNEL_CODE, flat_segment(ACCESS_KERNEL_CODE)),
        (GDT_KERNEL_DATA, flat_segment(ACCESS_KERNEL_DATA)),
        (GDT_USER_CODE, flat_segment(ACCESS_USER_CODE)),
        (GDT_USER_DATA, flat_segment(ACCESS_USER_DATA)),
        (GDT_TSS, tss_descriptor(&TSS)),
        (
            GDT_LDT,
            descriptor(LDT.as_ptr() as u32, 8 * 16 - 1, ACCESS_LDT, FLAGS_BYTE),
        ),
        (GDT_TSS_ALT, tss_descriptor(&TSS_ALT)),
    ]
}

/// The pointer LGDT/SetGDT takes for the kernel GDT.
pub fn gdt_pointer() -> DescriptorTablePointer {
    DescriptorTablePointer {
        limit: (GDT_ENTRIES * 8 - 1) as u16,
        base: Table::base(&GDT),
    }
}

/// The pointer LIDT/SetIDT takes for the kernel IDT.
pub fn idt_pointer() -> DescriptorTablePointer {
    DescriptorTablePointer {
        limit: (256 * 8 - 1) as u16,
        base: Table::base(&IDT),
    }
}
