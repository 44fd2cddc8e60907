//! Building a VMI option ROM header, and the option ROM checksum.
//!
//! The header layout is `struct vrom_header` of Linux's
//! `arch/x86/include/asm/vmi.h`; the PCI data structure and PnP expansion
//! header follow the PCI Firmware and Plug-and-Play BIOS conventions that a
//! BIOS (SeaBIOS for `-option-rom`) applies. Both ROMs of this project (the
//! Xen ROM and the native ROM) build their first 144 bytes with
//! [`build_header`], at compile time or in a build step, and finish the image
//! with [`fix_checksum`].
//!
//! Layout this builder chooses inside the header's 96 reserved bytes:
//!
//! | offset | bytes | content |
//! |---|---|---|
//! | 0x20 | 24 | PCI data structure ("PCIR", 4-byte aligned as PCI wants) |
//! | 0x38 | 8  | license string with NUL ("GPL v2" fits exactly) |
//! | 0x40 | 32 | PnP expansion header ("$PnP", 16-byte aligned, no boot vectors) |
//! | 0x60 | 32 | manufacturer and product strings, each with NUL |
//!
//! Why a full 32-byte PnP header: Linux reads only its first 18 bytes, but
//! SeaBIOS looks for boot vectors (BCV at +0x16, BEV at +0x1A) and registers a
//! ROM without a PnP header as a boot device. Zero vectors say "not bootable".

use crate::reloc::{encode_rel32, JMP_REL32_OPCODE};
use crate::rom::{
    RomPart, JUMP_POINT_SIZE, OPTION_ROM_SIGNATURE, PCI_DATA_SIGNATURE, PCI_DEVICE_ID_VMWARE_VMI,
    PCI_HEADER_SIZE, PCI_VENDOR_ID_VMWARE, PNP_SIGNATURE, ROM_BLOCK_SIZE, VMI_API_REV_MAJOR,
    VMI_API_REV_MINOR, VMI_SIGNATURE, VROM_HEADER_SIZE,
};

/// Where [`build_header`] puts the PCI data structure.
pub const BUILDER_PCI_HEADER_OFFSET: u16 = 0x20;
/// Where [`build_header`] puts the license string.
pub const BUILDER_LICENSE_OFFSET: u16 = 0x38;
/// Longest license (without NUL) that fits at [`BUILDER_LICENSE_OFFSET`].
pub const BUILDER_LICENSE_MAX_LEN: usize = 7;
/// Where [`build_header`] puts the PnP expansion header.
pub const BUILDER_PNP_HEADER_OFFSET: u16 = 0x40;
/// Size of a PnP expansion header (revision 1); Linux reads the first 18 bytes.
pub const PNP_EXPANSION_HEADER_SIZE: usize = 32;
/// Where [`build_header`] puts the manufacturer and product strings.
pub const BUILDER_STRINGS_OFFSET: u16 = 0x60;
/// End (exclusive) of the string area: the `vmi_init` jump point.
pub const BUILDER_STRINGS_END: u16 = 0x80;

/// 16-bit BIOS init entry that returns at once: `retf`. A BIOS far-calls
/// ROM+3 in real mode when it installs the ROM; a VMI ROM has nothing to do there.
pub const ROM_ENTRY_RETF: [u8; 4] = [0xCB, 0x00, 0x00, 0x00];

/// PCI class code bytes (programming interface, sub-class, base class):
/// "other memory controller" (0x0580). VMware's VMI device showed up as a
/// memory controller; the exact sub-class VMware used is not published.
pub const VMI_PCI_CLASS_CODE: [u8; 3] = [0x00, 0x80, 0x05];
/// PCI indicator byte: last image of the ROM.
pub const PCI_INDICATOR_LAST_IMAGE: u8 = 0x80;
/// PCI code type: x86 PC-AT compatible.
pub const PCI_CODE_TYPE_X86: u8 = 0x00;

/// Everything [`build_header`] needs. Strings are given without their NUL;
/// `None` leaves the offset 0 (Linux prints "UNKNOWN"; no license means Linux
/// refuses the ROM).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RomSpec<'a> {
    /// Image size in 512-byte blocks (`rom_length`, PCI `chunks`), 1..=255.
    pub rom_blocks: u8,
    /// `api_version_maj`; [`VMI_API_REV_MAJOR`] for a usable ROM.
    pub api_version_maj: u8,
    /// `api_version_min`.
    pub api_version_min: u8,
    /// `virtual_top`: the kernel leaves `virtual_top..4 GiB` to the ROM/hypervisor.
    pub virtual_top: u32,
    /// PCI vendor id.
    pub pci_vendor_id: u16,
    /// PCI device id.
    pub pci_device_id: u16,
    /// ROM code revision, major.
    pub rom_version_maj: u8,
    /// ROM code revision, minor.
    pub rom_version_min: u8,
    /// License string, at most [`BUILDER_LICENSE_MAX_LEN`] bytes.
    pub license: Option<&'a [u8]>,
    /// Manufacturer string (PnP).
    pub manufacturer: Option<&'a [u8]>,
    /// Product string (PnP).
    pub product: Option<&'a [u8]>,
    /// 16-bit BIOS init entry bytes at ROM+3.
    pub rom_entry: [u8; 4],
    /// Code at ROM+0x80 (VMI_Init), e.g. from [`jump_point`].
    pub vmi_init: [u8; JUMP_POINT_SIZE],
    /// Code at ROM+0x88 (GetRelocationInfo), e.g. from [`jump_point`].
    pub get_reloc: [u8; JUMP_POINT_SIZE],
}

impl RomSpec<'static> {
    /// A spec Linux accepts: API 3.0, VMware's PCI ids, license "GPL v2",
    /// ROM version 1.0, no PnP strings, `retf` BIOS entry.
    pub const fn new(
        rom_blocks: u8,
        virtual_top: u32,
        vmi_init: [u8; JUMP_POINT_SIZE],
        get_reloc: [u8; JUMP_POINT_SIZE],
    ) -> Self {
        RomSpec {
            rom_blocks,
            api_version_maj: VMI_API_REV_MAJOR,
            api_version_min: VMI_API_REV_MINOR,
            virtual_top,
            pci_vendor_id: PCI_VENDOR_ID_VMWARE,
            pci_device_id: PCI_DEVICE_ID_VMWARE_VMI,
            rom_version_maj: 1,
            rom_version_min: 0,
            license: Some(b"GPL v2"),
            manufacturer: None,
            product: None,
            rom_entry: ROM_ENTRY_RETF,
            vmi_init,
            get_reloc,
        }
    }
}

/// Why a header could not be built or written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BuildError {
    /// `rom_blocks` is 0.
    ZeroLength,
    /// The license does not fit in its 8-byte slot.
    LicenseTooLong {
        /// Length given (without NUL).
        len: usize,
    },
    /// Manufacturer and product (with NULs) need more than the 32-byte area.
    StringsTooLong {
        /// Bytes needed including both NULs.
        needed: usize,
    },
    /// A string contains a NUL byte, which would cut it short.
    EmbeddedNul(RomPart),
    /// The image is shorter than `rom_blocks * 512`.
    ImageTooSmall {
        /// `rom_blocks * 512`.
        needed: usize,
        /// Image length given.
        len: usize,
    },
}

impl core::fmt::Display for BuildError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self {
            BuildError::ZeroLength => f.write_str("ROM length of 0 blocks"),
            BuildError::LicenseTooLong { len } => {
                write!(
                    f,
                    "license of {len} bytes exceeds {BUILDER_LICENSE_MAX_LEN}"
                )
            }
            BuildError::StringsTooLong { needed } => write!(
                f,
                "manufacturer and product need {needed} bytes, {} available",
                BUILDER_STRINGS_END - BUILDER_STRINGS_OFFSET
            ),
            BuildError::EmbeddedNul(part) => write!(f, "{part} contains a NUL byte"),
            BuildError::ImageTooSmall { needed, len } => {
                write!(
                    f,
                    "image of {len} bytes is smaller than the declared {needed}"
                )
            }
        }
    }
}

const fn put_u16(buf: &mut [u8; VROM_HEADER_SIZE], at: usize, value: u16) {
    let b = value.to_le_bytes();
    buf[at] = b[0];
    buf[at + 1] = b[1];
}

const fn put_u32(buf: &mut [u8; VROM_HEADER_SIZE], at: usize, value: u32) {
    let b = value.to_le_bytes();
    let mut i = 0;
    while i < 4 {
        buf[at + i] = b[i];
        i += 1;
    }
}

const fn put_bytes(buf: &mut [u8; VROM_HEADER_SIZE], at: usize, bytes: &[u8]) {
    let mut i = 0;
    while i < bytes.len() {
        buf[at + i] = bytes[i];
        i += 1;
    }
}

const fn has_nul(bytes: &[u8]) -> bool {
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == 0 {
            return true;
        }
        i += 1;
    }
    false
}

const fn optional_len(s: Option<&[u8]>) -> usize {
    match s {
        Some(s) => s.len() + 1,
        None => 0,
    }
}

/// Builds the 144-byte ROM header block described in the module docs:
/// `struct vrom_header` with the PCI data structure, license, PnP expansion
/// header (with its checksum) and strings placed in its reserved area.
/// Usable in `const` context.
pub const fn build_header(spec: &RomSpec<'_>) -> Result<[u8; VROM_HEADER_SIZE], BuildError> {
    if spec.rom_blocks == 0 {
        return Err(BuildError::ZeroLength);
    }
    if let Some(l) = spec.license {
        if l.len() > BUILDER_LICENSE_MAX_LEN {
            return Err(BuildError::LicenseTooLong { len: l.len() });
        }
        if has_nul(l) {
            return Err(BuildError::EmbeddedNul(RomPart::License));
        }
    }
    if let Some(m) = spec.manufacturer {
        if has_nul(m) {
            return Err(BuildError::EmbeddedNul(RomPart::Manufacturer));
        }
    }
    if let Some(p) = spec.product {
        if has_nul(p) {
            return Err(BuildError::EmbeddedNul(RomPart::Product));
        }
    }
    let strings_needed = optional_len(spec.manufacturer) + optional_len(spec.product);
    if strings_needed > (BUILDER_STRINGS_END - BUILDER_STRINGS_OFFSET) as usize {
        return Err(BuildError::StringsTooLong {
            needed: strings_needed,
        });
    }

    let mut h = [0u8; VROM_HEADER_SIZE];

    // struct vrom_header fields.
    put_u16(&mut h, 0x00, OPTION_ROM_SIGNATURE);
    h[0x02] = spec.rom_blocks;
    put_bytes(&mut h, 0x03, &spec.rom_entry);
    put_u32(&mut h, 0x08, VMI_SIGNATURE);
    h[0x0C] = spec.api_version_min;
    h[0x0D] = spec.api_version_maj;
    put_u32(&mut h, 0x10, spec.virtual_top);
    if spec.license.is_some() {
        put_u16(&mut h, 0x16, BUILDER_LICENSE_OFFSET);
    }
    put_u16(&mut h, 0x18, BUILDER_PCI_HEADER_OFFSET);
    put_u16(&mut h, 0x1A, BUILDER_PNP_HEADER_OFFSET);
    put_bytes(&mut h, 0x80, &spec.vmi_init);
    put_bytes(&mut h, 0x88, &spec.get_reloc);

    // PCI data structure.
    let pci = BUILDER_PCI_HEADER_OFFSET as usize;
    put_bytes(&mut h, pci, &PCI_DATA_SIGNATURE);
    put_u16(&mut h, pci + 4, spec.pci_vendor_id);
    put_u16(&mut h, pci + 6, spec.pci_device_id);
    put_u16(&mut h, pci + 10, PCI_HEADER_SIZE as u16);
    put_bytes(&mut h, pci + 13, &VMI_PCI_CLASS_CODE);
    put_u16(&mut h, pci + 16, spec.rom_blocks as u16);
    h[pci + 18] = spec.rom_version_min;
    h[pci + 19] = spec.rom_version_maj;
    h[pci + 20] = PCI_CODE_TYPE_X86;
    h[pci + 21] = PCI_INDICATOR_LAST_IMAGE;

    // License, NUL already present (buffer is zeroed).
    if let Some(l) = spec.license {
        put_bytes(&mut h, BUILDER_LICENSE_OFFSET as usize, l);
    }

    // Strings.
    let mut at = BUILDER_STRINGS_OFFSET as usize;
    let mut manufacturer_offset = 0u16;
    let mut product_offset = 0u16;
    if let Some(m) = spec.manufacturer {
        manufacturer_offset = at as u16;
        put_bytes(&mut h, at, m);
        at += m.len() + 1;
    }
    if let Some(p) = spec.product {
        product_offset = at as u16;
        put_bytes(&mut h, at, p);
    }

    // PnP expansion header, revision 1, 32 bytes; no boot vectors.
    let pnp = BUILDER_PNP_HEADER_OFFSET as usize;
    put_bytes(&mut h, pnp, &PNP_SIGNATURE);
    h[pnp + 4] = 1;
    h[pnp + 5] = (PNP_EXPANSION_HEADER_SIZE / 16) as u8;
    put_u16(&mut h, pnp + 14, manufacturer_offset);
    put_u16(&mut h, pnp + 16, product_offset);
    // Device type code (base, sub, interface), same class as the PCI header.
    h[pnp + 0x12] = VMI_PCI_CLASS_CODE[2];
    h[pnp + 0x13] = VMI_PCI_CLASS_CODE[1];
    h[pnp + 0x14] = VMI_PCI_CLASS_CODE[0];
    let mut sum = 0u8;
    let mut i = 0;
    while i < PNP_EXPANSION_HEADER_SIZE {
        sum = sum.wrapping_add(h[pnp + i]);
        i += 1;
    }
    h[pnp + 9] = sum.wrapping_neg();

    Ok(h)
}

/// Writes [`build_header`]'s block to the start of `image`, which must hold
/// at least `rom_blocks * 512` bytes. Bytes from 144 on are left alone; call
/// [`fix_checksum`] once the rest of the image is final.
pub fn write_rom_header(image: &mut [u8], spec: &RomSpec<'_>) -> Result<(), BuildError> {
    let header = build_header(spec)?;
    let needed = usize::from(spec.rom_blocks) * ROM_BLOCK_SIZE;
    if image.len() < needed {
        return Err(BuildError::ImageTooSmall {
            needed,
            len: image.len(),
        });
    }
    image[..VROM_HEADER_SIZE].copy_from_slice(&header);
    Ok(())
}

/// The 8 bytes of a header jump point: `jmp rel32` from `point_offset`
/// (0x80 or 0x88) to `target_offset`, both offsets from the ROM start, then
/// `int3` filler. Relative, so the ROM keeps working wherever it is mapped.
pub const fn jump_point(point_offset: u32, target_offset: u32) -> [u8; JUMP_POINT_SIZE] {
    let jmp = encode_rel32(JMP_REL32_OPCODE, point_offset, target_offset);
    [jmp[0], jmp[1], jmp[2], jmp[3], jmp[4], 0xCC, 0xCC, 0xCC]
}

/// Why a checksum could not be checked or fixed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChecksumError {
    /// The image is too short to hold `rom_length` (3 bytes).
    NoLengthByte,
    /// `rom_length` is 0.
    ZeroLength,
    /// The image is shorter than `rom_length * 512`.
    Truncated {
        /// `rom_length * 512`.
        declared: usize,
        /// Image length.
        len: usize,
    },
    /// The byte to adjust is outside the declared ROM.
    IndexOutsideRom {
        /// Index asked for.
        index: usize,
        /// `rom_length * 512`.
        declared: usize,
    },
    /// The declared bytes do not sum to 0 mod 256.
    Mismatch {
        /// Their sum mod 256.
        sum: u8,
    },
}

impl core::fmt::Display for ChecksumError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self {
            ChecksumError::NoLengthByte => {
                f.write_str("image too short to hold the ROM length byte")
            }
            ChecksumError::ZeroLength => f.write_str("ROM length byte is 0"),
            ChecksumError::Truncated { declared, len } => {
                write!(f, "ROM declares {declared} bytes but the image has {len}")
            }
            ChecksumError::IndexOutsideRom { index, declared } => {
                write!(
                    f,
                    "checksum byte {index:#x} is outside the {declared}-byte ROM"
                )
            }
            ChecksumError::Mismatch { sum } => write!(f, "ROM bytes sum to {sum:#04x}, not 0"),
        }
    }
}

/// Sum of `bytes` mod 256.
pub fn byte_sum(bytes: &[u8]) -> u8 {
    bytes.iter().fold(0u8, |sum, &b| sum.wrapping_add(b))
}

/// `rom_length * 512`, checked against the image.
pub fn declared_rom_size(rom: &[u8]) -> Result<usize, ChecksumError> {
    let blocks = *rom.get(2).ok_or(ChecksumError::NoLengthByte)?;
    if blocks == 0 {
        return Err(ChecksumError::ZeroLength);
    }
    let declared = usize::from(blocks) * ROM_BLOCK_SIZE;
    if rom.len() < declared {
        return Err(ChecksumError::Truncated {
            declared,
            len: rom.len(),
        });
    }
    Ok(declared)
}

/// Checks the option ROM checksum a BIOS checks (Linux does not): the first
/// `rom_length * 512` bytes sum to 0 mod 256.
pub fn verify_checksum(rom: &[u8]) -> Result<(), ChecksumError> {
    let declared = declared_rom_size(rom)?;
    match byte_sum(&rom[..declared]) {
        0 => Ok(()),
        sum => Err(ChecksumError::Mismatch { sum }),
    }
}

/// Sets byte `index` so that the declared ROM sums to 0; returns the value
/// written.
pub fn fix_checksum_at(rom: &mut [u8], index: usize) -> Result<u8, ChecksumError> {
    let declared = declared_rom_size(rom)?;
    if index >= declared {
        return Err(ChecksumError::IndexOutsideRom { index, declared });
    }
    rom[index] = 0;
    let value = byte_sum(&rom[..declared]).wrapping_neg();
    rom[index] = value;
    Ok(value)
}

/// [`fix_checksum_at`] the last byte of the declared ROM, the conventional
/// checksum byte; the ROM's code and data must leave it free.
pub fn fix_checksum(rom: &mut [u8]) -> Result<u8, ChecksumError> {
    let declared = declared_rom_size(rom)?;
    fix_checksum_at(rom, declared - 1)
}
