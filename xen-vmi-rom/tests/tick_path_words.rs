//! The event words as the timer tick's one-step path (the assembly of
//! `vmi_event_tick_entry`, src/bin/rom/events.rs) takes them, step by step,
//! against what `event_channel::VcpuEvents::take_lone_rom_port` (the
//! reference, itself tested against the general upcall) does with them.
//!
//! The assembly cannot run on the host; this is its word-level logic
//! transcribed instruction by instruction, for every state of the selector,
//! word 0's pending and mask bits and the port's place in word 0: taken
//! exactly when the reference takes it, and the words left as the reference
//! leaves them (on a refusal: as they were, `upcall_pending` set as Xen left
//! it for the upcall).

use proptest::prelude::*;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Words {
    upcall_pending: bool,
    selector: u32,
    pending0: u32,
    mask0: u32,
}

/// `take_lone_rom_port`'s effect on the words for a port in word 0 whose
/// vector the APIC takes at once (the armed word holds that condition).
fn reference(mut w: Words, port_bit: u32) -> (bool, Words) {
    if w.selector != 1 || w.pending0 & !w.mask0 != port_bit {
        return (false, w);
    }
    w.upcall_pending = false;
    w.selector = 0;
    w.pending0 &= !port_bit;
    (true, w)
}

/// The assembly from `mov byte ptr ss:[{upcall_pending}], 0` on, with EAX
/// zero there (the armed checks passed).
fn assembly(mut w: Words, port_bit: u32) -> (bool, Words) {
    w.upcall_pending = false;
    // xchg ss:[selector], eax
    let mut eax = core::mem::replace(&mut w.selector, 0);
    // dec eax; jnz 8f
    eax = eax.wrapping_sub(1);
    if eax != 0 {
        // 8: inc eax; 6: lock or ss:[selector], eax; mov upcall_pending, 1
        eax = eax.wrapping_add(1);
        w.selector |= eax;
        w.upcall_pending = true;
        return (false, w);
    }
    // xchg ss:[pending_word], eax (EAX zero)
    eax = core::mem::replace(&mut w.pending0, eax);
    // cmp eax, port_bit; jne 4f
    if eax != port_bit {
        // 4: alone if the others are masked
        let others = !w.mask0 & eax;
        if others == port_bit {
            // xor eax, port_bit; lock or ss:[pending_word], eax; jmp 3b
            w.pending0 |= eax ^ port_bit;
        } else {
            // 5: lock or ss:[pending_word], eax; mov eax, 1; 6: ...
            w.pending0 |= eax;
            w.selector |= 1;
            w.upcall_pending = true;
            return (false, w);
        }
    }
    // 3: taken
    (true, w)
}

proptest! {
    #[test]
    fn the_tick_path_takes_the_words_as_the_reference_does(
        selector in prop_oneof![Just(1u32), Just(0u32), Just(3u32), any::<u32>()],
        pending0 in any::<u32>(),
        mask0 in any::<u32>(),
        port in 0u32..32,
        lone in any::<bool>(),
        masked_only in any::<bool>(),
    ) {
        let port_bit = 1u32 << port;
        // The armed word says the port is unmasked; bias towards the cases
        // the path takes (the port alone, or beside masked ports only).
        let mask0 = mask0 & !port_bit;
        let pending0 = if lone {
            port_bit | if masked_only { pending0 & mask0 } else { 0 }
        } else {
            pending0
        };
        let before = Words { upcall_pending: true, selector, pending0, mask0 };
        prop_assert_eq!(assembly(before, port_bit), reference(before, port_bit));
    }
}
