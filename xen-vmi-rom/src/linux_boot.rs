//! The Linux/x86 boot protocol, 32-bit entry (the kernel's
//! Documentation/x86/boot.txt and zero-page.txt, 2.6.2x-2.6.3x): the setup
//! header a bzImage carries at 0x1F1, and the "zero page" (`struct
//! boot_params`) a boot loader fills for the kernel's 32-bit entry point.
//!
//! Pure functions over bytes: [`SetupHeader::parse`] reads and checks a
//! bzImage's header, [`write_zero_page`] fills the 4 KiB the kernel finds
//! at ESI. Offsets are those of the zero page (the setup header sits at the
//! same offsets in the image and in the zero page).

/// Where the setup header starts (zero page and image alike).
pub const SETUP_HEADER_START: usize = 0x1F1;
/// Where the setup header area of the zero page ends (`edd_mbr_sig_buffer`
/// follows at 0x290).
pub const SETUP_HEADER_END: usize = 0x290;

/// Zero-page and header offsets (zero-page.txt, boot.txt "THE REAL-MODE
/// KERNEL HEADER").
pub mod offset {
    /// `alt_mem_k`: KiB of memory above 1 MiB (the pre-E820 figure).
    pub const ALT_MEM_K: usize = 0x1E0;
    /// `e820_entries`: entries in `e820_map`.
    pub const E820_ENTRIES: usize = 0x1E8;
    /// `setup_sects`: 512-byte sectors of setup code after the boot sector
    /// (0 means 4).
    pub const SETUP_SECTS: usize = 0x1F1;
    /// `syssize` (2.04+): size of the protected-mode code in 16-byte units.
    pub const SYSSIZE: usize = 0x1F4;
    /// `vid_mode`: the video mode the real-mode code sets (0xFFFF: normal).
    pub const VID_MODE: usize = 0x1FA;
    /// `boot_flag`: 0xAA55.
    pub const BOOT_FLAG: usize = 0x1FE;
    /// `jump`: a short jump (EB, offset from 0x202) over the header; the
    /// offset gives the header's length.
    pub const JUMP: usize = 0x200;
    /// `header`: "HdrS".
    pub const HEADER: usize = 0x202;
    /// `version`: the boot protocol version (major << 8 | minor).
    pub const VERSION: usize = 0x206;
    /// `type_of_loader`: the boot loader's id (0xFF: undefined).
    pub const TYPE_OF_LOADER: usize = 0x210;
    /// `loadflags`.
    pub const LOADFLAGS: usize = 0x211;
    /// `code32_start`: the 32-bit entry point (the load address of the
    /// protected-mode code by default).
    pub const CODE32_START: usize = 0x214;
    /// `ramdisk_image`, `ramdisk_size`: the initrd's address and length.
    pub const RAMDISK_IMAGE: usize = 0x218;
    pub const RAMDISK_SIZE: usize = 0x21C;
    /// `heap_end_ptr` (2.01+), real-mode only.
    pub const HEAP_END_PTR: usize = 0x224;
    /// `cmd_line_ptr` (2.02+): the command line's 32-bit address.
    pub const CMD_LINE_PTR: usize = 0x228;
    /// `initrd_addr_max` (2.03+): highest address the initrd may occupy.
    pub const INITRD_ADDR_MAX: usize = 0x22C;
    /// `kernel_alignment` (2.05+), `relocatable_kernel` (2.05+).
    pub const KERNEL_ALIGNMENT: usize = 0x230;
    pub const RELOCATABLE_KERNEL: usize = 0x234;
    /// `xloadflags` (2.12+).
    pub const XLOADFLAGS: usize = 0x236;
    /// `cmdline_size` (2.06+): longest command line, NUL excluded.
    pub const CMDLINE_SIZE: usize = 0x238;
    /// `hardware_subarch` (2.07+) and its data.
    pub const HARDWARE_SUBARCH: usize = 0x23C;
    pub const HARDWARE_SUBARCH_DATA: usize = 0x240;
    /// `setup_data` (2.09+): 64-bit address of a linked list (0: none).
    pub const SETUP_DATA: usize = 0x250;
    /// `init_size` (2.10+): memory the kernel needs from its load address
    /// before it can read its memory map.
    pub const INIT_SIZE: usize = 0x260;
    /// `e820_map`: up to [`super::E820_MAX`] entries of 20 bytes.
    pub const E820_MAP: usize = 0x2D0;
}

/// "HdrS", little-endian at 0x202.
pub const HEADER_MAGIC: u32 = u32::from_le_bytes(*b"HdrS");
/// `boot_flag`.
pub const BOOT_FLAG: u16 = 0xAA55;
/// Oldest protocol with a 32-bit command line pointer (`cmd_line_ptr`):
/// what a loader that does not run the real-mode setup needs.
pub const MIN_VERSION: u16 = 0x0202;
/// `loadflags` bit 0: the protected-mode code is loaded at 0x100000.
pub const LOADED_HIGH: u8 = 1 << 0;
/// `loadflags` bits a loader sets (QUIET_FLAG, KEEP_SEGMENTS,
/// CAN_USE_HEAP): this loader sets none of them.
pub const LOADER_OWNED_FLAGS: u8 = (1 << 5) | (1 << 6) | (1 << 7);
/// `loadflags` bit 6: the loader asks the kernel not to reload segments.
pub const KEEP_SEGMENTS: u8 = 1 << 6;
/// `xloadflags` bit 0: the kernel has the 64-bit entry point (an x86_64
/// kernel).
pub const XLF_KERNEL_64: u16 = 1 << 0;
/// `type_of_loader` for a loader without an assigned id (boot.txt).
pub const LOADER_TYPE_UNDEFINED: u8 = 0xFF;
/// `hardware_subarch` of a normal PC (X86_SUBARCH_PC): not lguest (1), not
/// Xen (2), whose entry paths a Linux kernel would take instead.
pub const SUBARCH_PC: u32 = 0;
/// `initrd_addr_max` of kernels before 2.03.
pub const DEFAULT_INITRD_ADDR_MAX: u32 = 0x37FF_FFFF;
/// `cmdline_size` of kernels before 2.06 (boot.txt: 255 characters).
pub const DEFAULT_CMDLINE_SIZE: u32 = 255;
/// Where the protected-mode code of a bzImage is loaded.
pub const LOAD_HIGH_ADDRESS: u32 = 0x10_0000;
/// Entries `e820_map` holds (E820MAX).
pub const E820_MAX: usize = 128;
/// The protocol version this loader writes in the header it makes up for
/// a vmlinux (which carries none): 2.07, the last level whose loader
/// fields ([`write_zero_page`]) it fills (`hardware_subarch`).
pub const SYNTHESIZED_VERSION: u16 = 0x0207;

/// The flat code and data selectors of the 32-bit boot protocol (`__BOOT_CS`,
/// `__BOOT_DS`): a loader enters the kernel with them loaded.
pub const BOOT_CS: u16 = 0x10;
pub const BOOT_DS: u16 = 0x18;

/// A boot GDT with flat 4 GiB `__BOOT_CS` (execute/read) and `__BOOT_DS`
/// (read/write) descriptors at 0x10 and 0x18, DPL 0, as boot.txt asks of a
/// 32-bit loader: null, unused, code, data.
pub const BOOT_GDT: [u64; 4] = [0, 0, 0x00CF_9A00_0000_FFFF, 0x00CF_9200_0000_FFFF];

/// Why a bzImage cannot be started.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SetupError {
    /// The file ends inside the setup header or before the protected-mode
    /// code.
    Truncated { need: usize, have: usize },
    /// Boot protocol older than 2.02 (no 32-bit command line pointer).
    ProtocolTooOld { version: u16 },
    /// `loadflags` LOADED_HIGH clear: a zImage, whose code loads at 0x10000.
    NotLoadedHigh,
    /// An x86_64 kernel (`xloadflags` XLF_KERNEL_64).
    Kernel64,
    /// `code32_start` below 1 MiB.
    EntryBelow1MiB { code32_start: u32 },
    /// `syssize` promises more protected-mode code than the file holds.
    PayloadTruncated { syssize_bytes: u32, have: u32 },
}

impl SetupError {
    /// A one-line explanation for the console.
    pub fn describe(&self) -> &'static str {
        match self {
            Self::Truncated { .. } => "a truncated bzImage: the file ends inside the setup header or its setup code",
            Self::ProtocolTooOld { .. } => "a bzImage with a boot protocol older than 2.02 (no 32-bit command line pointer): only the real-mode setup could start it",
            Self::NotLoadedHigh => "a zImage (loadflags LOADED_HIGH clear): its protected-mode code loads at 0x10000, this loader places kernels at 1 MiB",
            Self::Kernel64 => "a 64-bit (x86_64) kernel (xloadflags XLF_KERNEL_64): a VMI kernel is i386",
            Self::EntryBelow1MiB { .. } => "a bzImage whose code32_start lies below 1 MiB",
            Self::PayloadTruncated { .. } => "a truncated bzImage: syssize promises more protected-mode code than the file holds",
        }
    }
}

fn u8_at(b: &[u8], off: usize) -> Option<u8> {
    b.get(off).copied()
}

fn u16_at(b: &[u8], off: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(off..off + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], off: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(off..off + 4)?.try_into().ok()?))
}

fn put_u8(p: &mut [u8], off: usize, v: u8) {
    p[off] = v;
}

fn put_u16(p: &mut [u8], off: usize, v: u16) {
    p[off..off + 2].copy_from_slice(&v.to_le_bytes());
}

fn put_u32(p: &mut [u8], off: usize, v: u32) {
    p[off..off + 4].copy_from_slice(&v.to_le_bytes());
}

fn put_u64(p: &mut [u8], off: usize, v: u64) {
    p[off..off + 8].copy_from_slice(&v.to_le_bytes());
}

/// Whether `bytes` carries a Linux setup header ("HdrS" at 0x202).
pub fn has_setup_header(bytes: &[u8]) -> bool {
    u32_at(bytes, offset::HEADER) == Some(HEADER_MAGIC)
}

/// What the loader needs of a bzImage's setup header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SetupHeader {
    /// Boot protocol version (e.g. 0x0209 for 2.09).
    pub version: u16,
    /// `loadflags` as the kernel ships them.
    pub loadflags: u8,
    /// Bytes of the image before the protected-mode code:
    /// (setup_sects + 1) * 512, setup_sects 0 counting as 4.
    pub setup_len: u32,
    /// Bytes of protected-mode code in the file (the rest of it).
    pub payload_len: u32,
    /// The 32-bit entry point, and the load address of the payload.
    pub code32_start: u32,
    /// Highest address the initrd may use (inclusive).
    pub initrd_addr_max: u32,
    /// Longest command line the kernel takes (NUL excluded).
    pub cmdline_size: u32,
    /// Memory the kernel needs from its load address (2.10+ `init_size`;
    /// older kernels: the payload's length, a lower bound).
    pub init_size: u32,
    /// End (exclusive, image offset) of the header: 0x202 + the jump's
    /// offset byte, capped at [`SETUP_HEADER_END`].
    pub header_end: usize,
}

impl SetupHeader {
    /// Reads and checks the header of the bzImage `bytes`.
    pub fn parse(bytes: &[u8]) -> Result<Self, SetupError> {
        let truncated = |need: usize| SetupError::Truncated {
            need,
            have: bytes.len(),
        };
        // Every field through `cmd_line_ptr` (2.02) must be there.
        let version = u16_at(bytes, offset::VERSION).ok_or(truncated(offset::CMD_LINE_PTR + 4))?;
        if version < MIN_VERSION {
            return Err(SetupError::ProtocolTooOld { version });
        }
        if bytes.len() < offset::CMD_LINE_PTR + 4 {
            return Err(truncated(offset::CMD_LINE_PTR + 4));
        }
        let field32 = |off: usize, since: u16, default: u32| -> Result<u32, SetupError> {
            if version < since {
                return Ok(default);
            }
            u32_at(bytes, off).ok_or(truncated(off + 4))
        };
        let loadflags = u8_at(bytes, offset::LOADFLAGS).ok_or(truncated(offset::LOADFLAGS))?;
        if version >= 0x020C {
            let xloadflags = u16_at(bytes, offset::XLOADFLAGS).ok_or(truncated(0x238))?;
            if xloadflags & XLF_KERNEL_64 != 0 {
                return Err(SetupError::Kernel64);
            }
        }
        if loadflags & LOADED_HIGH == 0 {
            return Err(SetupError::NotLoadedHigh);
        }
        let sects = match u8_at(bytes, offset::SETUP_SECTS).unwrap_or(0) {
            0 => 4,
            n => u32::from(n),
        };
        let setup_len = (sects + 1) * 512;
        if bytes.len() <= setup_len as usize {
            return Err(truncated(setup_len as usize + 1));
        }
        let payload_len = (bytes.len() - setup_len as usize) as u32;
        let syssize = field32(offset::SYSSIZE, 0x0204, 0)?;
        let syssize_bytes = syssize.saturating_mul(16);
        // syssize counts paragraphs, rounded up: up to 15 bytes of slack.
        if syssize_bytes > payload_len.saturating_add(15) {
            return Err(SetupError::PayloadTruncated {
                syssize_bytes,
                have: payload_len,
            });
        }
        let code32_start = field32(offset::CODE32_START, 0, LOAD_HIGH_ADDRESS)?;
        if code32_start < LOAD_HIGH_ADDRESS {
            return Err(SetupError::EntryBelow1MiB { code32_start });
        }
        let init_size = field32(offset::INIT_SIZE, 0x020A, 0)?.max(payload_len);
        let jump = u8_at(bytes, offset::JUMP + 1).unwrap_or(0) as usize;
        let header_end = (offset::HEADER + jump)
            .clamp(offset::CMD_LINE_PTR + 4, SETUP_HEADER_END)
            .min(bytes.len());
        Ok(Self {
            version,
            loadflags,
            setup_len,
            payload_len,
            code32_start,
            initrd_addr_max: field32(offset::INITRD_ADDR_MAX, 0x0203, DEFAULT_INITRD_ADDR_MAX)?,
            cmdline_size: field32(offset::CMDLINE_SIZE, 0x0206, DEFAULT_CMDLINE_SIZE)?,
            init_size,
            header_end,
        })
    }
}

/// One E820 entry (zero-page.txt `struct e820entry`): base, length, type
/// (1 RAM, 2 reserved).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct E820Entry {
    pub addr: u64,
    pub size: u64,
    pub kind: u32,
}

/// E820 type of usable RAM.
pub const E820_RAM: u32 = 1;
/// E820 type of reserved memory.
pub const E820_RESERVED: u32 = 2;

/// What the loader puts in the zero page besides the kernel's own header.
#[derive(Clone, Copy, Debug)]
pub struct ZeroPageParams<'a> {
    /// The image's setup header bytes (image offsets 0x1F1..header_end),
    /// or None for a vmlinux (the loader makes one up).
    pub header: Option<&'a [u8]>,
    /// Entry point, for a made-up header's `code32_start`.
    pub entry: u32,
    /// The memory map.
    pub e820: &'a [E820Entry],
    /// KiB of RAM from 1 MiB up to the first hole.
    pub alt_mem_k: u32,
    /// Kernel-physical address of the NUL-terminated command line.
    pub cmd_line_ptr: u32,
    /// The initrd's kernel-physical address and length (0, 0: none).
    pub ramdisk_image: u32,
    pub ramdisk_size: u32,
}

/// Fills the zero page the kernel finds at ESI: all zero (no video, APM,
/// EDD, EFI or IST information: a headless machine), the kernel's setup
/// header copied at 0x1F1 with the loader's fields written, the E820 map
/// (at most [`E820_MAX`] entries) and `alt_mem_k`.
pub fn write_zero_page(page: &mut [u8; 4096], p: &ZeroPageParams<'_>) {
    page.fill(0);
    let version = match p.header {
        Some(h) => {
            let n = h.len().min(SETUP_HEADER_END - SETUP_HEADER_START);
            page[SETUP_HEADER_START..SETUP_HEADER_START + n].copy_from_slice(&h[..n]);
            u16_at(page, offset::VERSION).unwrap_or(0)
        }
        None => {
            put_u16(page, offset::BOOT_FLAG, BOOT_FLAG);
            put_u32(page, offset::HEADER, HEADER_MAGIC);
            put_u16(page, offset::VERSION, SYNTHESIZED_VERSION);
            put_u16(page, offset::VID_MODE, 0xFFFF);
            put_u8(page, offset::LOADFLAGS, LOADED_HIGH);
            put_u32(page, offset::CODE32_START, p.entry);
            put_u32(page, offset::INITRD_ADDR_MAX, DEFAULT_INITRD_ADDR_MAX);
            put_u32(page, offset::CMDLINE_SIZE, 2047);
            SYNTHESIZED_VERSION
        }
    };
    put_u8(page, offset::TYPE_OF_LOADER, LOADER_TYPE_UNDEFINED);
    let flags = page[offset::LOADFLAGS] & !LOADER_OWNED_FLAGS;
    put_u8(page, offset::LOADFLAGS, flags);
    put_u32(page, offset::RAMDISK_IMAGE, p.ramdisk_image);
    put_u32(page, offset::RAMDISK_SIZE, p.ramdisk_size);
    put_u16(page, offset::HEAP_END_PTR, 0);
    put_u32(page, offset::CMD_LINE_PTR, p.cmd_line_ptr);
    if version >= 0x0207 {
        put_u32(page, offset::HARDWARE_SUBARCH, SUBARCH_PC);
        put_u64(page, offset::HARDWARE_SUBARCH_DATA, 0);
    }
    if version >= 0x0209 {
        put_u64(page, offset::SETUP_DATA, 0);
    }
    put_u32(page, offset::ALT_MEM_K, p.alt_mem_k);
    let n = p.e820.len().min(E820_MAX);
    put_u8(page, offset::E820_ENTRIES, n as u8);
    for (i, e) in p.e820[..n].iter().enumerate() {
        let at = offset::E820_MAP + i * 20;
        put_u64(page, at, e.addr);
        put_u64(page, at + 8, e.size);
        put_u32(page, at + 16, e.kind);
    }
}

/// Reads back the E820 map of a zero page (what a kernel would see).
pub fn read_e820(page: &[u8; 4096]) -> impl Iterator<Item = E820Entry> + '_ {
    let n = usize::from(page[offset::E820_ENTRIES]).min(E820_MAX);
    (0..n).map(move |i| {
        let at = offset::E820_MAP + i * 20;
        E820Entry {
            addr: u64::from_le_bytes(page[at..at + 8].try_into().expect("8 bytes")),
            size: u64::from_le_bytes(page[at + 8..at + 16].try_into().expect("8 bytes")),
            kind: u32_at(page, at + 16).expect("inside the page"),
        }
    })
}

const _: () = {
    assert!(offset::E820_MAP + E820_MAX * 20 <= 0xD00);
    assert!(SETUP_HEADER_END <= offset::E820_MAP);
    assert!(offset::INIT_SIZE + 4 <= SETUP_HEADER_END);
};

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A bzImage of `version` with a 4-sector setup and `payload` bytes of
    /// protected-mode code (tests of kernel_image use it too).
    pub(crate) fn bzimage(version: u16, payload: usize) -> Vec<u8> {
        let mut b = vec![0u8; 5 * 512 + payload];
        b[offset::SETUP_SECTS] = 4;
        put_u32(&mut b, offset::SYSSIZE, (payload as u32).div_ceil(16));
        put_u16(&mut b, offset::BOOT_FLAG, BOOT_FLAG);
        b[offset::JUMP] = 0xEB;
        b[offset::JUMP + 1] = 0x66; // header through 0x268
        put_u32(&mut b, offset::HEADER, HEADER_MAGIC);
        put_u16(&mut b, offset::VERSION, version);
        b[offset::LOADFLAGS] = LOADED_HIGH | KEEP_SEGMENTS;
        put_u32(&mut b, offset::CODE32_START, LOAD_HIGH_ADDRESS);
        put_u32(&mut b, offset::INITRD_ADDR_MAX, 0x7FFF_FFFF);
        put_u32(&mut b, offset::CMDLINE_SIZE, 2047);
        put_u32(&mut b, offset::INIT_SIZE, 0x40_0000);
        for (i, x) in b[5 * 512..].iter_mut().enumerate() {
            *x = i as u8;
        }
        b
    }

    #[test]
    fn a_2_10_header() {
        let h = SetupHeader::parse(&bzimage(0x020A, 0x3000)).unwrap();
        assert_eq!(h.version, 0x020A);
        assert_eq!(h.setup_len, 5 * 512);
        assert_eq!(h.payload_len, 0x3000);
        assert_eq!(h.code32_start, 0x10_0000);
        assert_eq!(h.initrd_addr_max, 0x7FFF_FFFF);
        assert_eq!(h.cmdline_size, 2047);
        assert_eq!(h.init_size, 0x40_0000);
        assert_eq!(h.header_end, 0x268);
    }

    #[test]
    fn older_protocols_get_the_documented_defaults() {
        let h = SetupHeader::parse(&bzimage(0x0202, 0x1000)).unwrap();
        assert_eq!(h.initrd_addr_max, DEFAULT_INITRD_ADDR_MAX);
        assert_eq!(h.cmdline_size, DEFAULT_CMDLINE_SIZE);
        // No init_size before 2.10: the payload is the lower bound.
        assert_eq!(h.init_size, 0x1000);
        let h = SetupHeader::parse(&bzimage(0x0205, 0x1000)).unwrap();
        assert_eq!(h.cmdline_size, DEFAULT_CMDLINE_SIZE);
        assert_eq!(h.initrd_addr_max, 0x7FFF_FFFF);
    }

    #[test]
    fn setup_sects_zero_means_four() {
        let mut b = bzimage(0x0206, 0x1000);
        b[offset::SETUP_SECTS] = 0;
        assert_eq!(SetupHeader::parse(&b).unwrap().setup_len, 5 * 512);
        b[offset::SETUP_SECTS] = 2;
        let h = SetupHeader::parse(&b).unwrap();
        assert_eq!((h.setup_len, h.payload_len), (3 * 512, 0x1000 + 2 * 512));
    }

    #[test]
    fn bad_headers_are_named() {
        assert_eq!(
            SetupHeader::parse(&bzimage(0x0201, 0x1000)),
            Err(SetupError::ProtocolTooOld { version: 0x0201 })
        );
        let mut b = bzimage(0x020C, 0x1000);
        put_u16(&mut b, offset::XLOADFLAGS, XLF_KERNEL_64);
        assert_eq!(SetupHeader::parse(&b), Err(SetupError::Kernel64));
        // Before 2.12 the same bytes are padding, not a flag.
        put_u16(&mut b, offset::VERSION, 0x020B);
        assert!(SetupHeader::parse(&b).is_ok());
        let mut b = bzimage(0x0204, 0x1000);
        b[offset::LOADFLAGS] = 0;
        assert_eq!(SetupHeader::parse(&b), Err(SetupError::NotLoadedHigh));
        let mut b = bzimage(0x0204, 0x1000);
        put_u32(&mut b, offset::CODE32_START, 0x1_0000);
        assert_eq!(
            SetupHeader::parse(&b),
            Err(SetupError::EntryBelow1MiB {
                code32_start: 0x1_0000
            })
        );
        let b = bzimage(0x0204, 0x1000);
        assert_eq!(
            SetupHeader::parse(&b[..5 * 512 + 0x800]),
            Err(SetupError::PayloadTruncated {
                syssize_bytes: 0x1000,
                have: 0x800
            })
        );
        assert!(matches!(
            SetupHeader::parse(&b[..0x210]),
            Err(SetupError::Truncated { .. })
        ));
        assert!(matches!(
            SetupHeader::parse(&b[..5 * 512]),
            Err(SetupError::Truncated { .. })
        ));
    }

    fn params<'a>(header: Option<&'a [u8]>, e820: &'a [E820Entry]) -> ZeroPageParams<'a> {
        ZeroPageParams {
            header,
            entry: 0x10_0000,
            e820,
            alt_mem_k: 63 * 1024,
            cmd_line_ptr: 0xA000,
            ramdisk_image: 0x300_0000,
            ramdisk_size: 0x12345,
        }
    }

    const MAP: [E820Entry; 3] = [
        E820Entry {
            addr: 0,
            size: 0x9_F000,
            kind: E820_RAM,
        },
        E820Entry {
            addr: 0x9_F000,
            size: 0x6_1000,
            kind: E820_RESERVED,
        },
        E820Entry {
            addr: 0x10_0000,
            size: 0x3F0_0000,
            kind: E820_RAM,
        },
    ];

    #[test]
    fn zero_page_of_a_bzimage() {
        let image = bzimage(0x020A, 0x1000);
        let h = SetupHeader::parse(&image).unwrap();
        let mut page = [0xEEu8; 4096];
        write_zero_page(
            &mut page,
            &params(Some(&image[SETUP_HEADER_START..h.header_end]), &MAP),
        );
        // The kernel's own fields are there, the loader's written.
        assert_eq!(u32_at(&page, offset::HEADER), Some(HEADER_MAGIC));
        assert_eq!(u16_at(&page, offset::VERSION), Some(0x020A));
        assert_eq!(u32_at(&page, offset::INIT_SIZE), Some(0x40_0000));
        assert_eq!(page[offset::TYPE_OF_LOADER], 0xFF);
        assert_eq!(
            page[offset::LOADFLAGS],
            LOADED_HIGH,
            "KEEP_SEGMENTS cleared"
        );
        assert_eq!(u32_at(&page, offset::CMD_LINE_PTR), Some(0xA000));
        assert_eq!(u32_at(&page, offset::RAMDISK_IMAGE), Some(0x300_0000));
        assert_eq!(u32_at(&page, offset::RAMDISK_SIZE), Some(0x12345));
        assert_eq!(u32_at(&page, offset::HARDWARE_SUBARCH), Some(0));
        assert_eq!(u32_at(&page, offset::ALT_MEM_K), Some(63 * 1024));
        assert_eq!(read_e820(&page).collect::<Vec<_>>(), MAP);
        // Nothing else is left from before: screen_info and the rest zero.
        assert!(page[..offset::ALT_MEM_K].iter().all(|&b| b == 0));
        assert!(page[offset::E820_MAP + 3 * 20..].iter().all(|&b| b == 0));
    }

    #[test]
    fn zero_page_of_a_vmlinux_has_a_made_up_header() {
        let mut page = [0u8; 4096];
        write_zero_page(&mut page, &params(None, &MAP));
        assert_eq!(u16_at(&page, offset::BOOT_FLAG), Some(BOOT_FLAG));
        assert_eq!(u32_at(&page, offset::HEADER), Some(HEADER_MAGIC));
        assert_eq!(u16_at(&page, offset::VERSION), Some(SYNTHESIZED_VERSION));
        assert_eq!(u32_at(&page, offset::CODE32_START), Some(0x10_0000));
        assert_eq!(page[offset::LOADFLAGS], LOADED_HIGH);
        assert_eq!(page[offset::TYPE_OF_LOADER], 0xFF);
        assert_eq!(u32_at(&page, offset::HARDWARE_SUBARCH), Some(SUBARCH_PC));
    }

    #[test]
    fn e820_map_is_capped() {
        let many = [MAP[0]; 200];
        let mut page = [0u8; 4096];
        write_zero_page(&mut page, &params(None, &many));
        assert_eq!(usize::from(page[offset::E820_ENTRIES]), E820_MAX);
        assert_eq!(read_e820(&page).count(), E820_MAX);
    }

    #[test]
    fn boot_gdt_descriptors_are_flat_code_and_data() {
        // Base 0, limit 0xFFFFF pages, G and D set; type 0x9A / 0x92.
        for (sel, access) in [(BOOT_CS, 0x9A), (BOOT_DS, 0x92)] {
            let d = BOOT_GDT[usize::from(sel / 8)];
            assert_eq!(d & 0xFFFF, 0xFFFF);
            assert_eq!((d >> 16) & 0xFF_FFFF, 0);
            assert_eq!((d >> 40) & 0xFF, access);
            assert_eq!((d >> 48) & 0xF, 0xF);
            assert_eq!((d >> 52) & 0xF, 0xC);
            assert_eq!(d >> 56, 0);
        }
    }

    proptest::proptest! {
        #[test]
        fn parse_never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..3000)) {
            let _ = SetupHeader::parse(&bytes);
        }

        #[test]
        fn parsed_headers_are_consistent(
            version in 0x0200u16..0x0210, sects in 0u8..8, payload in 1usize..5000,
            jump in proptest::num::u8::ANY, loadflags in proptest::num::u8::ANY,
        ) {
            let mut b = bzimage(version, 0);
            b[offset::SETUP_SECTS] = sects;
            b[offset::JUMP + 1] = jump;
            b[offset::LOADFLAGS] = loadflags;
            let setup = (if sects == 0 { 4 } else { usize::from(sects) } + 1) * 512;
            b.resize(setup.max(b.len()), 0);
            b.truncate(setup);
            b.extend(core::iter::repeat_n(0x90, payload));
            put_u32(&mut b, offset::SYSSIZE, (payload as u32).div_ceil(16));
            match SetupHeader::parse(&b) {
                Ok(h) => {
                    proptest::prop_assert!(version >= MIN_VERSION);
                    proptest::prop_assert!(loadflags & LOADED_HIGH != 0);
                    proptest::prop_assert_eq!(h.setup_len as usize + h.payload_len as usize, b.len());
                    proptest::prop_assert!(h.init_size >= h.payload_len);
                    proptest::prop_assert!(h.header_end <= SETUP_HEADER_END);
                    let mut page = [0u8; 4096];
                    write_zero_page(&mut page, &params(Some(&b[SETUP_HEADER_START..h.header_end]), &MAP));
                    proptest::prop_assert_eq!(page[offset::LOADFLAGS] & LOADER_OWNED_FLAGS, 0);
                    proptest::prop_assert_eq!(u16_at(&page, offset::VERSION), Some(version));
                }
                Err(SetupError::ProtocolTooOld { .. }) => proptest::prop_assert!(version < MIN_VERSION),
                Err(SetupError::NotLoadedHigh) => proptest::prop_assert!(loadflags & LOADED_HIGH == 0),
                Err(e) => proptest::prop_assert!(false, "unexpected {:?}", e),
            }
        }
    }
}
