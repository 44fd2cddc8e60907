//! ELF notes a PV kernel image carries for Xen's domain builder:
//! `elfnote.h` (interface 0x00040e00), plus a builder for the note bytes.
//!
//! A note is `namesz, descsz, type` (three 32-bit words), the name "Xen\0"
//! and the descriptor, padded to 4 bytes. Numeric notes are read as 1-, 2-,
//! 4- or 8-byte little-endian values, so 4 bytes are enough on x86_32;
//! string notes are NUL-terminated.
//!
//! ```
//! use xen_abi::elfnote::*;
//! use xen_abi::xen_elf_note;
//! xen_elf_note!(static GUEST_OS = string(XEN_ELFNOTE_GUEST_OS, "xen-vmi-rom"));
//! xen_elf_note!(static VIRT_BASE = numeric(XEN_ELFNOTE_VIRT_BASE, 0));
//! assert_eq!(&GUEST_OS.as_bytes()[12..16], b"Xen\0");
//! ```

use core::mem::size_of;

/// `XEN_ELFNOTE_INFO`: legacy, unused.
pub const XEN_ELFNOTE_INFO: u32 = 0;
/// `XEN_ELFNOTE_ENTRY` (numeric): entry virtual address (default `e_entry`).
pub const XEN_ELFNOTE_ENTRY: u32 = 1;
/// `XEN_ELFNOTE_HYPERCALL_PAGE` (numeric): virtual address of the page Xen
/// fills with hypercall stubs.
pub const XEN_ELFNOTE_HYPERCALL_PAGE: u32 = 2;
/// `XEN_ELFNOTE_VIRT_BASE` (numeric): where pseudo-physical 0 is mapped
/// (default 0 when notes are used).
pub const XEN_ELFNOTE_VIRT_BASE: u32 = 3;
/// `XEN_ELFNOTE_PADDR_OFFSET` (numeric): `virt = p_paddr - PADDR_OFFSET +
/// VIRT_BASE` (default 0 when notes are used).
pub const XEN_ELFNOTE_PADDR_OFFSET: u32 = 4;
/// `XEN_ELFNOTE_XEN_VERSION` (string): must start with "xen-3.0".
pub const XEN_ELFNOTE_XEN_VERSION: u32 = 5;
/// `XEN_ELFNOTE_GUEST_OS` (string).
pub const XEN_ELFNOTE_GUEST_OS: u32 = 6;
/// `XEN_ELFNOTE_GUEST_VERSION` (string).
pub const XEN_ELFNOTE_GUEST_VERSION: u32 = 7;
/// `XEN_ELFNOTE_LOADER` (string): "generic".
pub const XEN_ELFNOTE_LOADER: u32 = 8;
/// `XEN_ELFNOTE_PAE_MODE` (string): "yes" for an extended-CR3 PAE guest
/// ("xen-3.0-x86_32p").
pub const XEN_ELFNOTE_PAE_MODE: u32 = 9;
/// `XEN_ELFNOTE_FEATURES` (string): '|'-separated `XENFEAT_*` names, a
/// leading '!' marks a required one.
pub const XEN_ELFNOTE_FEATURES: u32 = 10;
/// `XEN_ELFNOTE_BSD_SYMTAB` (string): "yes" to get the symbol table loaded.
pub const XEN_ELFNOTE_BSD_SYMTAB: u32 = 11;
/// `XEN_ELFNOTE_HV_START_LOW` (numeric): lowest hypervisor hole start a
/// 32-bit dom0 accepts (ignored for domUs).
pub const XEN_ELFNOTE_HV_START_LOW: u32 = 12;
/// `XEN_ELFNOTE_L1_MFN_VALID` (numeric pairs): mask/value marking non-present
/// L1 entries that still hold MFNs.
pub const XEN_ELFNOTE_L1_MFN_VALID: u32 = 13;
/// `XEN_ELFNOTE_SUSPEND_CANCEL` (numeric): 1 if cooperative suspend can be
/// cancelled.
pub const XEN_ELFNOTE_SUSPEND_CANCEL: u32 = 14;
/// `XEN_ELFNOTE_INIT_P2M` (numeric): virtual address for the p2m (x86-64).
pub const XEN_ELFNOTE_INIT_P2M: u32 = 15;
/// `XEN_ELFNOTE_MOD_START_PFN` (numeric): 1 if the module may be passed
/// unmapped, as a PFN.
pub const XEN_ELFNOTE_MOD_START_PFN: u32 = 16;
/// `XEN_ELFNOTE_SUPPORTED_FEATURES` (numeric): bitmap of `XENFEAT_*`.
pub const XEN_ELFNOTE_SUPPORTED_FEATURES: u32 = 17;
/// `XEN_ELFNOTE_PHYS32_ENTRY` (numeric): PVH entry point (ignored for PV).
pub const XEN_ELFNOTE_PHYS32_ENTRY: u32 = 18;
/// `XEN_ELFNOTE_MAX`.
pub const XEN_ELFNOTE_MAX: u32 = XEN_ELFNOTE_PHYS32_ENTRY;
/// `XEN_ELFNOTE_CRASH_INFO` (core files).
pub const XEN_ELFNOTE_CRASH_INFO: u32 = 0x100_0001;
/// `XEN_ELFNOTE_CRASH_REGS` (core files).
pub const XEN_ELFNOTE_CRASH_REGS: u32 = 0x100_0002;
/// `XEN_ELFNOTE_DUMPCORE_NONE`.
pub const XEN_ELFNOTE_DUMPCORE_NONE: u32 = 0x200_0000;
/// `XEN_ELFNOTE_DUMPCORE_HEADER`.
pub const XEN_ELFNOTE_DUMPCORE_HEADER: u32 = 0x200_0001;
/// `XEN_ELFNOTE_DUMPCORE_XEN_VERSION`.
pub const XEN_ELFNOTE_DUMPCORE_XEN_VERSION: u32 = 0x200_0002;
/// `XEN_ELFNOTE_DUMPCORE_FORMAT_VERSION`.
pub const XEN_ELFNOTE_DUMPCORE_FORMAT_VERSION: u32 = 0x200_0003;

/// The note name, NUL terminated (`namesz` = 4, no padding needed).
pub const XEN_NOTE_NAME: [u8; 4] = *b"Xen\0";

/// The section the notes go to; the linker script must put it in a
/// `PT_NOTE` segment.
pub const XEN_NOTE_SECTION: &str = ".note.Xen";

/// `len` rounded up to a multiple of 4 (ELF note padding).
pub const fn padded_len(len: usize) -> usize {
    (len + 3) & !3
}

/// The padded descriptor length of a string note holding `value` (with its
/// NUL).
pub const fn string_desc_len(value: &str) -> usize {
    padded_len(value.len() + 1)
}

/// One Xen ELF note whose descriptor occupies `DESC_LEN` bytes (a multiple
/// of 4), laid out exactly as it must appear in the note section.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C, align(4))]
pub struct XenElfNote<const DESC_LEN: usize> {
    namesz: u32,
    descsz: u32,
    n_type: u32,
    name: [u8; 4],
    desc: [u8; DESC_LEN],
}

impl<const DESC_LEN: usize> XenElfNote<DESC_LEN> {
    const PADDED: () = assert!(DESC_LEN & 3 == 0, "a note descriptor is padded to 4 bytes");

    /// A note of type `n_type` with descriptor `desc` (`descsz` =
    /// `desc.len()`, zero padded to `DESC_LEN`). Fails to compile (in a
    /// `static`) if `desc` does not fit or `DESC_LEN` is not its padded
    /// length.
    pub const fn from_desc(n_type: u32, desc: &[u8]) -> Self {
        #[allow(clippy::let_unit_value)]
        let () = Self::PADDED;
        assert!(
            padded_len(desc.len()) == DESC_LEN,
            "DESC_LEN must be the padded descriptor length"
        );
        let mut padded = [0u8; DESC_LEN];
        let mut i = 0;
        while i < desc.len() {
            padded[i] = desc[i];
            i += 1;
        }
        Self {
            namesz: XEN_NOTE_NAME.len() as u32,
            descsz: desc.len() as u32,
            n_type,
            name: XEN_NOTE_NAME,
            desc: padded,
        }
    }

    /// A string note: `value` with a NUL terminator. `DESC_LEN` must be
    /// [`string_desc_len`]`(value)`; the [`xen_elf_note!`](crate::xen_elf_note)
    /// macro computes it.
    pub const fn string(n_type: u32, value: &str) -> Self {
        let bytes = value.as_bytes();
        assert!(
            string_desc_len(value) == DESC_LEN,
            "DESC_LEN must be string_desc_len(value)"
        );
        let mut padded = [0u8; DESC_LEN];
        let mut i = 0;
        while i < bytes.len() {
            assert!(bytes[i] != 0, "a string note cannot contain NUL");
            padded[i] = bytes[i];
            i += 1;
        }
        let mut note = Self::from_desc(n_type, &padded);
        note.descsz = bytes.len() as u32 + 1;
        note
    }

    /// The note type.
    pub const fn n_type(&self) -> u32 {
        self.n_type
    }

    /// The descriptor (`descsz` bytes, without padding).
    pub fn desc(&self) -> &[u8] {
        &self.desc[..self.descsz as usize]
    }

    /// The note's bytes, as they appear in the section.
    pub fn as_bytes(&self) -> &[u8] {
        // SAFETY: `Self` is `repr(C)` of three u32, a [u8; 4] and a
        // [u8; DESC_LEN] with DESC_LEN a multiple of 4 (checked in every
        // constructor), so it has no padding and every byte is initialised;
        // the slice covers exactly `*self` and borrows it.
        unsafe {
            core::slice::from_raw_parts((self as *const Self).cast::<u8>(), size_of::<Self>())
        }
    }
}

impl XenElfNote<4> {
    /// A 4-byte numeric note.
    pub const fn numeric(n_type: u32, value: u32) -> Self {
        Self::from_desc(n_type, &value.to_le_bytes())
    }
}

impl XenElfNote<8> {
    /// An 8-byte numeric note.
    pub const fn numeric64(n_type: u32, value: u64) -> Self {
        Self::from_desc(n_type, &value.to_le_bytes())
    }
}

/// A numeric note whose value is the address of something in the image
/// (e.g. `XEN_ELFNOTE_HYPERCALL_PAGE`, `XEN_ELFNOTE_ENTRY`): the linker
/// fills the descriptor with an absolute relocation. 4 bytes on x86_32.
#[derive(Debug)]
#[repr(C, align(4))]
pub struct XenElfNoteAddr {
    namesz: u32,
    descsz: u32,
    n_type: u32,
    name: [u8; 4],
    desc: *const u8,
}

// SAFETY: the pointer is never dereferenced through this type; it is only a
// value the linker writes into the note for Xen's domain builder.
unsafe impl Sync for XenElfNoteAddr {}

impl XenElfNoteAddr {
    /// A note of type `n_type` whose descriptor is the address `addr`.
    pub const fn new(n_type: u32, addr: *const u8) -> Self {
        Self {
            namesz: XEN_NOTE_NAME.len() as u32,
            descsz: size_of::<*const u8>() as u32,
            n_type,
            name: XEN_NOTE_NAME,
            desc: addr,
        }
    }

    /// The address the note carries.
    pub fn addr(&self) -> *const u8 {
        self.desc
    }
}

/// Emits a Xen ELF note as a `#[used]` static in the `.note.Xen` section:
///
/// - `xen_elf_note!(static NAME = string(TYPE, "text"));`
/// - `xen_elf_note!(static NAME = numeric(TYPE, 0x1234));` (4 bytes)
/// - `xen_elf_note!(static NAME = numeric64(TYPE, 0x1234));` (8 bytes)
/// - `xen_elf_note!(static NAME = address(TYPE, &raw const SYMBOL));` (a
///   pointer-sized descriptor the linker fills in)
///
/// Attributes and a visibility may precede `static`.
#[macro_export]
macro_rules! xen_elf_note {
    ($(#[$meta:meta])* $vis:vis static $name:ident = string($ty:expr, $value:expr) $(;)?) => {
        $(#[$meta])*
        #[used]
        #[link_section = ".note.Xen"]
        $vis static $name: $crate::elfnote::XenElfNote<{ $crate::elfnote::string_desc_len($value) }> =
            $crate::elfnote::XenElfNote::string($ty, $value);
    };
    ($(#[$meta:meta])* $vis:vis static $name:ident = numeric($ty:expr, $value:expr) $(;)?) => {
        $(#[$meta])*
        #[used]
        #[link_section = ".note.Xen"]
        $vis static $name: $crate::elfnote::XenElfNote<4> = $crate::elfnote::XenElfNote::numeric($ty, $value);
    };
    ($(#[$meta:meta])* $vis:vis static $name:ident = numeric64($ty:expr, $value:expr) $(;)?) => {
        $(#[$meta])*
        #[used]
        #[link_section = ".note.Xen"]
        $vis static $name: $crate::elfnote::XenElfNote<8> = $crate::elfnote::XenElfNote::numeric64($ty, $value);
    };
    ($(#[$meta:meta])* $vis:vis static $name:ident = address($ty:expr, $addr:expr) $(;)?) => {
        $(#[$meta])*
        #[used]
        #[link_section = ".note.Xen"]
        $vis static $name: $crate::elfnote::XenElfNoteAddr =
            $crate::elfnote::XenElfNoteAddr::new($ty, ($addr) as *const u8);
    };
}

/// Iterates over the notes named "Xen" in a note section's bytes, yielding
/// `(type, descriptor)`; notes with other names are skipped. Stops at the
/// first malformed note. For checking a built image.
pub fn xen_notes(section: &[u8]) -> XenNotes<'_> {
    XenNotes { rest: section }
}

/// Iterator returned by [`xen_notes`].
#[derive(Clone, Debug)]
pub struct XenNotes<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for XenNotes<'a> {
    type Item = (u32, &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let word = |i: usize| -> Option<u32> {
                let bytes = self.rest.get(i * 4..i * 4 + 4)?;
                Some(u32::from_le_bytes(bytes.try_into().ok()?))
            };
            let namesz = word(0)? as usize;
            let descsz = word(1)? as usize;
            let n_type = word(2)?;
            let name_start = 12;
            let desc_start = name_start + padded_len(namesz);
            let next = desc_start.checked_add(padded_len(descsz))?;
            if next > self.rest.len() {
                self.rest = &[];
                return None;
            }
            let name = &self.rest[name_start..name_start + namesz];
            let desc = &self.rest[desc_start..desc_start + descsz];
            self.rest = &self.rest[next..];
            if name == XEN_NOTE_NAME {
                return Some((n_type, desc));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use alloc::vec::Vec;

    use super::*;

    crate::xen_elf_note!(static VERSION_NOTE = string(XEN_ELFNOTE_XEN_VERSION, "xen-3.0"));
    crate::xen_elf_note!(static LOADER_NOTE = string(XEN_ELFNOTE_LOADER, "generic"));
    crate::xen_elf_note!(static PAE_NOTE = string(XEN_ELFNOTE_PAE_MODE, "yes"));
    crate::xen_elf_note!(static BASE_NOTE = numeric(XEN_ELFNOTE_VIRT_BASE, 0xC000_0000));
    crate::xen_elf_note!(static WIDE_NOTE = numeric64(XEN_ELFNOTE_HV_START_LOW, 0xF580_0000));
    static TARGET: [u8; 16] = [0; 16];
    crate::xen_elf_note!(static PAGE_NOTE = address(XEN_ELFNOTE_HYPERCALL_PAGE, &raw const TARGET));

    #[test]
    fn string_note_bytes() {
        // "xen-3.0" + NUL is 8 bytes: no padding.
        let mut expected = Vec::new();
        for word in [4u32, 8, 5] {
            expected.extend_from_slice(&word.to_le_bytes());
        }
        expected.extend_from_slice(b"Xen\0xen-3.0\0");
        assert_eq!(VERSION_NOTE.as_bytes(), &expected[..]);
        assert_eq!(VERSION_NOTE.desc(), b"xen-3.0\0");

        // "yes" + NUL is 4; "generic" + NUL is 8.
        assert_eq!(PAE_NOTE.as_bytes().len(), 16 + 4);
        assert_eq!(LOADER_NOTE.as_bytes().len(), 16 + 8);
        let odd = XenElfNote::<{ string_desc_len("linux") }>::string(XEN_ELFNOTE_GUEST_OS, "linux");
        assert_eq!(odd.as_bytes().len(), 16 + 8);
        assert_eq!(&odd.as_bytes()[4..8], &6u32.to_le_bytes());
        assert_eq!(&odd.as_bytes()[16..], b"linux\0\0\0");
    }

    #[test]
    fn numeric_note_bytes() {
        let bytes = BASE_NOTE.as_bytes();
        assert_eq!(&bytes[0..12], &[4, 0, 0, 0, 4, 0, 0, 0, 3, 0, 0, 0]);
        assert_eq!(&bytes[12..16], b"Xen\0");
        assert_eq!(&bytes[16..20], &0xC000_0000u32.to_le_bytes());
        assert_eq!(WIDE_NOTE.desc(), &0xF580_0000u64.to_le_bytes());
        assert_eq!(PAGE_NOTE.addr(), TARGET.as_ptr());
    }

    #[test]
    fn notes_parse_back() {
        let mut section = Vec::new();
        section.extend_from_slice(VERSION_NOTE.as_bytes());
        // A foreign note in between is skipped.
        section.extend_from_slice(&[4, 0, 0, 0, 4, 0, 0, 0, 1, 0, 0, 0]);
        section.extend_from_slice(b"GNU\0\x01\x02\x03\x04");
        section.extend_from_slice(PAE_NOTE.as_bytes());
        section.extend_from_slice(BASE_NOTE.as_bytes());
        let notes: Vec<_> = xen_notes(&section).collect();
        assert_eq!(
            notes,
            [
                (XEN_ELFNOTE_XEN_VERSION, &b"xen-3.0\0"[..]),
                (XEN_ELFNOTE_PAE_MODE, &b"yes\0"[..]),
                (XEN_ELFNOTE_VIRT_BASE, &0xC000_0000u32.to_le_bytes()[..]),
            ]
        );
        // Truncated input ends the iteration.
        assert_eq!(xen_notes(&section[..10]).count(), 0);
    }
}
