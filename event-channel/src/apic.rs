//! A minimal virtual local APIC: which vectors are requested, which are in service, and which
//! one the vCPU may take next.
//!
//! The model is the local APIC's, as in the Intel SDM vol. 3 ("Interrupt, Task, and Processor
//! Priority", "Interrupt Acceptance for Fixed Interrupts", "Signaling Interrupt Servicing
//! Completion"), reduced to fixed interrupts:
//!
//! - `IRR` (requested) and `ISR` (in service) hold one bit per vector. Requesting a vector
//!   that is already requested changes nothing (its bit is a bit).
//! - The priority class of a vector is bits 7:4. The processor priority is `TPR` if
//!   `TPR[7:4] >= ISRV[7:4]`, else `ISRV[7:4] << 4`, where `ISRV` is the highest vector in
//!   service (0 if none).
//! - The highest requested vector is deliverable iff its class is above the processor
//!   priority's class. So a vector is never entered again while it is in service, and
//!   nothing of an equal or lower class is entered until that in-service vector's EOI.
//! - Acknowledging moves the vector from `IRR` to `ISR`; the same vector may then be
//!   requested again and waits in `IRR`.
//! - EOI clears the highest in-service vector (local APIC EOI register). A specific EOI of
//!   one vector (8259 `OCW2` with SL set, as Linux's i8259 code sends) is offered too.
//!
//! The ROM routes 8259 IRQ lines through the same model. That is stricter than an 8259 in
//! fully nested mode only in one respect: with the usual base 0x20 all 16 lines share class
//! 2, so IRQ 0 does not pre-empt an in-service IRQ 4 before its EOI. Linux runs those
//! handlers with interrupts disabled, so it never sees the difference.

use crate::port::Vector;

const VECTOR_WORDS: usize = 8;

/// 256 bits, one per vector, with a summary byte (bit `w` set iff word `w` is not zero): the
/// highest set bit is two leading-zero counts away, which every delivery decision asks for.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
struct VectorBits {
    words: [u32; VECTOR_WORDS],
    nonzero_words: u8,
}

const _: () = assert!(VECTOR_WORDS == 8, "the summary is one bit per word");

impl VectorBits {
    const EMPTY: VectorBits = VectorBits {
        words: [0; VECTOR_WORDS],
        nonzero_words: 0,
    };

    #[inline]
    fn highest(&self) -> Option<Vector> {
        if self.nonzero_words == 0 {
            return None;
        }
        let word = 7 - self.nonzero_words.leading_zeros();
        let vector = word * 32 + 31 - self.words[word as usize].leading_zeros();
        Vector::new(vector).ok()
    }

    fn test(&self, vector: Vector) -> bool {
        let vector = usize::from(vector.get());
        self.words[vector / 32] & (1 << (vector % 32)) != 0
    }

    fn set(&mut self, vector: Vector) {
        let vector = usize::from(vector.get());
        self.words[vector / 32] |= 1 << (vector % 32);
        self.nonzero_words |= 1 << (vector / 32);
    }

    fn clear(&mut self, vector: Vector) -> bool {
        let was_set = self.test(vector);
        let vector = usize::from(vector.get());
        let word = &mut self.words[vector / 32];
        *word &= !(1 << (vector % 32));
        if *word == 0 {
            self.nonzero_words &= !(1 << (vector / 32));
        }
        was_set
    }
}

/// `IRR`, `ISR` and `TPR` of one vCPU.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct VirtualApic {
    requested: VectorBits,
    in_service: VectorBits,
    task_priority: u8,
}

impl VirtualApic {
    /// Nothing requested or in service, task priority 0.
    pub const fn new() -> VirtualApic {
        VirtualApic {
            requested: VectorBits::EMPTY,
            in_service: VectorBits::EMPTY,
            task_priority: 0,
        }
    }

    /// Sets `vector`'s `IRR` bit.
    #[inline]
    pub fn request(&mut self, vector: Vector) {
        self.requested.set(vector);
    }

    /// Whether `vector` is requested (`IRR`).
    #[inline]
    pub fn is_requested(&self, vector: Vector) -> bool {
        self.requested.test(vector)
    }

    /// Whether `vector` is in service (`ISR`).
    #[inline]
    pub fn is_in_service(&self, vector: Vector) -> bool {
        self.in_service.test(vector)
    }

    /// The highest requested vector.
    #[inline]
    pub fn highest_requested(&self) -> Option<Vector> {
        self.requested.highest()
    }

    /// The highest vector in service.
    #[inline]
    pub fn highest_in_service(&self) -> Option<Vector> {
        self.in_service.highest()
    }

    /// The task priority register.
    #[inline]
    pub fn task_priority(&self) -> u8 {
        self.task_priority
    }

    /// Writes the task priority register (only bits 7:4 matter for delivery).
    #[inline]
    pub fn set_task_priority(&mut self, task_priority: u8) {
        self.task_priority = task_priority;
    }

    /// The processor priority: `TPR` or the class of the highest in-service vector,
    /// whichever is higher.
    #[inline]
    pub fn processor_priority(&self) -> u8 {
        let in_service = self.highest_in_service().map_or(0, Vector::get);
        if self.task_priority & 0xF0 >= in_service & 0xF0 {
            self.task_priority
        } else {
            in_service & 0xF0
        }
    }

    /// The vector the vCPU would take now, if any.
    pub fn deliverable(&self) -> Option<Vector> {
        let vector = self.highest_requested()?;
        (vector.priority_class() > self.processor_priority() >> 4).then_some(vector)
    }

    /// Takes the deliverable vector: moves it from `IRR` to `ISR` and returns it.
    pub fn acknowledge(&mut self) -> Option<Vector> {
        let vector = self.deliverable()?;
        self.requested.clear(vector);
        self.in_service.set(vector);
        Some(vector)
    }

    /// Puts `vector` in service, as requesting and acknowledging it does when nothing else is
    /// requested and its class is above the processor priority's (the caller has checked).
    #[inline]
    pub(crate) fn enter_in_service(&mut self, vector: Vector) {
        debug_assert!(
            self.requested.nonzero_words == 0
                && vector.priority_class() > self.processor_priority() >> 4
        );
        self.in_service.set(vector);
    }

    /// Non-specific EOI: clears the highest in-service vector and returns it (None when
    /// nothing is in service; the write is then ignored, as by the local APIC).
    pub fn end_of_interrupt(&mut self) -> Option<Vector> {
        let vector = self.highest_in_service()?;
        self.in_service.clear(vector);
        Some(vector)
    }

    /// Specific EOI: clears `vector`'s in-service bit; returns whether it was set.
    #[inline]
    pub fn end_of_interrupt_vector(&mut self, vector: Vector) -> bool {
        self.in_service.clear(vector)
    }

    /// Withdraws a request that has not been taken yet; returns whether it was requested.
    #[inline]
    pub fn cancel(&mut self, vector: Vector) -> bool {
        self.requested.clear(vector)
    }

    /// The requested vectors in the order they would be taken if each were EOIed before the
    /// next: highest vector first.
    pub fn requested_in_delivery_order(&self) -> impl Iterator<Item = Vector> + '_ {
        (0..=u8::MAX)
            .rev()
            .filter_map(|raw| Vector::new(u32::from(raw)).ok())
            .filter(|&vector| self.is_requested(vector))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(raw: u32) -> Vector {
        Vector::new(raw).unwrap()
    }

    #[test]
    fn highest_class_goes_first_and_blocks_lower_ones_until_eoi() {
        let mut apic = VirtualApic::new();
        apic.request(v(0x31));
        apic.request(v(0xEF));
        apic.request(v(0x20));
        assert_eq!(
            apic.requested_in_delivery_order().collect::<Vec<_>>(),
            [v(0xEF), v(0x31), v(0x20)]
        );
        assert_eq!(apic.acknowledge(), Some(v(0xEF)));
        assert_eq!(apic.processor_priority(), 0xE0);
        assert_eq!(apic.acknowledge(), None, "0x31 waits for the EOI of 0xEF");
        assert_eq!(apic.end_of_interrupt(), Some(v(0xEF)));
        assert_eq!(apic.acknowledge(), Some(v(0x31)));
        assert_eq!(apic.deliverable(), None, "0x20 is a lower class than 0x31");
        assert_eq!(apic.end_of_interrupt(), Some(v(0x31)));
        assert_eq!(apic.acknowledge(), Some(v(0x20)));
        assert_eq!(apic.end_of_interrupt(), Some(v(0x20)));
        assert_eq!(apic.end_of_interrupt(), None);
    }

    #[test]
    fn higher_class_preempts_an_in_service_vector() {
        let mut apic = VirtualApic::new();
        apic.request(v(0x41));
        assert_eq!(apic.acknowledge(), Some(v(0x41)));
        apic.request(v(0x4F));
        assert_eq!(apic.deliverable(), None, "same class does not nest");
        apic.request(v(0x50));
        assert_eq!(apic.acknowledge(), Some(v(0x50)), "a higher class nests");
        // Non-specific EOI ends the highest in-service vector first.
        assert_eq!(apic.end_of_interrupt(), Some(v(0x50)));
        assert!(apic.is_in_service(v(0x41)));
        assert_eq!(apic.deliverable(), None);
        assert_eq!(apic.end_of_interrupt(), Some(v(0x41)));
        assert_eq!(apic.acknowledge(), Some(v(0x4F)));
    }

    #[test]
    fn same_vector_is_not_reentered_before_eoi() {
        let mut apic = VirtualApic::new();
        apic.request(v(0x20));
        assert_eq!(apic.acknowledge(), Some(v(0x20)));
        apic.request(v(0x20));
        apic.request(v(0x20));
        assert!(apic.is_requested(v(0x20)) && apic.is_in_service(v(0x20)));
        assert_eq!(apic.acknowledge(), None);
        assert!(apic.end_of_interrupt_vector(v(0x20)));
        assert!(!apic.end_of_interrupt_vector(v(0x20)));
        // The two requests made while in service coalesced into one.
        assert_eq!(apic.acknowledge(), Some(v(0x20)));
        assert_eq!(apic.end_of_interrupt(), Some(v(0x20)));
        assert_eq!(apic.acknowledge(), None);
    }

    #[test]
    fn task_priority_masks_classes_at_or_below_it() {
        let mut apic = VirtualApic::new();
        apic.set_task_priority(0x35);
        apic.request(v(0x3F));
        assert_eq!(apic.processor_priority(), 0x35);
        assert_eq!(apic.deliverable(), None);
        apic.request(v(0x40));
        assert_eq!(apic.acknowledge(), Some(v(0x40)));
        // TPR above the in-service class wins; below, the in-service class does.
        assert_eq!(apic.processor_priority(), 0x40);
        apic.set_task_priority(0x50);
        assert_eq!(apic.processor_priority(), 0x50);
        apic.set_task_priority(0);
        assert_eq!(apic.end_of_interrupt(), Some(v(0x40)));
        assert_eq!(apic.acknowledge(), Some(v(0x3F)));
        assert!(!apic.cancel(v(0x3F)), "0x3F was taken, not requested");
        apic.request(v(0x99));
        assert!(apic.cancel(v(0x99)));
        assert_eq!(apic.highest_requested(), None);
    }
}
