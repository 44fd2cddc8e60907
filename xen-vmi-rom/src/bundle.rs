//! The module contract for a kernel with an initrd (docs/boot-contract.md,
//! "Kernel and initrd in one module").
//!
//! Xen hands the PV image exactly one module: the second multiboot module
//! of a dom0, `ramdisk=` of an `xl` domU. A kernel that needs an initrd
//! comes with it in a bundle: a 64-byte header, then the kernel and the
//! initrd, each at a page-aligned offset (`vmi-pack bundle` makes one). A
//! module that does not start with the bundle magic is the kernel itself.
//!
//! Header (little-endian):
//!
//! | offset | field |
//! |---|---|
//! | 0x00 | magic `"VMIPACK\0"` |
//! | 0x08 | u32 version (1) |
//! | 0x0C | u32 header size (64) |
//! | 0x10 | u32 kernel offset, u32 kernel size |
//! | 0x18 | u32 initrd offset, u32 initrd size (0, 0: none) |
//! | 0x20 | 32 bytes reserved, zero |

/// The bundle's first bytes.
pub const MAGIC: [u8; 8] = *b"VMIPACK\0";
/// The header layout version this code reads and writes.
pub const VERSION: u32 = 1;
/// Bytes of the header.
pub const HEADER_SIZE: usize = 64;
/// Alignment of the parts in a bundle [`header`] describes.
pub const PART_ALIGN: u32 = 4096;

/// A kernel and, if the module carries one, its initrd.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Parts<'a> {
    pub kernel: &'a [u8],
    pub initrd: Option<&'a [u8]>,
}

/// Why a bundle cannot be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BundleError {
    /// The module has the magic but not a whole header.
    HeaderTruncated { len: usize },
    /// A layout version or header size this loader does not know.
    UnknownVersion { version: u32, header_size: u32 },
    /// The bundle has no kernel (size 0).
    NoKernel,
    /// A part lies (partly) past the end of the module: the file was cut
    /// short, or the header is wrong.
    PartOutsideModule {
        part: &'static str,
        offset: u32,
        size: u32,
        module_len: usize,
    },
    /// A part overlaps the header or the other part.
    PartsOverlap,
}

impl BundleError {
    /// A one-line explanation for the console.
    pub fn describe(&self) -> &'static str {
        match self {
            Self::HeaderTruncated { .. } => "a kernel+initrd bundle cut short inside its header",
            Self::UnknownVersion { .. } => "a kernel+initrd bundle of a layout version this loader does not know",
            Self::NoKernel => "a kernel+initrd bundle without a kernel",
            Self::PartOutsideModule { part: "initrd", .. } => "the bundle's initrd is missing: it lies past the end of the module (the file was cut short)",
            Self::PartOutsideModule { .. } => "the bundle's kernel lies past the end of the module (the file was cut short)",
            Self::PartsOverlap => "a kernel+initrd bundle whose parts overlap each other or the header",
        }
    }
}

fn u32_at(b: &[u8], off: usize) -> u32 {
    u32::from_le_bytes(b[off..off + 4].try_into().expect("4 bytes"))
}

/// Whether `module` is a bundle (starts with [`MAGIC`]).
pub fn is_bundle(module: &[u8]) -> bool {
    module.starts_with(&MAGIC)
}

/// The kernel and initrd of `module`: the bundle's parts, or the whole
/// module as the kernel when it is no bundle.
pub fn unpack(module: &[u8]) -> Result<Parts<'_>, BundleError> {
    if !is_bundle(module) {
        return Ok(Parts {
            kernel: module,
            initrd: None,
        });
    }
    if module.len() < HEADER_SIZE {
        return Err(BundleError::HeaderTruncated { len: module.len() });
    }
    let (version, header_size) = (u32_at(module, 8), u32_at(module, 12));
    if version != VERSION || header_size as usize != HEADER_SIZE {
        return Err(BundleError::UnknownVersion {
            version,
            header_size,
        });
    }
    let part = |name: &'static str, at: usize| -> Result<Option<(usize, usize)>, BundleError> {
        let (offset, size) = (u32_at(module, at), u32_at(module, at + 4));
        if size == 0 {
            return Ok(None);
        }
        let end = (offset as usize).checked_add(size as usize);
        if end.is_none_or(|e| e > module.len()) {
            return Err(BundleError::PartOutsideModule {
                part: name,
                offset,
                size,
                module_len: module.len(),
            });
        }
        if (offset as usize) < HEADER_SIZE {
            return Err(BundleError::PartsOverlap);
        }
        Ok(Some((offset as usize, offset as usize + size as usize)))
    };
    let kernel = part("kernel", 0x10)?.ok_or(BundleError::NoKernel)?;
    let initrd = part("initrd", 0x18)?;
    if let Some(rd) = initrd {
        if rd.0 < kernel.1 && kernel.0 < rd.1 {
            return Err(BundleError::PartsOverlap);
        }
    }
    Ok(Parts {
        kernel: &module[kernel.0..kernel.1],
        initrd: initrd.map(|(a, b)| &module[a..b]),
    })
}

/// Where a bundle of a `kernel_len`-byte kernel and an `initrd_len`-byte
/// initrd puts them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    pub header: [u8; HEADER_SIZE],
    pub kernel_offset: u32,
    pub initrd_offset: u32,
    /// Bytes of the whole bundle.
    pub total: u32,
}

/// The header of a bundle: the kernel at the first page boundary after
/// the header, the initrd (if `initrd_len` > 0) at the next one after the
/// kernel. None if the bundle would not fit in 4 GiB.
pub fn header(kernel_len: u32, initrd_len: u32) -> Option<Layout> {
    let kernel_offset = PART_ALIGN;
    let kernel_end = kernel_offset.checked_add(kernel_len)?;
    let initrd_offset = if initrd_len == 0 {
        0
    } else {
        kernel_end.checked_next_multiple_of(PART_ALIGN)?
    };
    let total = if initrd_len == 0 {
        kernel_end
    } else {
        initrd_offset.checked_add(initrd_len)?
    };
    let mut h = [0u8; HEADER_SIZE];
    h[..8].copy_from_slice(&MAGIC);
    for (at, v) in [
        (8, VERSION),
        (12, HEADER_SIZE as u32),
        (16, kernel_offset),
        (20, kernel_len),
        (24, initrd_offset),
        (28, initrd_len),
    ] {
        h[at..at + 4].copy_from_slice(&v.to_le_bytes());
    }
    Some(Layout {
        header: h,
        kernel_offset,
        initrd_offset,
        total,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bundle(kernel: &[u8], initrd: &[u8]) -> Vec<u8> {
        let l = header(kernel.len() as u32, initrd.len() as u32).unwrap();
        let mut b = vec![0u8; l.total as usize];
        b[..HEADER_SIZE].copy_from_slice(&l.header);
        let k = l.kernel_offset as usize;
        b[k..k + kernel.len()].copy_from_slice(kernel);
        if !initrd.is_empty() {
            let r = l.initrd_offset as usize;
            b[r..r + initrd.len()].copy_from_slice(initrd);
        }
        b
    }

    #[test]
    fn a_plain_kernel_is_its_own_part() {
        let k = b"\x7FELF...";
        assert_eq!(
            unpack(k),
            Ok(Parts {
                kernel: k,
                initrd: None
            })
        );
    }

    #[test]
    fn round_trip() {
        let b = bundle(&[1; 5000], &[2; 9000]);
        let p = unpack(&b).unwrap();
        assert_eq!(p.kernel, &[1; 5000][..]);
        assert_eq!(p.initrd, Some(&[2; 9000][..]));
        assert_eq!(u32_at(&b, 16) % PART_ALIGN, 0);
        assert_eq!(u32_at(&b, 24) % PART_ALIGN, 0);
        let b = bundle(&[1; 10], &[]);
        assert_eq!(unpack(&b).unwrap().initrd, None);
    }

    #[test]
    fn a_cut_bundle_names_the_missing_initrd() {
        let b = bundle(&[1; 5000], &[2; 9000]);
        let cut = &b[..b.len() - 1];
        assert!(matches!(
            unpack(cut),
            Err(BundleError::PartOutsideModule { part: "initrd", .. })
        ));
        assert!(unpack(cut)
            .unwrap_err()
            .describe()
            .contains("initrd is missing"));
        assert!(matches!(
            unpack(&b[..4100]),
            Err(BundleError::PartOutsideModule { part: "kernel", .. })
        ));
        assert_eq!(
            unpack(&b[..20]),
            Err(BundleError::HeaderTruncated { len: 20 })
        );
    }

    #[test]
    fn bad_headers_are_refused() {
        let mut b = bundle(&[1; 100], &[2; 100]);
        b[8] = 2;
        assert!(matches!(
            unpack(&b),
            Err(BundleError::UnknownVersion { version: 2, .. })
        ));
        let mut b = bundle(&[1; 100], &[2; 100]);
        b[20..24].fill(0);
        assert_eq!(unpack(&b), Err(BundleError::NoKernel));
        let mut b = bundle(&[1; 100], &[2; 100]);
        b[24..28].copy_from_slice(&4096u32.to_le_bytes());
        assert_eq!(unpack(&b), Err(BundleError::PartsOverlap));
        let mut b = bundle(&[1; 100], &[2; 100]);
        b[16..20].copy_from_slice(&8u32.to_le_bytes());
        assert_eq!(unpack(&b), Err(BundleError::PartsOverlap));
    }

    proptest::proptest! {
        #[test]
        fn unpack_never_panics_and_parts_stay_inside(
            tail in proptest::collection::vec(proptest::num::u8::ANY, 0..200),
            fields in proptest::array::uniform6(0u32..400),
        ) {
            let mut b = MAGIC.to_vec();
            for f in [VERSION, HEADER_SIZE as u32, fields[0], fields[1], fields[2], fields[3]] {
                b.extend_from_slice(&f.to_le_bytes());
            }
            b.resize(HEADER_SIZE, 0);
            b.extend(tail);
            if let Ok(p) = unpack(&b) {
                let inside = |s: &[u8]| {
                    let start = s.as_ptr() as usize - b.as_ptr() as usize;
                    start >= HEADER_SIZE && start + s.len() <= b.len()
                };
                proptest::prop_assert!(!p.kernel.is_empty() && inside(p.kernel));
                if let Some(rd) = p.initrd {
                    proptest::prop_assert!(inside(rd));
                }
            }
        }

        #[test]
        fn headers_round_trip(k in 1u32..100_000, r in 0u32..100_000) {
            let b = bundle(&vec![7; k as usize], &vec![9; r as usize]);
            let p = unpack(&b).unwrap();
            proptest::prop_assert_eq!(p.kernel.len() as u32, k);
            proptest::prop_assert_eq!(p.initrd.map_or(0, |x| x.len() as u32), r);
        }
    }
}
