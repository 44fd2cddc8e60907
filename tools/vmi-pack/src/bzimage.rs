//! A bzImage from a kernel ELF's segments (Documentation/x86/boot.txt: the
//! real-mode setup, `setup_sects` sectors after the boot sector, then the
//! protected-mode code).

use xen_vmi_rom::kernel_image::Segment;
use xen_vmi_rom::linux_boot::{self, offset, LOAD_HIGH_ADDRESS};

/// Builds the bzImage. `segments` are the ELF's loadable segments: one
/// below 1 MiB (the setup, at 0), the rest from `code32_start` up.
pub fn build(elf: &[u8], segments: &[Segment]) -> Result<Vec<u8>, String> {
    let (low, high): (Vec<&Segment>, Vec<&Segment>) =
        segments.iter().partition(|s| s.phys < LOAD_HIGH_ADDRESS);
    let [setup_seg] = low[..] else {
        return Err(format!(
            "{} segments below 1 MiB: want exactly one, the real-mode setup at 0",
            low.len()
        ));
    };
    if setup_seg.phys != 0 {
        return Err(format!(
            "the setup segment is at {:#x}, not 0",
            setup_seg.phys
        ));
    }
    let file = |s: &Segment| &elf[s.file_offset as usize..(s.file_offset + s.file_len) as usize];
    let mut setup = file(setup_seg).to_vec();
    if !linux_boot::has_setup_header(&setup) {
        return Err("the setup segment has no setup header (\"HdrS\" at 0x202)".into());
    }
    // The boot sector plus at least one setup sector, whole sectors.
    setup.resize(setup.len().max(1024).next_multiple_of(512), 0);
    let sects = setup.len() / 512 - 1;
    if sects > 0xFF {
        return Err(format!(
            "a setup of {} sectors does not fit setup_sects",
            sects
        ));
    }
    let code32_start = u32::from_le_bytes(
        setup[offset::CODE32_START..][..4]
            .try_into()
            .expect("4 bytes"),
    );
    let Some(start) = high.iter().map(|s| s.phys).min() else {
        return Err("no segment from 1 MiB up: nothing for the protected-mode part".into());
    };
    if start != code32_start {
        return Err(format!(
            "the protected-mode code starts at {start:#x} but code32_start says {code32_start:#x}"
        ));
    }
    // Flat from `start` to the end of the last file bytes; a segment's
    // memory past its file bytes (bss) is the kernel's to clear.
    let file_end = high
        .iter()
        .map(|s| s.phys + s.file_len)
        .max()
        .unwrap_or(start);
    let mem_end = high
        .iter()
        .filter_map(|s| s.phys_end())
        .max()
        .unwrap_or(start);
    let mut payload = vec![0u8; (file_end - start) as usize];
    for s in &high {
        let at = (s.phys - start) as usize;
        payload[at..at + s.file_len as usize].copy_from_slice(file(s));
    }
    setup[offset::SETUP_SECTS] = sects as u8;
    let put = |setup: &mut Vec<u8>, at: usize, v: u32| {
        setup[at..at + 4].copy_from_slice(&v.to_le_bytes())
    };
    put(
        &mut setup,
        offset::SYSSIZE,
        (payload.len() as u32).div_ceil(16),
    );
    let version = u16::from_le_bytes([setup[offset::VERSION], setup[offset::VERSION + 1]]);
    if version >= 0x020A {
        put(
            &mut setup,
            offset::INIT_SIZE,
            (mem_end - start).next_multiple_of(4096),
        );
    }
    setup.extend_from_slice(&payload);
    Ok(setup)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup_bytes(version: u16) -> Vec<u8> {
        let mut s = vec![0u8; 0x300];
        s[offset::HEADER..offset::HEADER + 4].copy_from_slice(b"HdrS");
        s[offset::VERSION..offset::VERSION + 2].copy_from_slice(&version.to_le_bytes());
        s[offset::LOADFLAGS] = linux_boot::LOADED_HIGH;
        s[offset::CODE32_START..offset::CODE32_START + 4]
            .copy_from_slice(&0x10_0000u32.to_le_bytes());
        s
    }

    fn elf_and_segments(version: u16) -> (Vec<u8>, Vec<Segment>) {
        let mut elf = vec![0u8; 0x4000];
        elf[0x1000..0x1300].copy_from_slice(&setup_bytes(version));
        for (i, b) in elf[0x2000..0x3800].iter_mut().enumerate() {
            *b = i as u8 | 1;
        }
        let segs = vec![
            Segment {
                file_offset: 0x1000,
                file_len: 0x300,
                phys: 0,
                mem_len: 0x300,
            },
            Segment {
                file_offset: 0x2000,
                file_len: 0x1000,
                phys: 0x10_0000,
                mem_len: 0x1000,
            },
            // A second segment after a gap, with bss.
            Segment {
                file_offset: 0x3000,
                file_len: 0x800,
                phys: 0x10_2000,
                mem_len: 0x5000,
            },
        ];
        (elf, segs)
    }

    #[test]
    fn the_loader_reads_back_what_was_built() {
        let (elf, segs) = elf_and_segments(0x020A);
        let bz = build(&elf, &segs).unwrap();
        let h = linux_boot::SetupHeader::parse(&bz).unwrap();
        assert_eq!(h.setup_len, 1024);
        assert_eq!(h.payload_len, 0x2800);
        assert_eq!(h.code32_start, 0x10_0000);
        assert_eq!(h.init_size, 0x7000);
        // The payload is the segments at their offsets from 1 MiB, the gap
        // zero.
        assert_eq!(&bz[1024..1024 + 0x1000], &elf[0x2000..0x3000]);
        assert!(bz[1024 + 0x1000..1024 + 0x2000].iter().all(|&b| b == 0));
        assert_eq!(&bz[1024 + 0x2000..], &elf[0x3000..0x3800]);
        let k = xen_vmi_rom::kernel_image::parse(&bz).unwrap();
        assert_eq!(k.memory_end(), 0x10_7000);
    }

    #[test]
    fn what_cannot_become_a_bzimage_is_named() {
        let (elf, segs) = elf_and_segments(0x020A);
        assert!(build(&elf, &segs[1..]).unwrap_err().contains("exactly one"));
        let mut no_header = elf.clone();
        no_header[0x1202] = b'X';
        assert!(build(&no_header, &segs)
            .unwrap_err()
            .contains("no setup header"));
        let mut moved = segs.clone();
        moved[1].phys = 0x20_0000;
        moved[2].phys = 0x20_2000;
        assert!(build(&elf, &moved).unwrap_err().contains("code32_start"));
        assert!(build(&elf, &segs[..1])
            .unwrap_err()
            .contains("nothing for the protected-mode part"));
    }

    #[test]
    fn before_2_10_there_is_no_init_size() {
        let (elf, segs) = elf_and_segments(0x0206);
        let bz = build(&elf, &segs).unwrap();
        assert!(bz[offset::INIT_SIZE..offset::INIT_SIZE + 4]
            .iter()
            .all(|&b| b == 0));
    }
}
