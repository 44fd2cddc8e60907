//! VMI_Init, GetRelocationInfo and the call handlers.
//!
//! Calling convention (vmi.h, vmi_32.c): the kernel is built with
//! `-mregparm=3`, so arguments come in EAX, EDX, ECX, then on the stack;
//! results in EAX (EDX:EAX for 64 bits); EAX, EDX, ECX and flags may be
//! clobbered. Rust has no regparm, so each entry is a small assembly thunk
//! around an `extern "C"` function.

/// VMI_Init (ROM+0x80): `u32 (*)(void)` with regparm; 0 means the kernel
/// may use the ROM. The ROM is set up by the loader before the kernel runs,
/// so there is nothing left to do but say yes, and count the call: a kernel
/// that never makes it never activated VMI (reported when the domain ends,
/// xen.rs `crash`, emulate.rs `hlt`).
pub extern "C" fn vmi_init() -> u32 {
    let st = crate::runtime::rom_state();
    st.vmi_init_calls = st.vmi_init_calls.saturating_add(1);
    0
}

// GetRelocationInfo (ROM+0x88): `u64 (*)(int) regparm(2)`: the call number
// in EAX, the 8-byte vmi_relocation_info back in EDX:EAX.
core::arch::global_asm!(
    r#"
    .pushsection .text.vmi_get_reloc, "ax"
    .globl vmi_get_relocation_info_entry
vmi_get_relocation_info_entry:
    push eax
    call {imp}
    add esp, 4
    ret
    .popsection
    "#,
    imp = sym get_relocation_info,
);

extern "C" {
    /// The regparm entry above.
    pub fn vmi_get_relocation_info_entry();
}

/// Re-exported for the header's jump point.
pub use vmi_get_relocation_info_entry as get_relocation_info_entry;

/// What the ROM answers for `call`: where to call it (an address in the
/// mapping the kernel called GetRelocationInfo through) and how.
#[cfg_attr(feature = "image", optimize(size))]
extern "C" fn get_relocation_info(call: u32) -> u64 {
    crate::entry::relocation(call).to_u64()
}
