//! Recognising the VMI kernel the loader is given: a Linux bzImage (boot
//! protocol 2.02+, [`crate::linux_boot`]), an i386 ELF executable (a
//! vmlinux, or a multiboot kernel in ELF form), or a multiboot image
//! (Multiboot Specification 0.6.96, section 3.1).
//!
//! Everything here is a pure function over the module's bytes; a file that
//! is not a kernel gets an [`ImageError`] that says what was found.

use crate::linux_boot::{self, SetupError, SetupHeader};

/// Most loadable segments accepted.
pub const MAX_SEGMENTS: usize = 8;

/// The multiboot v1 header magic, and what the loader hands the kernel in
/// EAX (multiboot.h `MULTIBOOT_HEADER_MAGIC`, `MULTIBOOT_BOOTLOADER_MAGIC`).
pub const MULTIBOOT_HEADER_MAGIC: u32 = 0x1BAD_B002;
pub const MULTIBOOT_BOOTLOADER_MAGIC: u32 = 0x2BAD_B002;
/// The header must lie in the first 8 KiB, 4-byte aligned.
pub const MULTIBOOT_SEARCH: usize = 8192;
/// Header flag: modules page aligned.
pub const MB_FLAG_PAGE_ALIGN: u32 = 1 << 0;
/// Header flag: memory information wanted.
pub const MB_FLAG_MEMORY_INFO: u32 = 1 << 1;
/// Header flag: video mode wanted.
pub const MB_FLAG_VIDEO_MODE: u32 = 1 << 2;
/// Header flag: the address fields are valid (a.out kludge).
pub const MB_FLAG_AOUT_KLUDGE: u32 = 1 << 16;

/// One piece of the kernel to place in its physical memory.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Segment {
    /// Where its bytes start in the file.
    pub file_offset: u32,
    /// How many bytes come from the file; the rest of `mem_len` is zeroed.
    pub file_len: u32,
    /// Kernel-physical load address.
    pub phys: u32,
    /// Size in memory (>= `file_len`).
    pub mem_len: u32,
}

impl Segment {
    /// End of the segment in memory (exclusive), or None on overflow.
    pub fn phys_end(&self) -> Option<u32> {
        self.phys.checked_add(self.mem_len)
    }
}

/// How the kernel was recognised.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImageKind {
    /// ELF32 i386 executable, loaded by its program headers.
    Elf,
    /// Multiboot header with address fields (no ELF, or the kludge asked
    /// for).
    MultibootAout,
    /// A Linux bzImage: setup header, protected-mode code loaded at
    /// `code32_start` (1 MiB).
    BzImage,
}

/// How the kernel wants to be entered (docs/boot-contract.md).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BootProtocol {
    /// Multiboot: EAX magic, EBX the multiboot information, Xen's flat
    /// selectors.
    Multiboot,
    /// The Linux 32-bit boot protocol: ESI the zero page, `__BOOT_CS` and
    /// `__BOOT_DS` of a boot GDT. A bzImage, or an ELF without a multiboot
    /// header (a vmlinux).
    Linux32,
}

/// A recognised kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KernelImage {
    pub kind: ImageKind,
    /// Entry point (kernel-physical: the kernel starts with paging off).
    pub entry: u32,
    /// The multiboot header flags, if the image has a multiboot header.
    pub multiboot_flags: Option<u32>,
    /// A bzImage's setup header.
    pub setup: Option<SetupHeader>,
    segments: [Segment; MAX_SEGMENTS],
    count: usize,
}

impl KernelImage {
    /// The segments to load, in file order.
    pub fn segments(&self) -> &[Segment] {
        &self.segments[..self.count]
    }

    /// Lowest and highest (exclusive) kernel-physical address loaded.
    pub fn phys_span(&self) -> (u32, u32) {
        let lo = self.segments().iter().map(|s| s.phys).min().unwrap_or(0);
        let hi = self
            .segments()
            .iter()
            .filter_map(Segment::phys_end)
            .max()
            .unwrap_or(0);
        (lo, hi)
    }

    /// The protocol the kernel is entered with.
    pub fn protocol(&self) -> BootProtocol {
        if self.multiboot_flags.is_some() {
            BootProtocol::Multiboot
        } else {
            BootProtocol::Linux32
        }
    }

    /// End (exclusive) of the memory the kernel needs from its lowest load
    /// address before it reads its memory map: its segments, or a
    /// bzImage's `init_size` (room to decompress itself) if larger.
    pub fn memory_end(&self) -> u32 {
        let span = self.phys_span().1;
        match self.setup {
            Some(h) => span.max(h.code32_start.saturating_add(h.init_size)),
            None => span,
        }
    }
}

/// Why a module is not a kernel the loader can start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImageError {
    /// No bytes at all (no module given).
    Empty,
    /// An ELF file of the wrong class (64-bit), machine or type.
    ElfClass(u8),
    ElfMachine(u16),
    ElfType(u16),
    /// A malformed ELF: header or program headers outside the file.
    ElfTruncated,
    /// A segment's file bytes lie outside the file.
    SegmentOutsideFile {
        index: usize,
    },
    /// A segment wraps around 4 GiB or has mem_len < file_len.
    SegmentBad {
        index: usize,
    },
    /// More loadable segments than [`MAX_SEGMENTS`].
    TooManySegments,
    /// No loadable segment.
    NoSegments,
    /// A segment overlaps the PC's reserved area (0x9F000-0xFFFFF, where
    /// the ROM sits).
    SegmentInIsaHole {
        index: usize,
        phys: u32,
    },
    /// A multiboot header whose checksum does not add up.
    MultibootChecksum {
        offset: usize,
    },
    /// The multiboot header asks for something this loader cannot give
    /// (bits 0-15 are mandatory requests).
    MultibootUnsupported {
        flags: u32,
    },
    /// The multiboot address fields are inconsistent.
    MultibootAddresses,
    /// A Linux setup header this loader cannot start (the reason inside).
    Setup(SetupError),
    /// An ELF entry point that lies in no loaded segment.
    EntryOutsideSegments {
        entry: u32,
    },
    /// Neither ELF nor multiboot; the first bytes, for the message.
    Unknown {
        magic: [u8; 4],
    },
}

impl ImageError {
    /// A one-line explanation for the console.
    pub fn describe(&self) -> &'static str {
        match self {
            Self::Empty => "no kernel was given (empty module)",
            Self::ElfClass(_) => "an ELF of the wrong class: a VMI kernel is a 32-bit (ELFCLASS32) i386 executable",
            Self::ElfMachine(_) => "an ELF for another machine: a VMI kernel is EM_386",
            Self::ElfType(_) => "an ELF that is not an executable (ET_EXEC)",
            Self::ElfTruncated => "a truncated ELF: its headers lie outside the file",
            Self::SegmentOutsideFile { .. } => "an ELF segment's bytes lie outside the file",
            Self::SegmentBad { .. } => "an ELF segment wraps around 4 GiB or is larger in the file than in memory",
            Self::TooManySegments => "too many loadable segments",
            Self::NoSegments => "no loadable segment",
            Self::SegmentInIsaHole { .. } => "a segment overlaps 0x9F000-0xFFFFF, the PC's reserved area where the VMI ROM lives",
            Self::MultibootChecksum { .. } => "a multiboot header with a bad checksum",
            Self::MultibootUnsupported { .. } => "a multiboot header asking for a feature this loader does not offer (video mode or unknown mandatory flags)",
            Self::MultibootAddresses => "a multiboot header with inconsistent address fields",
            Self::Setup(e) => e.describe(),
            Self::EntryOutsideSegments { .. } => "an ELF whose entry point lies in none of its loadable segments",
            Self::Unknown { .. } => "neither a bzImage, an i386 ELF executable nor a multiboot kernel",
        }
    }
}

fn u16_at(b: &[u8], off: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(off..off + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], off: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(off..off + 4)?.try_into().ok()?))
}

const ISA_HOLE: core::ops::Range<u32> = 0x9_F000..0x10_0000;

fn check_segment(index: usize, s: &Segment) -> Result<(), ImageError> {
    let end = s.phys_end().ok_or(ImageError::SegmentBad { index })?;
    if s.file_len > s.mem_len {
        return Err(ImageError::SegmentBad { index });
    }
    if s.mem_len > 0 && s.phys < ISA_HOLE.end && end > ISA_HOLE.start {
        return Err(ImageError::SegmentInIsaHole {
            index,
            phys: s.phys,
        });
    }
    Ok(())
}

/// The multiboot header, if any: (offset, flags).
fn find_multiboot(b: &[u8]) -> Result<Option<(usize, u32)>, ImageError> {
    let limit = b.len().min(MULTIBOOT_SEARCH);
    let mut off = 0;
    while off + 12 <= limit {
        if u32_at(b, off) == Some(MULTIBOOT_HEADER_MAGIC) {
            let flags = u32_at(b, off + 4).unwrap_or(0);
            let sum = u32_at(b, off + 8).unwrap_or(0);
            if MULTIBOOT_HEADER_MAGIC.wrapping_add(flags).wrapping_add(sum) != 0 {
                return Err(ImageError::MultibootChecksum { offset: off });
            }
            return Ok(Some((off, flags)));
        }
        off += 4;
    }
    Ok(None)
}

/// Recognise `bytes` as a kernel.
pub fn parse(bytes: &[u8]) -> Result<KernelImage, ImageError> {
    if bytes.is_empty() {
        return Err(ImageError::Empty);
    }
    // A Linux setup header makes the file a bzImage, whatever else its
    // first 8 KiB hold.
    if linux_boot::has_setup_header(bytes) {
        return parse_bzimage(bytes);
    }
    let multiboot = find_multiboot(bytes)?;
    if let Some((_, flags)) = multiboot {
        let supported = MB_FLAG_PAGE_ALIGN | MB_FLAG_MEMORY_INFO;
        if flags & 0xFFFF & !supported != 0 {
            return Err(ImageError::MultibootUnsupported { flags });
        }
    }
    let is_elf = bytes.get(..4) == Some(b"\x7FELF");
    match multiboot {
        Some((off, flags)) if flags & MB_FLAG_AOUT_KLUDGE != 0 => {
            parse_multiboot_aout(bytes, off, flags)
        }
        _ if is_elf => {
            let mut image = parse_elf(bytes)?;
            image.multiboot_flags = multiboot.map(|(_, f)| f);
            Ok(image)
        }
        _ => {
            let mut magic = [0u8; 4];
            let n = bytes.len().min(4);
            magic[..n].copy_from_slice(&bytes[..n]);
            Err(ImageError::Unknown { magic })
        }
    }
}

/// A bzImage: the protected-mode code (after the setup sectors) at
/// `code32_start`, entered there.
fn parse_bzimage(b: &[u8]) -> Result<KernelImage, ImageError> {
    let h = SetupHeader::parse(b).map_err(ImageError::Setup)?;
    let seg = Segment {
        file_offset: h.setup_len,
        file_len: h.payload_len,
        phys: h.code32_start,
        mem_len: h.payload_len,
    };
    check_segment(0, &seg)?;
    h.code32_start
        .checked_add(h.init_size)
        .ok_or(ImageError::SegmentBad { index: 0 })?;
    let mut segments = [Segment::default(); MAX_SEGMENTS];
    segments[0] = seg;
    Ok(KernelImage {
        kind: ImageKind::BzImage,
        entry: h.code32_start,
        multiboot_flags: None,
        setup: Some(h),
        segments,
        count: 1,
    })
}

/// ELF32 (System V gABI; i386 psABI): e_ident class 1, data 1 (LSB),
/// e_type ET_EXEC (2), e_machine EM_386 (3); PT_LOAD (1) program headers
/// loaded at p_paddr.
fn parse_elf(b: &[u8]) -> Result<KernelImage, ImageError> {
    let class = *b.get(4).ok_or(ImageError::ElfTruncated)?;
    if class != 1 {
        return Err(ImageError::ElfClass(class));
    }
    let e_type = u16_at(b, 16).ok_or(ImageError::ElfTruncated)?;
    let machine = u16_at(b, 18).ok_or(ImageError::ElfTruncated)?;
    if machine != 3 {
        return Err(ImageError::ElfMachine(machine));
    }
    if e_type != 2 {
        return Err(ImageError::ElfType(e_type));
    }
    let entry = u32_at(b, 24).ok_or(ImageError::ElfTruncated)?;
    let phoff = u32_at(b, 28).ok_or(ImageError::ElfTruncated)? as usize;
    let phentsize = usize::from(u16_at(b, 42).ok_or(ImageError::ElfTruncated)?);
    let phnum = usize::from(u16_at(b, 44).ok_or(ImageError::ElfTruncated)?);
    if phentsize < 32 {
        return Err(ImageError::ElfTruncated);
    }
    let mut image = KernelImage {
        kind: ImageKind::Elf,
        entry,
        multiboot_flags: None,
        setup: None,
        segments: [Segment::default(); MAX_SEGMENTS],
        count: 0,
    };
    // The entry's physical address: e_entry itself if a segment holds it
    // there (a vmlinux's `phys_startup_32`), else translated through the
    // segment whose virtual range holds it.
    let mut entry_phys = None;
    for i in 0..phnum {
        let ph = phoff
            .checked_add(i.checked_mul(phentsize).ok_or(ImageError::ElfTruncated)?)
            .ok_or(ImageError::ElfTruncated)?;
        let field = |n: usize| u32_at(b, ph + n * 4).ok_or(ImageError::ElfTruncated);
        // Not PT_LOAD, or nothing to load (an empty segment a section
        // removal left behind).
        if field(0)? != 1 || field(5)? == 0 {
            continue;
        }
        let seg = Segment {
            file_offset: field(1)?,
            phys: field(3)?,
            file_len: field(4)?,
            mem_len: field(5)?,
        };
        let virt = field(2)?;
        if entry_phys.is_none() && entry >= virt && entry - virt < seg.mem_len.max(1) {
            entry_phys = Some(seg.phys.wrapping_add(entry - virt));
        }
        let index = image.count;
        let file_end = (seg.file_offset as usize).checked_add(seg.file_len as usize);
        if file_end.is_none_or(|e| e > b.len()) {
            return Err(ImageError::SegmentOutsideFile { index });
        }
        check_segment(index, &seg)?;
        if index == MAX_SEGMENTS {
            return Err(ImageError::TooManySegments);
        }
        image.segments[index] = seg;
        image.count += 1;
    }
    if image.count == 0 {
        return Err(ImageError::NoSegments);
    }
    let in_segment = |a: u32| {
        image
            .segments()
            .iter()
            .any(|s| a >= s.phys && a - s.phys < s.mem_len.max(1))
    };
    if !in_segment(entry) {
        image.entry = entry_phys
            .filter(|&a| in_segment(a))
            .ok_or(ImageError::EntryOutsideSegments { entry })?;
    }
    Ok(image)
}

/// Multiboot with address fields: header_addr, load_addr, load_end_addr,
/// bss_end_addr, entry_addr at header+12..+32 (spec 3.1.3).
fn parse_multiboot_aout(b: &[u8], off: usize, flags: u32) -> Result<KernelImage, ImageError> {
    let f = |n: usize| u32_at(b, off + 12 + n * 4).ok_or(ImageError::MultibootAddresses);
    let (header_addr, load_addr, load_end, bss_end, entry) = (f(0)?, f(1)?, f(2)?, f(3)?, f(4)?);
    // The file offset of load_addr: the header sits at file offset `off`
    // and at address header_addr.
    let delta = header_addr
        .checked_sub(load_addr)
        .ok_or(ImageError::MultibootAddresses)? as usize;
    let file_offset = off
        .checked_sub(delta)
        .ok_or(ImageError::MultibootAddresses)?;
    let file_len = if load_end == 0 {
        b.len() - file_offset
    } else {
        load_end
            .checked_sub(load_addr)
            .ok_or(ImageError::MultibootAddresses)? as usize
    };
    if file_offset + file_len > b.len() {
        return Err(ImageError::SegmentOutsideFile { index: 0 });
    }
    let mem_end = if bss_end == 0 {
        load_addr as usize + file_len
    } else {
        bss_end as usize
    };
    let mem_len = mem_end
        .checked_sub(load_addr as usize)
        .filter(|&m| m >= file_len)
        .ok_or(ImageError::MultibootAddresses)?;
    let seg = Segment {
        file_offset: file_offset as u32,
        file_len: file_len as u32,
        phys: load_addr,
        mem_len: mem_len as u32,
    };
    check_segment(0, &seg)?;
    let mut segments = [Segment::default(); MAX_SEGMENTS];
    segments[0] = seg;
    Ok(KernelImage {
        kind: ImageKind::MultibootAout,
        entry,
        multiboot_flags: Some(flags),
        setup: None,
        segments,
        count: 1,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal ELF32 i386 executable with the given PT_LOAD segments
    /// (offset, filesz, paddr, memsz) and entry.
    fn elf(class: u8, machine: u16, segs: &[(u32, u32, u32, u32)], entry: u32) -> Vec<u8> {
        let phoff = 52u32;
        let mut b = vec![0u8; 52 + 32 * segs.len()];
        b[..4].copy_from_slice(b"\x7FELF");
        b[4] = class;
        b[5] = 1;
        b[6] = 1;
        b[16..18].copy_from_slice(&2u16.to_le_bytes());
        b[18..20].copy_from_slice(&machine.to_le_bytes());
        b[24..28].copy_from_slice(&entry.to_le_bytes());
        b[28..32].copy_from_slice(&phoff.to_le_bytes());
        b[42..44].copy_from_slice(&32u16.to_le_bytes());
        b[44..46].copy_from_slice(&(segs.len() as u16).to_le_bytes());
        for (i, &(off, filesz, paddr, memsz)) in segs.iter().enumerate() {
            let p = 52 + 32 * i;
            for (n, v) in [1, off, paddr, paddr, filesz, memsz, 7, 4096]
                .iter()
                .enumerate()
            {
                b[p + n * 4..p + n * 4 + 4].copy_from_slice(&v.to_le_bytes());
            }
        }
        b.resize(0x3000, 0xAB);
        b
    }

    #[test]
    fn elf_kernel_segments_and_entry() {
        let b = elf(1, 3, &[(0x1000, 0x1000, 0x10_0000, 0x3000)], 0x10_000C);
        let k = parse(&b).unwrap();
        assert_eq!(k.kind, ImageKind::Elf);
        assert_eq!(k.entry, 0x10_000C);
        assert_eq!(
            k.segments(),
            &[Segment {
                file_offset: 0x1000,
                file_len: 0x1000,
                phys: 0x10_0000,
                mem_len: 0x3000
            }]
        );
        assert_eq!(k.phys_span(), (0x10_0000, 0x10_3000));
    }

    #[test]
    fn wrong_elves_are_named() {
        assert_eq!(
            parse(&elf(2, 3, &[(0, 4, 0x10_0000, 4)], 0)),
            Err(ImageError::ElfClass(2))
        );
        assert_eq!(
            parse(&elf(1, 62, &[(0, 4, 0x10_0000, 4)], 0)),
            Err(ImageError::ElfMachine(62))
        );
        assert_eq!(parse(&elf(1, 3, &[], 0)), Err(ImageError::NoSegments));
        assert_eq!(
            parse(&elf(1, 3, &[(0x2F00, 0x1000, 0x10_0000, 0x1000)], 0)),
            Err(ImageError::SegmentOutsideFile { index: 0 })
        );
        assert_eq!(
            parse(&elf(1, 3, &[(0, 0x100, 0xC_0000, 0x100)], 0)),
            Err(ImageError::SegmentInIsaHole {
                index: 0,
                phys: 0xC_0000
            })
        );
        assert_eq!(
            parse(&elf(1, 3, &[(0, 0x200, 0x10_0000, 0x100)], 0)),
            Err(ImageError::SegmentBad { index: 0 })
        );
    }

    fn multiboot_header(flags: u32, addrs: [u32; 5]) -> Vec<u8> {
        let mut h = Vec::new();
        for v in [
            MULTIBOOT_HEADER_MAGIC,
            flags,
            0u32.wrapping_sub(MULTIBOOT_HEADER_MAGIC.wrapping_add(flags)),
        ] {
            h.extend_from_slice(&v.to_le_bytes());
        }
        for v in addrs {
            h.extend_from_slice(&v.to_le_bytes());
        }
        h
    }

    #[test]
    fn multiboot_aout_kludge() {
        // Header at file offset 0x10, loaded at 0x100000 (file offset 0).
        let mut b = vec![0u8; 0x10];
        b.extend(multiboot_header(
            MB_FLAG_MEMORY_INFO | MB_FLAG_AOUT_KLUDGE,
            [0x10_0010, 0x10_0000, 0x10_2000, 0x10_4000, 0x10_0040],
        ));
        b.resize(0x2000, 0x90);
        let k = parse(&b).unwrap();
        assert_eq!(k.kind, ImageKind::MultibootAout);
        assert_eq!(k.entry, 0x10_0040);
        assert_eq!(
            k.segments()[0],
            Segment {
                file_offset: 0,
                file_len: 0x2000,
                phys: 0x10_0000,
                mem_len: 0x4000
            }
        );
    }

    #[test]
    fn multiboot_errors() {
        let mut bad_sum = multiboot_header(0, [0; 5]);
        bad_sum[8] ^= 1;
        assert_eq!(
            parse(&bad_sum),
            Err(ImageError::MultibootChecksum { offset: 0 })
        );
        let video = multiboot_header(MB_FLAG_VIDEO_MODE | MB_FLAG_AOUT_KLUDGE, [0; 5]);
        assert!(matches!(
            parse(&video),
            Err(ImageError::MultibootUnsupported { .. })
        ));
    }

    #[test]
    fn other_files_are_named() {
        assert_eq!(parse(&[]), Err(ImageError::Empty));
        assert_eq!(
            parse(b"#!/bin/sh\n"),
            Err(ImageError::Unknown { magic: *b"#!/b" })
        );
    }

    #[test]
    fn bzimages_load_at_code32_start_with_the_linux_protocol() {
        let b = linux_boot::tests::bzimage(0x020A, 0x3000);
        let k = parse(&b).unwrap();
        assert_eq!(k.kind, ImageKind::BzImage);
        assert_eq!(k.protocol(), BootProtocol::Linux32);
        assert_eq!(k.entry, 0x10_0000);
        assert_eq!(
            k.segments(),
            &[Segment {
                file_offset: 5 * 512,
                file_len: 0x3000,
                phys: 0x10_0000,
                mem_len: 0x3000
            }]
        );
        // init_size (4 MiB in the test header) is what must fit in RAM.
        assert_eq!(k.memory_end(), 0x50_0000);
        assert_eq!(
            parse(&linux_boot::tests::bzimage(0x0201, 0x3000)),
            Err(ImageError::Setup(SetupError::ProtocolTooOld {
                version: 0x0201
            }))
        );
        // A header with HdrS wins over anything else in the first 8 KiB.
        let mut b = linux_boot::tests::bzimage(0x0206, 0x3000);
        b[0x1000..0x100C].copy_from_slice(&multiboot_header(0, [0; 5])[..12]);
        assert_eq!(parse(&b).unwrap().kind, ImageKind::BzImage);
    }

    #[test]
    fn an_elf_without_multiboot_header_is_a_vmlinux() {
        let b = elf(1, 3, &[(0x1000, 0x1000, 0x10_0000, 0x3000)], 0x10_0000);
        let k = parse(&b).unwrap();
        assert_eq!(k.protocol(), BootProtocol::Linux32);
        assert_eq!(k.setup, None);
        let mut with_mb = b.clone();
        with_mb[0x1000..0x100C]
            .copy_from_slice(&multiboot_header(MB_FLAG_MEMORY_INFO, [0; 5])[..12]);
        assert_eq!(parse(&with_mb).unwrap().protocol(), BootProtocol::Multiboot);
    }

    #[test]
    fn empty_segments_are_skipped() {
        let b = elf(
            1,
            3,
            &[(0, 0, 0, 0), (0x1000, 0x1000, 0x10_0000, 0x2000)],
            0x10_0000,
        );
        let k = parse(&b).unwrap();
        assert_eq!(k.segments().len(), 1);
        assert_eq!(k.phys_span(), (0x10_0000, 0x10_2000));
    }

    #[test]
    fn a_virtual_entry_is_translated_to_its_physical_address() {
        // Linked at 0xC0100000, loaded at 0x100000 (PAGE_OFFSET 0xC0000000).
        let mut b = elf(1, 3, &[(0x1000, 0x1000, 0x10_0000, 0x2000)], 0xC010_0040);
        // vaddr (field 2 of the program header) differs from paddr.
        b[52 + 8..52 + 12].copy_from_slice(&0xC010_0000u32.to_le_bytes());
        assert_eq!(parse(&b).unwrap().entry, 0x10_0040);
        let b = elf(1, 3, &[(0x1000, 0x1000, 0x10_0000, 0x2000)], 0x20_0000);
        assert_eq!(
            parse(&b),
            Err(ImageError::EntryOutsideSegments { entry: 0x20_0000 })
        );
    }

    proptest::proptest! {
        #[test]
        fn never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..600)) {
            let _ = parse(&bytes);
        }

        #[test]
        fn elf_headers_with_random_fields_never_panic(
            phoff in 0u32..0x4000, phnum in 0u16..20, seed in proptest::collection::vec(proptest::num::u8::ANY, 52..400)
        ) {
            let mut b = seed;
            b[..4].copy_from_slice(b"\x7FELF");
            b[4] = 1;
            b[16..18].copy_from_slice(&2u16.to_le_bytes());
            b[18..20].copy_from_slice(&3u16.to_le_bytes());
            b[28..32].copy_from_slice(&phoff.to_le_bytes());
            b[44..46].copy_from_slice(&phnum.to_le_bytes());
            if let Ok(k) = parse(&b) {
                for s in k.segments() {
                    proptest::prop_assert!(s.file_offset as usize + s.file_len as usize <= b.len());
                    proptest::prop_assert!(s.file_len <= s.mem_len);
                }
            }
        }
    }
}
