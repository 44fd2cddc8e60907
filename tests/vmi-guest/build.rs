//! Links the guest's packagings with their linker scripts (only for the
//! i686 images; a host build of this crate is an empty stub and links
//! nothing).
fn main() {
    let dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let dir = std::path::Path::new(&dir);
    for (bin, script) in [
        ("vmi-guest", "guest.ld"),
        ("vmi-guest-bzimage", "guest-bzimage.ld"),
    ] {
        let script = dir.join(script);
        println!("cargo:rerun-if-changed={}", script.display());
        if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("none") {
            println!("cargo:rustc-link-arg-bin={bin}=-T{}", script.display());
        }
    }
}
