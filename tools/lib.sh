# Shared by the tools/ scripts: project root, toolchain environments.
# shellcheck shell=bash

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# rustup's cargo lives in ~/.cargo/bin; a non-login root shell (CI) may not
# have it on PATH.
if [[ -n "${HOME:-}" && -d "$HOME/.cargo/bin" && ":$PATH:" != *":$HOME/.cargo/bin:"* ]]; then
    PATH="$HOME/.cargo/bin:$PATH"
fi
export PATH

# Run a cargo command with the pinned i686 toolchain (Debian's rustc-web: it
# carries the std sources that -Zbuild-std needs; rustup's toolchains here
# have none). A separate target dir keeps its artifacts apart from the host's.
# I686_TARGET_DIR overrides the target dir (the ROM's core is built with a
# different panic strategy, so it needs its own).
i686_cargo() {
    local sub="$1"; shift
    env PATH="/usr/bin:$PATH" RUSTC=/usr/bin/rustc RUSTC_BOOTSTRAP=1 \
        CARGO_TARGET_DIR="${I686_TARGET_DIR:-$ROOT/target/i686}" \
        /usr/bin/cargo "$sub" --release --target "$ROOT/i686-rom.json" -Zjson-target-spec \
        -Zbuild-std=core,compiler_builtins -Zbuild-std-features=compiler-builtins-mem "$@"
}

# The i686 crates, and where their images land in out/.
I686_PACKAGES=(xen-vmi-rom vmi-guest native-rom)
I686_OUT="$ROOT/target/i686/i686-rom/release"
