//! The producer side of a domU's console ring (`io/console.h`): how the PV
//! loader and the ROM write their console when they are not dom0.
//!
//! A non-debug Xen drops a domU's `CONSOLEIO_write` (XSM's default policy
//! allows it only to the hardware domain), so a domU's console is the page
//! `start_info.console.domU.mfn`: the guest puts bytes in `out[]` (offset
//! 1024, 2048 bytes) at free-running index `out_prod`, publishes the index
//! after the bytes, and signals `start_info.console.domU.evtchn`;
//! xenconsoled copies from `out_cons` and advances it. Indices are `u32`s
//! that wrap; a slot is `index & 2047`.
//!
//! The logic here is pure (host-tested against a model backend); the images
//! supply the page ([`MappedRing`]) and the hypercalls ([`Backend`]).

use core::sync::atomic::{fence, Ordering};

use xen_abi::console::{mask_xencons_idx, XenconsInterface, XENCONS_OUT_RING_SIZE};

/// Access to the indices and the `out` bytes of one console page.
pub trait RingPage {
    /// `out_cons`, as the backend last published it.
    fn out_cons(&self) -> u32;
    /// `out_prod` (only this guest writes it).
    fn out_prod(&self) -> u32;
    fn set_out_prod(&mut self, prod: u32);
    /// `out[slot]`, `slot < 2048`.
    fn set_out_byte(&mut self, slot: usize, byte: u8);
}

/// What the writer asks of the outside world.
pub trait Backend {
    /// Tells the backend there is output (EVTCHNOP_send on the console's
    /// event channel).
    fn notify(&mut self);
    /// Lets the backend run while the ring is full (SCHEDOP_yield); the
    /// `attempt`th wait in a row without progress. False: give up.
    fn wait(&mut self, attempt: u32) -> bool;
}

/// Why bytes did not reach the ring.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RingError {
    /// `out_prod - out_cons` is more than a ring: the page is not a console
    /// ring the guest and the backend agree on. Nothing was written.
    Inconsistent { cons: u32, prod: u32 },
    /// The backend made no room for too long: this many bytes were dropped
    /// (or, from [`drain`], are still unread).
    Stalled { unwritten: usize },
}

/// Free bytes in `out` with these indices, None when they are inconsistent.
pub const fn out_space(cons: u32, prod: u32) -> Option<u32> {
    let used = prod.wrapping_sub(cons);
    if used > XENCONS_OUT_RING_SIZE {
        None
    } else {
        Some(XENCONS_OUT_RING_SIZE - used)
    }
}

/// Writes all of `bytes`, waiting for room when the ring is full, and
/// notifies the backend once the last byte is published.
pub fn write(
    page: &mut impl RingPage,
    backend: &mut impl Backend,
    bytes: &[u8],
) -> Result<(), RingError> {
    let mut rest = bytes;
    let mut attempt = 0;
    while !rest.is_empty() {
        let prod = page.out_prod();
        let cons = page.out_cons();
        // The slots `cons` frees may be reused only after it was read.
        fence(Ordering::Acquire);
        let space = out_space(cons, prod).ok_or(RingError::Inconsistent { cons, prod })?;
        if space == 0 {
            backend.notify();
            if !backend.wait(attempt) {
                return Err(RingError::Stalled {
                    unwritten: rest.len(),
                });
            }
            attempt += 1;
            continue;
        }
        let n = rest.len().min(space as usize);
        for (i, &b) in rest[..n].iter().enumerate() {
            page.set_out_byte(
                mask_xencons_idx(prod.wrapping_add(i as u32), XENCONS_OUT_RING_SIZE),
                b,
            );
        }
        // The bytes must be visible before the index that hands them over.
        fence(Ordering::Release);
        page.set_out_prod(prod.wrapping_add(n as u32));
        rest = &rest[n..];
        attempt = 0;
    }
    backend.notify();
    Ok(())
}

/// Waits until the backend has read everything (before the domain shuts
/// down or crashes, so that its last lines are not lost with it).
#[cfg_attr(feature = "image", optimize(size))]
pub fn drain(page: &mut impl RingPage, backend: &mut impl Backend) -> Result<(), RingError> {
    let mut attempt = 0;
    let mut last = None;
    loop {
        let prod = page.out_prod();
        let cons = page.out_cons();
        if out_space(cons, prod).is_none() {
            return Err(RingError::Inconsistent { cons, prod });
        }
        if cons == prod {
            return Ok(());
        }
        if last != Some(cons) {
            last = Some(cons);
            attempt = 0;
        }
        backend.notify();
        if !backend.wait(attempt) {
            return Err(RingError::Stalled {
                unwritten: prod.wrapping_sub(cons) as usize,
            });
        }
        attempt += 1;
    }
}

/// A console page mapped in the guest's address space.
#[derive(Debug)]
pub struct MappedRing {
    page: *mut XenconsInterface,
}

impl MappedRing {
    /// # Safety
    /// `va` must be the address of the mapped, writable console page
    /// (`start_info.console.domU.mfn`) for as long as the value is used.
    pub unsafe fn new(va: usize) -> Self {
        Self {
            page: va as *mut XenconsInterface,
        }
    }
}

impl RingPage for MappedRing {
    fn out_cons(&self) -> u32 {
        // SAFETY: a field of the mapped page (new's contract); the backend
        // writes it concurrently, hence the volatile read.
        unsafe { core::ptr::read_volatile(&raw const (*self.page).out_cons) }
    }

    fn out_prod(&self) -> u32 {
        // SAFETY: as above.
        unsafe { core::ptr::read_volatile(&raw const (*self.page).out_prod) }
    }

    fn set_out_prod(&mut self, prod: u32) {
        // SAFETY: as above; the guest is the only writer of out_prod.
        unsafe { core::ptr::write_volatile(&raw mut (*self.page).out_prod, prod) }
    }

    fn set_out_byte(&mut self, slot: usize, byte: u8) {
        let slot = slot % XENCONS_OUT_RING_SIZE as usize;
        // SAFETY: slot < 2048 = out's length, in the mapped page.
        unsafe {
            core::ptr::write_volatile((&raw mut (*self.page).output).cast::<u8>().add(slot), byte)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::cell::RefCell;
    use std::rc::Rc;

    /// The page and a model xenconsoled: consumes `chunks[i]` bytes at the
    /// i-th wait and records what it read.
    struct Model {
        out: [Option<u8>; 2048],
        cons: u32,
        prod: u32,
        read: Vec<u8>,
    }

    impl Model {
        fn new(start: u32) -> Rc<RefCell<Self>> {
            Rc::new(RefCell::new(Self {
                out: [None; 2048],
                cons: start,
                prod: start,
                read: Vec::new(),
            }))
        }

        fn consume(&mut self, mut n: u32) {
            while n > 0 && self.cons != self.prod {
                let slot = (self.cons & 2047) as usize;
                self.read
                    .push(self.out[slot].take().expect("published byte"));
                self.cons = self.cons.wrapping_add(1);
                n -= 1;
            }
        }
    }

    struct Page(Rc<RefCell<Model>>);

    impl RingPage for Page {
        fn out_cons(&self) -> u32 {
            self.0.borrow().cons
        }
        fn out_prod(&self) -> u32 {
            self.0.borrow().prod
        }
        fn set_out_prod(&mut self, prod: u32) {
            self.0.borrow_mut().prod = prod;
        }
        fn set_out_byte(&mut self, slot: usize, byte: u8) {
            let mut m = self.0.borrow_mut();
            assert!(
                m.out[slot].is_none(),
                "slot {slot} overwritten before it was read"
            );
            m.out[slot] = Some(byte);
        }
    }

    struct Consoled {
        model: Rc<RefCell<Model>>,
        chunks: Vec<u32>,
        waits: usize,
        notifies: usize,
        give_up_after: u32,
    }

    impl Backend for Consoled {
        fn notify(&mut self) {
            self.notifies += 1;
        }
        fn wait(&mut self, attempt: u32) -> bool {
            if attempt >= self.give_up_after {
                return false;
            }
            let n = self.chunks.get(self.waits).copied().unwrap_or(0);
            self.waits += 1;
            self.model.borrow_mut().consume(n);
            true
        }
    }

    fn setup(start: u32, chunks: Vec<u32>, give_up_after: u32) -> (Page, Consoled) {
        let model = Model::new(start);
        (
            Page(model.clone()),
            Consoled {
                model,
                chunks,
                waits: 0,
                notifies: 0,
                give_up_after,
            },
        )
    }

    #[test]
    fn space_with_wrapping_indices() {
        assert_eq!(out_space(0, 0), Some(2048));
        assert_eq!(out_space(u32::MAX - 9, 6), Some(2048 - 16));
        assert_eq!(out_space(5, 5 + 2048), Some(0));
        assert_eq!(out_space(5, 5 + 2049), None);
        assert_eq!(out_space(10, 5), None);
    }

    #[test]
    fn a_short_line_is_published_and_notified() {
        let (mut page, mut backend) = setup(0, vec![], 3);
        write(&mut page, &mut backend, b"hello\n").unwrap();
        assert_eq!(page.out_prod(), 6);
        assert_eq!(backend.notifies, 1);
        assert_eq!(backend.waits, 0);
        backend.model.borrow_mut().consume(100);
        assert_eq!(backend.model.borrow().read, b"hello\n");
    }

    #[test]
    fn full_ring_without_a_reader_stalls_and_says_how_much_was_lost() {
        let (mut page, mut backend) = setup(u32::MAX - 100, vec![], 5);
        let bytes = vec![b'x'; 3000];
        let e = write(&mut page, &mut backend, &bytes).unwrap_err();
        assert_eq!(
            e,
            RingError::Stalled {
                unwritten: 3000 - 2048
            }
        );
        assert_eq!(backend.waits, 5);
        assert_eq!(
            drain(&mut page, &mut backend),
            Err(RingError::Stalled { unwritten: 2048 })
        );
    }

    #[test]
    fn inconsistent_indices_write_nothing() {
        let (mut page, mut backend) = setup(0, vec![], 5);
        page.set_out_prod(4000);
        assert_eq!(
            write(&mut page, &mut backend, b"x"),
            Err(RingError::Inconsistent {
                cons: 0,
                prod: 4000
            })
        );
        assert_eq!(backend.notifies, 0);
    }

    proptest! {
        /// Whatever the start index (wrapping included) and however the
        /// backend consumes, it reads exactly the bytes written, in order,
        /// and no unread byte is overwritten (Model asserts it).
        #[test]
        fn the_backend_reads_exactly_what_was_written(
            start in prop_oneof![Just(u32::MAX - 3000), Just(0u32), any::<u32>()],
            writes in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..3000), 1..8),
            chunks in prop::collection::vec(1u32..3000, 0..200),
        ) {
            let mut chunks = chunks;
            chunks.extend(std::iter::repeat_n(512, 100));
            let (mut page, mut backend) = setup(start, chunks, 1000);
            let mut all = Vec::new();
            for w in &writes {
                write(&mut page, &mut backend, w).unwrap();
                all.extend_from_slice(w);
            }
            drain(&mut page, &mut backend).unwrap();
            prop_assert_eq!(&backend.model.borrow().read, &all);
            prop_assert_eq!(page.out_prod(), start.wrapping_add(all.len() as u32));
        }
    }
}
