//! The VMI option ROM as a kernel finds and accepts it.
//!
//! Mirrors `struct vrom_header`, `struct pci_header` and `struct pnp_header`
//! of Linux's `arch/x86/include/asm/vmi.h` (API 3.0, identical from 2.6.21 to
//! 2.6.30), and the acceptance rules of `check_vmi_rom()` / `probe_vmi_rom()`
//! in `arch/x86/kernel/vmi_32.c`.
//!
//! [`check_rom`] is a pure function over a byte slice. It applies Linux's
//! checks in Linux's order, and in addition refuses any header offset or
//! string that would make it read past the end of the slice (Linux trusts the
//! ROM and would read whatever memory follows).

use core::fmt;
use core::mem::{offset_of, size_of};

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

/// `VMI_SIGNATURE` (vmi.h): the bytes `"cVmi"` read as a little-endian u32.
pub const VMI_SIGNATURE: u32 = 0x696D_5663;
/// The standard option ROM signature: bytes `55 AA` at offset 0.
pub const OPTION_ROM_SIGNATURE: u16 = 0xAA55;
/// `PCI_VENDOR_ID_VMWARE` (vmi.h).
pub const PCI_VENDOR_ID_VMWARE: u16 = 0x15AD;
/// `PCI_DEVICE_ID_VMWARE_VMI` (vmi.h).
pub const PCI_DEVICE_ID_VMWARE_VMI: u16 = 0x0801;
/// `VMI_API_REV_MAJOR` (vmi.h): a different major number is an incompatible interface.
pub const VMI_API_REV_MAJOR: u8 = 3;
/// `VMI_API_REV_MINOR` (vmi.h): the minor number only adds calls at the end.
pub const VMI_API_REV_MINOR: u8 = 0;

/// First physical address `probe_vmi_rom()` looks at.
pub const VMI_PROBE_START: u32 = 0xC_0000;
/// End (exclusive) of the probed option ROM area.
pub const VMI_PROBE_END: u32 = 0xE_0000;
/// Probe granularity: option ROMs are placed on 2 KiB boundaries.
pub const VMI_PROBE_STEP: u32 = 2048;

/// `rom_length` counts units of this many bytes.
pub const ROM_BLOCK_SIZE: usize = 512;
/// `sizeof(struct vrom_header)`.
pub const VROM_HEADER_SIZE: usize = 144;
/// `sizeof(struct pci_header)`.
pub const PCI_HEADER_SIZE: usize = 24;
/// `sizeof(struct pnp_header)` as Linux reads it (the first 18 bytes of the
/// 32-byte PnP expansion header).
pub const PNP_HEADER_SIZE: usize = 18;
/// Offset of the `vmi_init` jump point: the kernel calls ROM+0x80 to start VMI.
pub const VMI_INIT_OFFSET: usize = 0x80;
/// Offset of the `get_reloc` jump point: ROM+0x88 answers GetRelocationInfo.
pub const GET_RELOCATION_INFO_OFFSET: usize = 0x88;
/// Size of each jump point (`char vmi_init[8]`, `char get_reloc[8]`).
pub const JUMP_POINT_SIZE: usize = 8;

/// Signature of the PCI data structure, at `pci_header_offs`.
pub const PCI_DATA_SIGNATURE: [u8; 4] = *b"PCIR";
/// Signature of the PnP expansion header, at `pnp_header_offs`.
pub const PNP_SIGNATURE: [u8; 4] = *b"$PnP";

/// Licenses Linux accepts (`strcmp` against "GPL" and "GPL v2"); anything
/// else makes it ignore the ROM, to keep binary-only shims out.
pub const ACCEPTED_LICENSES: [&[u8]; 2] = [b"GPL", b"GPL v2"];

/// `struct vrom_header` (vmi.h), packed, 144 bytes at the start of the ROM.
#[repr(C, packed)]
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned,
)]
pub struct VromHeader {
    /// 0x00: option ROM signature, must be [`OPTION_ROM_SIGNATURE`].
    pub rom_signature: u16,
    /// 0x02: ROM length in 512-byte blocks (BIOS use; Linux ignores it).
    pub rom_length: u8,
    /// 0x03: 16-bit BIOS init entry, reached by a real-mode far call (Linux ignores it).
    pub rom_entry: [u8; 4],
    /// 0x07: pads `vrom_signature` to 4 bytes.
    pub rom_pad0: u8,
    /// 0x08: [`VMI_SIGNATURE`].
    pub vrom_signature: u32,
    /// 0x0C: API minor revision.
    pub api_version_min: u8,
    /// 0x0D: API major revision, must be [`VMI_API_REV_MAJOR`].
    pub api_version_maj: u8,
    /// 0x0E: number of jump slots (never read by Linux; meaning unpublished).
    pub jump_slots: u8,
    /// 0x0F: reserved.
    pub reserved1: u8,
    /// 0x10: lowest virtual address the hypervisor claims; the kernel keeps
    /// everything from here to 4 GiB free (`reserve_top_address(-virtual_top)`).
    pub virtual_top: u32,
    /// 0x14: reserved.
    pub reserved2: u16,
    /// 0x16: offset of the NUL-terminated license string, 0 = none.
    pub license_offs: u16,
    /// 0x18: offset of the PCI data structure ("PCIR"), 0 = none (rejected).
    pub pci_header_offs: u16,
    /// 0x1A: offset of the PnP expansion header ("$PnP"), 0 = none.
    pub pnp_header_offs: u16,
    /// 0x1C: PnP / VMI reserved.
    pub rom_pad3: u32,
    /// 0x20: room for the PCI/PnP headers and strings.
    pub reserved: [u8; 96],
    /// 0x80: VMI_Init jump point (code).
    pub vmi_init: [u8; JUMP_POINT_SIZE],
    /// 0x88: VMI_GetRelocationInfo jump point (code).
    pub get_reloc: [u8; JUMP_POINT_SIZE],
}

const _: () = assert!(size_of::<VromHeader>() == VROM_HEADER_SIZE);
const _: () = assert!(offset_of!(VromHeader, rom_signature) == 0x00);
const _: () = assert!(offset_of!(VromHeader, rom_length) == 0x02);
const _: () = assert!(offset_of!(VromHeader, rom_entry) == 0x03);
const _: () = assert!(offset_of!(VromHeader, rom_pad0) == 0x07);
const _: () = assert!(offset_of!(VromHeader, vrom_signature) == 0x08);
const _: () = assert!(offset_of!(VromHeader, api_version_min) == 0x0C);
const _: () = assert!(offset_of!(VromHeader, api_version_maj) == 0x0D);
const _: () = assert!(offset_of!(VromHeader, jump_slots) == 0x0E);
const _: () = assert!(offset_of!(VromHeader, reserved1) == 0x0F);
const _: () = assert!(offset_of!(VromHeader, virtual_top) == 0x10);
const _: () = assert!(offset_of!(VromHeader, reserved2) == 0x14);
const _: () = assert!(offset_of!(VromHeader, license_offs) == 0x16);
const _: () = assert!(offset_of!(VromHeader, pci_header_offs) == 0x18);
const _: () = assert!(offset_of!(VromHeader, pnp_header_offs) == 0x1A);
const _: () = assert!(offset_of!(VromHeader, rom_pad3) == 0x1C);
const _: () = assert!(offset_of!(VromHeader, reserved) == 0x20);
const _: () = assert!(offset_of!(VromHeader, vmi_init) == VMI_INIT_OFFSET);
const _: () = assert!(offset_of!(VromHeader, get_reloc) == GET_RELOCATION_INFO_OFFSET);

/// `struct pci_header` (vmi.h): the standard PCI ROM data structure, packed, 24 bytes.
///
/// Linux names the three class-code bytes `class`, `subclass`, `interface`
/// in that order; the PCI specification orders them programming interface,
/// sub-class, base class. Nothing reads them, so they are one array here.
#[repr(C, packed)]
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned,
)]
pub struct PciHeader {
    /// 0: [`PCI_DATA_SIGNATURE`] (Linux does not check it).
    pub sig: [u8; 4],
    /// 4: PCI vendor id; Linux warns unless [`PCI_VENDOR_ID_VMWARE`].
    pub vendor_id: u16,
    /// 6: PCI device id; Linux warns unless [`PCI_DEVICE_ID_VMWARE_VMI`].
    pub device_id: u16,
    /// 8: pointer to vital product data, 0 = none.
    pub vpd_data: u16,
    /// 10: length of this structure in bytes (24).
    pub size: u16,
    /// 12: structure revision.
    pub rev: u8,
    /// 13..16: class code bytes (programming interface, sub-class, base class).
    pub class_code: [u8; 3],
    /// 16: image length in 512-byte blocks.
    pub chunks: u16,
    /// 18: ROM code revision, minor part (printed by Linux).
    pub rom_version_min: u8,
    /// 19: ROM code revision, major part (printed by Linux).
    pub rom_version_maj: u8,
    /// 20: code type, 0 = x86 PC-AT.
    pub codetype: u8,
    /// 21: indicator, bit 7 = last image in the ROM.
    pub last_rom: u8,
    /// 22: reserved.
    pub reserved: u16,
}

const _: () = assert!(size_of::<PciHeader>() == PCI_HEADER_SIZE);
const _: () = assert!(offset_of!(PciHeader, sig) == 0);
const _: () = assert!(offset_of!(PciHeader, vendor_id) == 4);
const _: () = assert!(offset_of!(PciHeader, device_id) == 6);
const _: () = assert!(offset_of!(PciHeader, vpd_data) == 8);
const _: () = assert!(offset_of!(PciHeader, size) == 10);
const _: () = assert!(offset_of!(PciHeader, rev) == 12);
const _: () = assert!(offset_of!(PciHeader, class_code) == 13);
const _: () = assert!(offset_of!(PciHeader, chunks) == 16);
const _: () = assert!(offset_of!(PciHeader, rom_version_min) == 18);
const _: () = assert!(offset_of!(PciHeader, rom_version_maj) == 19);
const _: () = assert!(offset_of!(PciHeader, codetype) == 20);
const _: () = assert!(offset_of!(PciHeader, last_rom) == 21);
const _: () = assert!(offset_of!(PciHeader, reserved) == 22);

/// `struct pnp_header` (vmi.h), packed, 18 bytes: the part of the PnP
/// expansion header Linux reads. Linux's `short res` is the standard's
/// reserved byte followed by the header checksum byte.
#[repr(C, packed)]
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned,
)]
pub struct PnpHeader {
    /// 0: [`PNP_SIGNATURE`] (Linux does not check it).
    pub sig: [u8; 4],
    /// 4: structure revision (1).
    pub rev: u8,
    /// 5: length of the full expansion header in 16-byte units.
    pub size: u8,
    /// 6: offset of the next expansion header, 0 = none.
    pub next: u16,
    /// 8: reserved.
    pub reserved: u8,
    /// 9: checksum: the whole expansion header sums to 0 mod 256.
    pub checksum: u8,
    /// 10: device identifier.
    pub dev_id: u32,
    /// 14: offset (from ROM start) of the manufacturer string, 0 = none.
    pub manufacturer_offset: u16,
    /// 16: offset (from ROM start) of the product string, 0 = none.
    pub product_offset: u16,
}

const _: () = assert!(size_of::<PnpHeader>() == PNP_HEADER_SIZE);
const _: () = assert!(offset_of!(PnpHeader, sig) == 0);
const _: () = assert!(offset_of!(PnpHeader, rev) == 4);
const _: () = assert!(offset_of!(PnpHeader, size) == 5);
const _: () = assert!(offset_of!(PnpHeader, next) == 6);
const _: () = assert!(offset_of!(PnpHeader, reserved) == 8);
const _: () = assert!(offset_of!(PnpHeader, checksum) == 9);
const _: () = assert!(offset_of!(PnpHeader, dev_id) == 10);
const _: () = assert!(offset_of!(PnpHeader, manufacturer_offset) == 14);
const _: () = assert!(offset_of!(PnpHeader, product_offset) == 16);

/// Which part of the ROM a rejection is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RomPart {
    /// The 2-byte option ROM signature at offset 0.
    OptionRomSignature,
    /// The 4-byte VMI signature at offset 8.
    VmiSignature,
    /// The whole 144-byte [`VromHeader`] (its jump points are code the kernel calls).
    Header,
    /// The PCI data structure at `pci_header_offs`.
    PciHeader,
    /// The PnP header at `pnp_header_offs`.
    PnpHeader,
    /// The manufacturer string named by the PnP header.
    Manufacturer,
    /// The product string named by the PnP header.
    Product,
    /// The license string at `license_offs`.
    License,
}

impl RomPart {
    /// Human name of the part.
    pub const fn name(self) -> &'static str {
        match self {
            RomPart::OptionRomSignature => "option ROM signature",
            RomPart::VmiSignature => "VMI signature",
            RomPart::Header => "VMI ROM header",
            RomPart::PciHeader => "PCI data structure",
            RomPart::PnpHeader => "PnP header",
            RomPart::Manufacturer => "manufacturer string",
            RomPart::Product => "product string",
            RomPart::License => "license string",
        }
    }
}

impl fmt::Display for RomPart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why [`check_rom`] refused a ROM. Variants are listed in the order the
/// checks run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RomRejection<'a> {
    /// A part of the ROM lies (partly) beyond the end of the image.
    /// `offset`/`size` locate the part, `len` is the image length.
    OutOfBounds {
        /// The part that does not fit.
        part: RomPart,
        /// Its offset from the ROM start.
        offset: usize,
        /// Bytes it needs (1 for a string: at least its NUL).
        size: usize,
        /// Length of the image given to [`check_rom`].
        len: usize,
    },
    /// Bytes 0..2 are not 55 AA (Linux: silent rejection).
    NotOptionRom {
        /// The u16 found at offset 0.
        found: u16,
    },
    /// Bytes 8..12 are not "cVmi" (Linux: silent rejection).
    NotVmi {
        /// The u32 found at offset 8.
        found: u32,
    },
    /// API major revision is not 3 (Linux: "mismatched rom version").
    VersionMismatch {
        /// `api_version_maj`.
        major: u8,
        /// `api_version_min`.
        minor: u8,
    },
    /// `pci_header_offs` is 0 (Linux: "ROM does not contain PCI header").
    NoPciHeader,
    /// A string runs to the end of the image without a NUL.
    Unterminated {
        /// Which string.
        part: RomPart,
        /// Its offset from the ROM start.
        offset: usize,
    },
    /// The license is neither "GPL" nor "GPL v2" (Linux: "Non GPL license ... Not used").
    NonGplLicense {
        /// The license string without its NUL; `None` when `license_offs` is 0
        /// (Linux then compares "unspecified").
        license: Option<&'a [u8]>,
    },
}

impl RomRejection<'_> {
    /// True for the causes Linux rejects without a message: the ROM is simply
    /// not a VMI ROM (no 55 AA, no "cVmi", or too short to hold either). A
    /// probing guest prints only the other causes, as Linux does.
    pub const fn is_silent(&self) -> bool {
        matches!(
            self,
            RomRejection::NotOptionRom { .. }
                | RomRejection::NotVmi { .. }
                | RomRejection::OutOfBounds {
                    part: RomPart::OptionRomSignature | RomPart::VmiSignature,
                    ..
                }
        )
    }

    /// A one-line summary of the cause, without the details [`fmt::Display`] adds.
    pub const fn describe(&self) -> &'static str {
        match self {
            RomRejection::OutOfBounds { .. } => "ROM structure extends past the end of the image",
            RomRejection::NotOptionRom { .. } => "no option ROM signature",
            RomRejection::NotVmi { .. } => "option ROM is not a VMI ROM",
            RomRejection::VersionMismatch { .. } => "VMI ROM speaks an incompatible API version",
            RomRejection::NoPciHeader => "VMI ROM lacks a PCI data structure",
            RomRejection::Unterminated { .. } => "ROM string is not NUL-terminated",
            RomRejection::NonGplLicense { .. } => "VMI ROM license is not GPL, ROM ignored",
        }
    }
}

impl fmt::Display for RomRejection<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            RomRejection::OutOfBounds { part, offset, size, len } => write!(
                f,
                "{part} at offset {offset:#x} ({size} bytes) does not fit in the {len}-byte ROM image"
            ),
            RomRejection::NotOptionRom { found } => {
                write!(f, "no option ROM signature (found {found:#06x}, want 0xAA55)")
            }
            RomRejection::NotVmi { found } => {
                write!(f, "option ROM is not a VMI ROM (signature {found:#010x}, want \"cVmi\")")
            }
            RomRejection::VersionMismatch { major, minor } => write!(
                f,
                "VMI ROM implements API {major}.{minor}, only API {VMI_API_REV_MAJOR}.x is understood"
            ),
            RomRejection::NoPciHeader => f.write_str("VMI ROM has no PCI data structure, not trusted"),
            RomRejection::Unterminated { part, offset } => {
                write!(f, "{part} at offset {offset:#x} has no NUL before the end of the ROM image")
            }
            RomRejection::NonGplLicense { license: Some(l) } => {
                write!(f, "VMI ROM under license `{}`, which is not GPL: not used", ByteStr(l))
            }
            RomRejection::NonGplLicense { license: None } => {
                f.write_str("VMI ROM states no license (GPL required): not used")
            }
        }
    }
}

/// Something [`check_rom`] noticed but, like Linux, accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RomWarning {
    /// The PCI ids are not VMware's VMI device (Linux: "ROM from unknown manufacturer").
    UnknownManufacturer {
        /// PCI vendor id found.
        vendor: u16,
        /// PCI device id found.
        device: u16,
    },
}

impl fmt::Display for RomWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            RomWarning::UnknownManufacturer { vendor, device } => write!(
                f,
                "VMI ROM carries PCI id {vendor:04x}:{device:04x}, not VMware's \
                 {PCI_VENDOR_ID_VMWARE:04x}:{PCI_DEVICE_ID_VMWARE_VMI:04x}; using it anyway"
            ),
        }
    }
}

/// What an accepted ROM declares (everything Linux prints when it finds one).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RomInfo<'a> {
    /// The header, copied out of the image.
    pub header: VromHeader,
    /// The PCI data structure, copied out of the image.
    pub pci: PciHeader,
    /// The PnP header, if `pnp_header_offs` is not 0.
    pub pnp: Option<PnpHeader>,
    /// Manufacturer string (no NUL); `None` prints as "UNKNOWN".
    pub manufacturer: Option<&'a [u8]>,
    /// Product string (no NUL); `None` prints as "UNKNOWN".
    pub product: Option<&'a [u8]>,
    /// License string (no NUL): "GPL" or "GPL v2".
    pub license: &'a [u8],
    /// Accepted-with-warning conditions.
    pub warning: Option<RomWarning>,
}

impl RomInfo<'_> {
    /// (major, minor) API revision.
    pub const fn api_version(&self) -> (u8, u8) {
        (self.header.api_version_maj, self.header.api_version_min)
    }

    /// (major, minor) ROM code revision from the PCI data structure.
    pub const fn rom_version(&self) -> (u8, u8) {
        (self.pci.rom_version_maj, self.pci.rom_version_min)
    }

    /// Start of the hypervisor's virtual address range.
    pub const fn virtual_top(&self) -> u32 {
        self.header.virtual_top
    }

    /// (vendor, device) PCI ids.
    pub const fn pci_ids(&self) -> (u16, u16) {
        (self.pci.vendor_id, self.pci.device_id)
    }

    /// True when Linux would have printed "ROM from unknown manufacturer".
    pub const fn unknown_manufacturer(&self) -> bool {
        matches!(self.warning, Some(RomWarning::UnknownManufacturer { .. }))
    }
}

impl fmt::Display for RomInfo<'_> {
    /// The facts of Linux's "VMI: Found ..." line, in its order.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (maj, min) = self.api_version();
        let (rmaj, rmin) = self.rom_version();
        write!(
            f,
            "{} {}, API version {maj}.{min}, ROM version {rmaj}.{rmin}",
            ByteStr(self.manufacturer.unwrap_or(b"UNKNOWN")),
            ByteStr(self.product.unwrap_or(b"UNKNOWN")),
        )
    }
}

/// Displays bytes from a ROM as text: printable ASCII as is, anything else as `\xNN`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ByteStr<'a>(pub &'a [u8]);

impl fmt::Display for ByteStr<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for &b in self.0 {
            if (0x20..0x7F).contains(&b) {
                write!(f, "{}", b as char)?;
            } else {
                write!(f, "\\x{b:02x}")?;
            }
        }
        Ok(())
    }
}

/// Reads a fixed-size structure at `offset`, or says which part did not fit.
fn read_at<T: FromBytes>(
    bytes: &[u8],
    offset: usize,
    part: RomPart,
) -> Result<T, RomRejection<'_>> {
    let out_of_bounds = RomRejection::OutOfBounds {
        part,
        offset,
        size: size_of::<T>(),
        len: bytes.len(),
    };
    let tail = bytes.get(offset..).ok_or(out_of_bounds)?;
    T::read_from_prefix(tail)
        .map(|(value, _)| value)
        .map_err(|_| out_of_bounds)
}

/// The NUL-terminated string at `offset`, without its NUL.
fn c_string_at(bytes: &[u8], offset: usize, part: RomPart) -> Result<&[u8], RomRejection<'_>> {
    let tail = match bytes.get(offset..) {
        Some(tail) if !tail.is_empty() => tail,
        _ => {
            return Err(RomRejection::OutOfBounds {
                part,
                offset,
                size: 1,
                len: bytes.len(),
            })
        }
    };
    match tail.iter().position(|&b| b == 0) {
        Some(nul) => Ok(&tail[..nul]),
        None => Err(RomRejection::Unterminated { part, offset }),
    }
}

/// Decides, as Linux's `check_vmi_rom()` does, whether `bytes` (starting at
/// the ROM's first byte) is a VMI ROM the kernel may use.
///
/// Order of checks (Linux's, with bounds checks placed where a read needs them):
/// 1. 0xAA55 at 0; 2. "cVmi" at 8; then the whole 144-byte header must be
///    present (Linux does not check this, but the jump points it calls are in it);
/// 3. API major == 3 (any minor: Linux's minor test `min + 1 < 0 + 1` never fires);
/// 4. `pci_header_offs` != 0, and the PCI structure inside the image;
/// 5. PCI ids not VMware's VMI device: warning only ([`RomInfo::warning`]);
/// 6. PnP header (if any) and its manufacturer / product strings inside the
///    image and NUL-terminated;
/// 7. license string (if any) inside the image and NUL-terminated;
/// 8. license exactly "GPL" or "GPL v2", otherwise rejected (no license = rejected).
///
/// Never reads outside `bytes`, never panics. No checksum is verified (Linux
/// does not); see [`crate::verify_checksum`] for the BIOS's view.
pub fn check_rom(bytes: &[u8]) -> Result<RomInfo<'_>, RomRejection<'_>> {
    let rom_signature: u16 = read_at(bytes, 0, RomPart::OptionRomSignature)?;
    if rom_signature != OPTION_ROM_SIGNATURE {
        return Err(RomRejection::NotOptionRom {
            found: rom_signature,
        });
    }
    let vrom_signature: u32 = read_at(
        bytes,
        offset_of!(VromHeader, vrom_signature),
        RomPart::VmiSignature,
    )?;
    if vrom_signature != VMI_SIGNATURE {
        return Err(RomRejection::NotVmi {
            found: vrom_signature,
        });
    }
    let header: VromHeader = read_at(bytes, 0, RomPart::Header)?;

    if header.api_version_maj != VMI_API_REV_MAJOR {
        return Err(RomRejection::VersionMismatch {
            major: header.api_version_maj,
            minor: header.api_version_min,
        });
    }

    // The signature alone could be a coincidence: Linux insists on a PCI header.
    if header.pci_header_offs == 0 {
        return Err(RomRejection::NoPciHeader);
    }
    let pci: PciHeader = read_at(
        bytes,
        usize::from(header.pci_header_offs),
        RomPart::PciHeader,
    )?;
    let warning =
        if pci.vendor_id != PCI_VENDOR_ID_VMWARE || pci.device_id != PCI_DEVICE_ID_VMWARE_VMI {
            Some(RomWarning::UnknownManufacturer {
                vendor: pci.vendor_id,
                device: pci.device_id,
            })
        } else {
            None
        };

    let (mut pnp, mut manufacturer, mut product) = (None, None, None);
    if header.pnp_header_offs != 0 {
        let found: PnpHeader = read_at(
            bytes,
            usize::from(header.pnp_header_offs),
            RomPart::PnpHeader,
        )?;
        if found.manufacturer_offset != 0 {
            manufacturer = Some(c_string_at(
                bytes,
                usize::from(found.manufacturer_offset),
                RomPart::Manufacturer,
            )?);
        }
        if found.product_offset != 0 {
            product = Some(c_string_at(
                bytes,
                usize::from(found.product_offset),
                RomPart::Product,
            )?);
        }
        pnp = Some(found);
    }

    let license = if header.license_offs != 0 {
        Some(c_string_at(
            bytes,
            usize::from(header.license_offs),
            RomPart::License,
        )?)
    } else {
        None
    };
    match license {
        Some(l) if ACCEPTED_LICENSES.contains(&l) => Ok(RomInfo {
            header,
            pci,
            pnp,
            manufacturer,
            product,
            license: l,
            warning,
        }),
        other => Err(RomRejection::NonGplLicense { license: other }),
    }
}

/// The physical addresses `probe_vmi_rom()` tries, in order: 0xC0000,
/// 0xC0800, ... 0xDF800.
pub fn probe_addresses() -> impl Iterator<Item = u32> {
    (VMI_PROBE_START..VMI_PROBE_END).step_by(VMI_PROBE_STEP as usize)
}

/// Scans an option ROM area the way `probe_vmi_rom()` does: `area` holds the
/// bytes at physical addresses `area_base ..`; the first probe address whose
/// ROM passes [`check_rom`] wins. Each candidate is checked against all the
/// bytes from its address to the end of `area` (a ROM may span several 2 KiB
/// steps). `on_reject` sees every probe address that was refused (a guest
/// prints the ones Linux prints: not the two signature mismatches).
pub fn probe_rom_area_reporting<'a>(
    area: &'a [u8],
    area_base: u32,
    mut on_reject: impl FnMut(u32, &RomRejection<'a>),
) -> Option<(u32, RomInfo<'a>)> {
    for addr in probe_addresses() {
        let Some(start) = addr.checked_sub(area_base) else {
            continue;
        };
        let Some(candidate) = area.get(start as usize..).filter(|c| !c.is_empty()) else {
            continue;
        };
        match check_rom(candidate) {
            Ok(info) => return Some((addr, info)),
            Err(why) => on_reject(addr, &why),
        }
    }
    None
}

/// [`probe_rom_area_reporting`] without the report.
pub fn probe_rom_area(area: &[u8], area_base: u32) -> Option<(u32, RomInfo<'_>)> {
    probe_rom_area_reporting(area, area_base, |_, _| {})
}
