//! Links the two i686 images with their linker scripts, and hands the
//! loader the ROM binary to carry (built first by tools/build-images).
use std::path::{Path, PathBuf};

fn main() {
    let dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let loader_ld = dir.join("../linker.ld");
    let rom_ld = dir.join("rom.ld");
    for p in [&loader_ld, &rom_ld] {
        println!("cargo:rerun-if-changed={}", p.display());
    }
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("none") {
        println!(
            "cargo:rustc-link-arg-bin=xen-vmi-rom=-T{}",
            loader_ld.display()
        );
        println!("cargo:rustc-link-arg-bin=vmi-rom=-T{}", rom_ld.display());
    }
    // The ROM image the loader embeds: tools/build-images sets
    // XEN_VMI_ROM_BIN after building and finalising it. Without it (a lint
    // run, a host build) the loader gets an empty ROM and says so at boot.
    println!("cargo:rerun-if-env-changed=XEN_VMI_ROM_BIN");
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("set by cargo"));
    let rom = match std::env::var("XEN_VMI_ROM_BIN") {
        Ok(p) if Path::new(&p).is_file() => {
            println!("cargo:rerun-if-changed={p}");
            PathBuf::from(p)
        }
        _ => {
            let empty = out.join("no-rom.bin");
            std::fs::write(&empty, []).expect("write OUT_DIR");
            empty
        }
    };
    println!("cargo:rustc-env=VMI_ROM_BIN={}", rom.display());
}
