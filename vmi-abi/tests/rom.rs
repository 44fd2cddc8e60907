//! Building ROM headers and checking them the way Linux's check_vmi_rom() does.

use proptest::prelude::*;
use vmi_abi::builder::{
    BUILDER_LICENSE_OFFSET, BUILDER_PCI_HEADER_OFFSET, BUILDER_PNP_HEADER_OFFSET,
    BUILDER_STRINGS_OFFSET, PNP_EXPANSION_HEADER_SIZE, ROM_ENTRY_RETF,
};
use vmi_abi::*;

const VIRTUAL_TOP: u32 = 0xF540_0000;
const BLOCKS: u8 = 4;
const LEN: usize = BLOCKS as usize * 512;

fn spec() -> RomSpec<'static> {
    RomSpec {
        manufacturer: Some(b"xen-vmi-rom"),
        product: Some(b"VMI on Xen PV"),
        rom_version_maj: 2,
        rom_version_min: 7,
        ..RomSpec::new(
            BLOCKS,
            VIRTUAL_TOP,
            jump_point(0x80, 0x200),
            jump_point(0x88, 0x300),
        )
    }
}

fn image_from(spec: &RomSpec<'_>) -> Vec<u8> {
    let mut image = vec![0u8; LEN];
    // Some code-like bytes after the header so the checksum has work to do.
    for (i, b) in image.iter_mut().enumerate().skip(0x200) {
        *b = (i * 7 + 3) as u8;
    }
    write_rom_header(&mut image, spec).unwrap();
    fix_checksum(&mut image).unwrap();
    image
}

fn good_image() -> Vec<u8> {
    image_from(&spec())
}

fn put_u16(image: &mut [u8], at: usize, v: u16) {
    image[at..at + 2].copy_from_slice(&v.to_le_bytes());
}

// A ROM header built entirely at compile time.
const CONST_HEADER: [u8; VROM_HEADER_SIZE] = match build_header(&RomSpec::new(
    1,
    0xFC00_0000,
    jump_point(0x80, 0x100),
    jump_point(0x88, 0x180),
)) {
    Ok(h) => h,
    Err(_) => panic!("header must build"),
};

#[test]
fn builder_writes_the_documented_bytes() {
    let image = good_image();
    assert_eq!(image[0..2], [0x55, 0xAA]);
    assert_eq!(image[2], BLOCKS);
    assert_eq!(image[3..7], ROM_ENTRY_RETF);
    assert_eq!(&image[8..12], b"cVmi");
    assert_eq!((image[0x0C], image[0x0D]), (0, 3));
    assert_eq!(image[0x10..0x14], VIRTUAL_TOP.to_le_bytes());
    assert_eq!(image[0x16..0x18], BUILDER_LICENSE_OFFSET.to_le_bytes());
    assert_eq!(image[0x18..0x1A], BUILDER_PCI_HEADER_OFFSET.to_le_bytes());
    assert_eq!(image[0x1A..0x1C], BUILDER_PNP_HEADER_OFFSET.to_le_bytes());
    assert_eq!(&image[0x38..0x3F], b"GPL v2\0");
    // PCI data structure.
    let pci = &image[0x20..0x38];
    assert_eq!(&pci[0..4], b"PCIR");
    assert_eq!(pci[4..8], [0xAD, 0x15, 0x01, 0x08]);
    assert_eq!(pci[10..12], 24u16.to_le_bytes());
    assert_eq!(pci[16..18], u16::from(BLOCKS).to_le_bytes());
    assert_eq!((pci[18], pci[19]), (7, 2));
    assert_eq!(pci[21], 0x80);
    // PnP expansion header: signature, 32 bytes, sums to 0, no boot vectors.
    let pnp = &image[0x40..0x60];
    assert_eq!(&pnp[0..4], b"$PnP");
    assert_eq!(pnp[5] as usize * 16, PNP_EXPANSION_HEADER_SIZE);
    assert_eq!(byte_sum(pnp), 0);
    assert_eq!(pnp[0x16..0x1C], [0; 6]);
    assert_eq!(pnp[14..16], BUILDER_STRINGS_OFFSET.to_le_bytes());
    assert_eq!(&image[0x60..0x6C], b"xen-vmi-rom\0");
    assert_eq!(pnp[16..18], 0x6Cu16.to_le_bytes());
    assert_eq!(&image[0x6C..0x7A], b"VMI on Xen PV\0");
    // Jump points.
    assert_eq!(image[0x80..0x88], jump_point(0x80, 0x200));
    assert_eq!(image[0x88..0x90], jump_point(0x88, 0x300));
    // Checksum.
    assert_eq!(verify_checksum(&image), Ok(()));
    assert_eq!(byte_sum(&image), 0);
    // The const-built header is accepted too.
    let mut small = vec![0u8; 512];
    small[..VROM_HEADER_SIZE].copy_from_slice(&CONST_HEADER);
    assert!(check_rom(&small).is_ok());
}

#[test]
fn good_rom_is_accepted_with_everything_linux_prints() {
    let image = good_image();
    let info = check_rom(&image).unwrap();
    assert_eq!(info.api_version(), (3, 0));
    assert_eq!(info.rom_version(), (2, 7));
    assert_eq!(info.virtual_top(), VIRTUAL_TOP);
    assert_eq!(info.pci_ids(), (0x15AD, 0x0801));
    assert_eq!(info.manufacturer, Some(&b"xen-vmi-rom"[..]));
    assert_eq!(info.product, Some(&b"VMI on Xen PV"[..]));
    assert_eq!(info.license, b"GPL v2");
    assert_eq!(info.warning, None);
    assert!(!info.unknown_manufacturer());
    assert_eq!(info.header.vmi_init, jump_point(0x80, 0x200));
    assert_eq!(
        info.to_string(),
        "xen-vmi-rom VMI on Xen PV, API version 3.0, ROM version 2.7"
    );

    // Plain "GPL" is the other accepted license; no PnP strings print as UNKNOWN.
    let image = image_from(&RomSpec {
        license: Some(b"GPL"),
        manufacturer: None,
        product: None,
        ..spec()
    });
    let info = check_rom(&image).unwrap();
    assert_eq!(info.license, b"GPL");
    assert_eq!(
        info.to_string(),
        "UNKNOWN UNKNOWN, API version 3.0, ROM version 2.7"
    );
}

#[test]
fn any_minor_version_is_accepted() {
    for minor in [0, 1, 9, 255] {
        let image = image_from(&RomSpec {
            api_version_min: minor,
            ..spec()
        });
        assert_eq!(check_rom(&image).unwrap().api_version(), (3, minor));
    }
}

#[test]
fn bad_option_rom_signature() {
    let mut image = good_image();
    image[0..2].copy_from_slice(&[0xAA, 0x55]);
    let err = check_rom(&image).unwrap_err();
    assert_eq!(err, RomRejection::NotOptionRom { found: 0x55AA });
    assert!(err.is_silent());
}

#[test]
fn bad_vmi_signature() {
    let mut image = good_image();
    image[8..12].copy_from_slice(b"cVMI");
    let err = check_rom(&image).unwrap_err();
    assert_eq!(
        err,
        RomRejection::NotVmi {
            found: u32::from_le_bytes(*b"cVMI")
        }
    );
    assert!(err.is_silent());
}

#[test]
fn major_versions_other_than_3_are_rejected() {
    for major in [0, 1, 2, 4, 13, 255] {
        let image = image_from(&RomSpec {
            api_version_maj: major,
            api_version_min: 5,
            ..spec()
        });
        let err = check_rom(&image).unwrap_err();
        assert_eq!(err, RomRejection::VersionMismatch { major, minor: 5 });
        assert!(!err.is_silent());
        assert!(err.to_string().contains(&format!("{major}.5")));
    }
}

#[test]
fn missing_pci_header_is_rejected() {
    let mut image = good_image();
    put_u16(&mut image, 0x18, 0);
    assert_eq!(check_rom(&image), Err(RomRejection::NoPciHeader));
}

#[test]
fn foreign_pci_ids_are_accepted_with_a_warning() {
    for (vendor, device) in [(0x5853, 0x0001), (0x15AD, 0x0405), (0x1234, 0x0801)] {
        let image = image_from(&RomSpec {
            pci_vendor_id: vendor,
            pci_device_id: device,
            ..spec()
        });
        let info = check_rom(&image).unwrap();
        assert_eq!(
            info.warning,
            Some(RomWarning::UnknownManufacturer { vendor, device })
        );
        assert!(info.unknown_manufacturer());
        assert!(info
            .warning
            .unwrap()
            .to_string()
            .contains(&format!("{vendor:04x}:{device:04x}")));
    }
}

#[test]
fn non_gpl_licenses_are_rejected() {
    for license in [
        &b"GPL v3"[..],
        b"BSD",
        b"gpl",
        b"GPL ",
        b"GPLv2",
        b"GPL v2+",
        b"",
    ] {
        let image = image_from(&RomSpec {
            license: Some(license),
            ..spec()
        });
        let err = check_rom(&image).unwrap_err();
        assert_eq!(
            err,
            RomRejection::NonGplLicense {
                license: Some(license)
            }
        );
        assert!(err
            .to_string()
            .contains(std::str::from_utf8(license).unwrap()));
    }
    // No license at all: Linux compares "unspecified", and refuses.
    let image = image_from(&RomSpec {
        license: None,
        ..spec()
    });
    assert_eq!(image[0x16..0x18], [0, 0]);
    assert_eq!(
        check_rom(&image),
        Err(RomRejection::NonGplLicense { license: None })
    );
}

#[test]
fn unterminated_license_is_rejected() {
    // License string runs into the last bytes of the image with no NUL.
    let mut image = good_image();
    let at = LEN - 3;
    image[at..].copy_from_slice(b"GPL");
    put_u16(&mut image, 0x16, at as u16);
    assert_eq!(
        check_rom(&image),
        Err(RomRejection::Unterminated {
            part: RomPart::License,
            offset: at
        })
    );
    // With the NUL one byte further (a longer slice), the same bytes are accepted.
    image.push(0);
    assert_eq!(check_rom(&image).unwrap().license, b"GPL");
}

#[test]
fn offsets_outside_the_image_are_rejected() {
    let len = LEN;
    let cases: [(usize, u16, RomPart, usize); 4] = [
        (0x18, (len - 10) as u16, RomPart::PciHeader, 24),
        (0x1A, (len - 17) as u16, RomPart::PnpHeader, 18),
        (0x16, len as u16, RomPart::License, 1),
        (0x16, 0xFFFF, RomPart::License, 1),
    ];
    for (field, offset, part, size) in cases {
        let mut image = good_image();
        put_u16(&mut image, field, offset);
        assert_eq!(
            check_rom(&image),
            Err(RomRejection::OutOfBounds {
                part,
                offset: usize::from(offset),
                size,
                len
            }),
            "{part:?}"
        );
    }
    // Manufacturer and product offsets come from the PnP header.
    let mut image = good_image();
    put_u16(&mut image, 0x40 + 14, 0xF000);
    assert_eq!(
        check_rom(&image),
        Err(RomRejection::OutOfBounds {
            part: RomPart::Manufacturer,
            offset: 0xF000,
            size: 1,
            len
        })
    );
    let mut image = good_image();
    put_u16(&mut image, 0x40 + 16, len as u16);
    assert_eq!(
        check_rom(&image),
        Err(RomRejection::OutOfBounds {
            part: RomPart::Product,
            offset: len,
            size: 1,
            len
        })
    );
    // A product string that runs off the end.
    let mut image = good_image();
    image[len - 4..].copy_from_slice(b"ACME");
    put_u16(&mut image, 0x40 + 16, (len - 4) as u16);
    assert_eq!(
        check_rom(&image),
        Err(RomRejection::Unterminated {
            part: RomPart::Product,
            offset: len - 4
        })
    );
}

#[test]
fn truncated_images_are_rejected_at_the_first_missing_field() {
    let image = good_image();
    assert_eq!(
        check_rom(&[]),
        Err(RomRejection::OutOfBounds {
            part: RomPart::OptionRomSignature,
            offset: 0,
            size: 2,
            len: 0
        })
    );
    assert_eq!(
        check_rom(&image[..1]),
        Err(RomRejection::OutOfBounds {
            part: RomPart::OptionRomSignature,
            offset: 0,
            size: 2,
            len: 1
        })
    );
    assert_eq!(
        check_rom(&image[..11]),
        Err(RomRejection::OutOfBounds {
            part: RomPart::VmiSignature,
            offset: 8,
            size: 4,
            len: 11
        })
    );
    assert_eq!(
        check_rom(&image[..143]),
        Err(RomRejection::OutOfBounds {
            part: RomPart::Header,
            offset: 0,
            size: 144,
            len: 143
        })
    );
    // 144 bytes hold the header, PCI, PnP and strings of this builder: accepted.
    assert!(check_rom(&image[..144]).is_ok());
    // A short non-ROM is still "not an option ROM", as in Linux's order.
    assert_eq!(
        check_rom(&[0, 0]),
        Err(RomRejection::NotOptionRom { found: 0 })
    );
    assert!(check_rom(&image[..11]).unwrap_err().is_silent());
    assert!(!check_rom(&image[..143]).unwrap_err().is_silent());
}

#[test]
fn checks_run_in_linux_order() {
    // Version before PCI header.
    let mut image = image_from(&RomSpec {
        api_version_maj: 2,
        ..spec()
    });
    put_u16(&mut image, 0x18, 0);
    assert!(matches!(
        check_rom(&image),
        Err(RomRejection::VersionMismatch { .. })
    ));
    // PCI header before license.
    let mut image = image_from(&RomSpec {
        license: Some(b"BSD"),
        ..spec()
    });
    put_u16(&mut image, 0x18, 0);
    assert_eq!(check_rom(&image), Err(RomRejection::NoPciHeader));
    // A foreign PCI id does not save a bad license.
    let image = image_from(&RomSpec {
        license: Some(b"MIT"),
        pci_vendor_id: 1,
        ..spec()
    });
    assert_eq!(
        check_rom(&image),
        Err(RomRejection::NonGplLicense {
            license: Some(b"MIT")
        })
    );
    // Signature before version: a non-VMI ROM with major 2 is just "not VMI".
    let mut image = image_from(&RomSpec {
        api_version_maj: 2,
        ..spec()
    });
    image[8] = b'x';
    assert!(matches!(
        check_rom(&image),
        Err(RomRejection::NotVmi { .. })
    ));
}

#[test]
fn rejection_texts_are_distinct() {
    let all = [
        RomRejection::OutOfBounds {
            part: RomPart::PciHeader,
            offset: 0x7F0,
            size: 24,
            len: 0x800,
        },
        RomRejection::NotOptionRom { found: 0 },
        RomRejection::NotVmi { found: 0 },
        RomRejection::VersionMismatch { major: 2, minor: 0 },
        RomRejection::NoPciHeader,
        RomRejection::Unterminated {
            part: RomPart::License,
            offset: 0x7FD,
        },
        RomRejection::NonGplLicense {
            license: Some(b"BSD"),
        },
    ];
    let summaries: std::collections::HashSet<_> = all.iter().map(|r| r.describe()).collect();
    assert_eq!(summaries.len(), all.len());
    assert!(all[0].to_string().contains("PCI data structure"));
    assert!(all[0].to_string().contains("0x7f0"));
    assert!(all[5].to_string().contains("license string"));
    assert!(RomRejection::NonGplLicense {
        license: Some(b"B\x01D")
    }
    .to_string()
    .contains("B\\x01D"));
    assert!(RomRejection::NonGplLicense { license: None }
        .to_string()
        .contains("no license"));
}

#[test]
fn probing_finds_the_first_acceptable_rom() {
    let area_base = VMI_PROBE_START;
    let mut area = vec![0xFFu8; (VMI_PROBE_END - VMI_PROBE_START) as usize];
    // A VGA-like option ROM at 0xC0000 (not VMI), a BSD VMI ROM at 0xC8000, ours at 0xCA800.
    area[0..2].copy_from_slice(&[0x55, 0xAA]);
    area[2] = 64;
    let bsd = image_from(&RomSpec {
        license: Some(b"BSD"),
        ..spec()
    });
    area[0x8000..0x8000 + LEN].copy_from_slice(&bsd);
    let good = good_image();
    area[0xA800..0xA800 + LEN].copy_from_slice(&good);

    let mut rejected = Vec::new();
    let (addr, info) = probe_rom_area_reporting(&area, area_base, |addr, why| {
        if !why.is_silent() {
            rejected.push((addr, *why));
        }
    })
    .unwrap();
    assert_eq!(addr, 0xCA800);
    assert_eq!(info.license, b"GPL v2");
    assert_eq!(
        rejected,
        [(
            0xC8000,
            RomRejection::NonGplLicense {
                license: Some(b"BSD")
            }
        )]
    );

    // An area that starts mid-range only sees its own probe addresses.
    let (addr, _) = probe_rom_area(&area[0xA000..], area_base + 0xA000).unwrap();
    assert_eq!(addr, 0xCA800);
    // Nothing there.
    assert!(probe_rom_area(&area[..0x8000], area_base).is_none());
    assert!(probe_rom_area(&[], area_base).is_none());
    assert!(
        probe_rom_area(&good, 0x1000).is_none(),
        "outside the probe range"
    );
}

#[test]
fn checksum_helpers() {
    let mut image = good_image();
    assert_eq!(declared_rom_size(&image), Ok(LEN));
    image[0x300] ^= 0x11;
    let sum = byte_sum(&image);
    assert_ne!(sum, 0);
    assert_eq!(
        verify_checksum(&image),
        Err(ChecksumError::Mismatch { sum })
    );
    let value = fix_checksum_at(&mut image, 0x1FF).unwrap();
    assert_eq!(image[0x1FF], value);
    assert_eq!(verify_checksum(&image), Ok(()));
    // Bytes past the declared length do not count.
    image.push(0x42);
    assert_eq!(verify_checksum(&image), Ok(()));

    assert_eq!(
        verify_checksum(&image[..2]),
        Err(ChecksumError::NoLengthByte)
    );
    assert_eq!(
        verify_checksum(&image[..LEN - 1]),
        Err(ChecksumError::Truncated {
            declared: LEN,
            len: LEN - 1
        })
    );
    assert_eq!(
        fix_checksum_at(&mut image, LEN),
        Err(ChecksumError::IndexOutsideRom {
            index: LEN,
            declared: LEN
        })
    );
    let mut zero = vec![0x55, 0xAA, 0, 0];
    assert_eq!(fix_checksum(&mut zero), Err(ChecksumError::ZeroLength));
}

#[test]
fn builder_refuses_what_it_cannot_place() {
    let base = spec();
    assert_eq!(
        build_header(&RomSpec {
            rom_blocks: 0,
            ..base
        }),
        Err(BuildError::ZeroLength)
    );
    assert_eq!(
        build_header(&RomSpec {
            license: Some(b"GPL v2+"),
            ..base
        })
        .map(|_| ()),
        Ok(()),
        "7 bytes fit"
    );
    assert_eq!(
        build_header(&RomSpec {
            license: Some(b"Dual BSD"),
            ..base
        }),
        Err(BuildError::LicenseTooLong { len: 8 })
    );
    assert_eq!(
        build_header(&RomSpec {
            manufacturer: Some(&[b'm'; 20]),
            product: Some(&[b'p'; 11]),
            ..base
        }),
        Err(BuildError::StringsTooLong { needed: 33 })
    );
    assert!(build_header(&RomSpec {
        manufacturer: Some(&[b'm'; 20]),
        product: Some(&[b'p'; 10]),
        ..base
    })
    .is_ok());
    assert_eq!(
        build_header(&RomSpec {
            product: Some(b"a\0b"),
            ..base
        }),
        Err(BuildError::EmbeddedNul(RomPart::Product))
    );
    assert_eq!(
        build_header(&RomSpec {
            license: Some(b"GPL\0"),
            ..base
        }),
        Err(BuildError::EmbeddedNul(RomPart::License))
    );
    let mut small = vec![0u8; LEN - 1];
    assert_eq!(
        write_rom_header(&mut small, &base),
        Err(BuildError::ImageTooSmall {
            needed: LEN,
            len: LEN - 1
        })
    );
    assert!(small.iter().all(|&b| b == 0), "nothing written on error");
}

/// A header offset: the builder's own value, 0, near the image, or anything.
fn offset(real: u16) -> impl Strategy<Value = u16> {
    prop_oneof![6 => Just(real), 1 => Just(0u16), 1 => 0u16..(LEN as u16 + 64), 1 => any::<u16>()]
}

proptest! {
    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..1200)) {
        let _ = check_rom(&bytes);
        let _ = probe_rom_area(&bytes, VMI_PROBE_START);
    }

    #[test]
    fn random_headers_never_read_outside(
        (license, pci, pnp) in (offset(0x38), offset(0x20), offset(0x40)),
        (manufacturer, product) in (offset(0x60), offset(0x6C)),
        major in prop_oneof![4 => Just(3u8), 1 => any::<u8>()],
        len in prop_oneof![3 => Just(LEN), 1 => 0usize..=LEN],
        noise in proptest::option::of(proptest::collection::vec(any::<u8>(), LEN)),
    ) {
        // A valid start with hostile offsets and random contents, cut at a random length.
        let mut image = good_image();
        for (i, b) in noise.iter().flatten().enumerate().skip(0x20) {
            if i % 3 == 0 { image[i] = *b; }
        }
        put_u16(&mut image, 0x16, license);
        put_u16(&mut image, 0x18, pci);
        put_u16(&mut image, 0x1A, pnp);
        image[0x0D] = major;
        if usize::from(pnp) + 18 <= LEN {
            put_u16(&mut image, usize::from(pnp) + 14, manufacturer);
            put_u16(&mut image, usize::from(pnp) + 16, product);
        }
        let image = &image[..len];
        match check_rom(image) {
            Ok(info) => {
                prop_assert_eq!(info.api_version().0, 3);
                prop_assert!(pci != 0 && usize::from(pci) + 24 <= len);
                prop_assert!(info.license == b"GPL" || info.license == b"GPL v2");
                let at = usize::from(license);
                let expected = [info.license, b"\0"].concat();
                prop_assert_eq!(&image[at..at + info.license.len() + 1], expected.as_slice());
                prop_assert_eq!(info.warning.is_some(), info.pci_ids() != (0x15AD, 0x0801));
            }
            Err(why) => {
                prop_assert!(!why.describe().is_empty());
                prop_assert!(!why.to_string().is_empty());
                if let RomRejection::OutOfBounds { offset, size, len: l, .. } = why {
                    prop_assert_eq!(l, len);
                    prop_assert!(offset + size > len);
                }
            }
        }
    }
}
