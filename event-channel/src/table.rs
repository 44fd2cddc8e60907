//! Which ports are bound, to what, and where their events go.
//!
//! The binding kinds follow the `EVTCHNOP_*` bind commands and `EVTCHNSTAT_*` states of
//! `xen/include/public/event_channel.h`; the VIRQ rules (range, per-vCPU versus global, one
//! port per VIRQ and vCPU) are the ones Xen's `evtchn_bind_virq` enforces. The route is the
//! ROM's own: the IDT vector the VMI kernel expects the event on, or the ROM itself (for
//! channels it consumes, such as the console ring behind its UART emulation).
//!
//! The table holds up to `SLOTS` bound ports (any port numbers below 1024) in fixed storage,
//! kept sorted by port so a lookup is a binary search: the ROM binds a handful of ports and
//! keeps its table in a few hundred bytes of its state page, while host tests may bind all
//! 1024 ([`FullPortTable`]). It is shared by all vCPUs; each entry names the vCPU the port
//! notifies.

use core::cmp::Ordering;

use crate::abi::{
    EVTCHN_2L_NR_CHANNELS, NR_VIRQS, VIRQ_DEBUG, VIRQ_TIMER, VIRQ_XENOPROF, VIRQ_XENPMU,
    XEN_LEGACY_MAX_VCPUS,
};
use crate::port::{Error, Port, Vector};

/// What a port is connected to.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Binding {
    /// A virtual IRQ (`EVTCHNOP_bind_virq`), e.g. `VIRQ_TIMER`.
    Virq(u32),
    /// An inter-processor interrupt (`EVTCHNOP_bind_ipi`).
    Ipi,
    /// Connected to a port of another domain (`EVTCHNOP_bind_interdomain`).
    Interdomain {
        /// The other domain.
        remote_domain: u16,
        /// Its port.
        remote_port: u32,
    },
    /// Allocated and waiting for another domain to connect (`EVTCHNOP_alloc_unbound`).
    Unbound {
        /// The domain allowed to connect.
        remote_domain: u16,
    },
    /// A physical IRQ (`EVTCHNOP_bind_pirq`, dom0).
    Pirq(u32),
    /// The PV console channel (`start_info.console.domU.evtchn`), an interdomain channel
    /// set up by the toolstack.
    Console,
    /// The xenstore channel (`start_info.store_evtchn`), also set up by the toolstack.
    Xenstore,
}

/// Whether a VIRQ is per-vCPU (each vCPU binds its own) or global (bound once, on vCPU 0).
/// Per-vCPU VIRQs are `VIRQ_TIMER`, `VIRQ_DEBUG`, `VIRQ_XENOPROF` and `VIRQ_XENPMU`
/// (Xen's `virq_is_global`; the x86 arch VIRQs are global).
#[inline]
pub const fn virq_is_per_vcpu(virq: u32) -> bool {
    matches!(virq, VIRQ_TIMER | VIRQ_DEBUG | VIRQ_XENOPROF | VIRQ_XENPMU)
}

/// Where a port's events go.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Route {
    /// Inject this IDT vector into the kernel.
    Vector(Vector),
    /// The ROM consumes the event itself; the value is the ROM's own tag for it.
    Rom(u8),
}

impl Route {
    /// A route to `vector`, checked to be an external-interrupt vector (32..=255).
    #[inline]
    pub const fn vector(vector: u32) -> Result<Route, Error> {
        match Vector::new(vector) {
            Ok(vector) => Ok(Route::Vector(vector)),
            Err(error) => Err(error),
        }
    }
}

/// A bound port.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct PortInfo {
    binding: Binding,
    route: Route,
    vcpu: u8,
}

impl PortInfo {
    /// What the port is connected to.
    #[inline]
    pub const fn binding(&self) -> Binding {
        self.binding
    }

    /// Where its events go.
    #[inline]
    pub const fn route(&self) -> Route {
        self.route
    }

    /// The vCPU it notifies (sets the selector and `upcall_pending` of).
    #[inline]
    pub const fn vcpu(&self) -> u32 {
        self.vcpu as u32
    }
}

/// The bound ports of a domain: at most `SLOTS` of them.
#[derive(Clone, Debug)]
pub struct PortTable<const SLOTS: usize = EVTCHN_2L_NR_CHANNELS> {
    /// The first `len` slots hold the bound ports in ascending order; the rest are `None`.
    slots: [Option<(Port, PortInfo)>; SLOTS],
    len: u16,
}

/// A table with room for every 2-level port.
pub type FullPortTable = PortTable<EVTCHN_2L_NR_CHANNELS>;

impl<const SLOTS: usize> Default for PortTable<SLOTS> {
    fn default() -> Self {
        Self::new()
    }
}

fn check_vcpu(vcpu: u32) -> Result<u8, Error> {
    if vcpu < XEN_LEGACY_MAX_VCPUS {
        Ok(vcpu as u8)
    } else {
        Err(Error::VcpuOutOfRange(vcpu))
    }
}

impl<const SLOTS: usize> PortTable<SLOTS> {
    /// No ports bound.
    pub const fn new() -> Self {
        assert!(SLOTS <= EVTCHN_2L_NR_CHANNELS, "more slots than ports");
        PortTable {
            slots: [None; SLOTS],
            len: 0,
        }
    }

    /// The slot of `port` (Ok), or where it would go (Err).
    fn position(&self, port: Port) -> Result<usize, usize> {
        self.slots[..usize::from(self.len)].binary_search_by(|slot| match slot {
            Some((bound, _)) => bound.cmp(&port),
            None => Ordering::Greater,
        })
    }

    fn entry_mut(&mut self, port: Port) -> Option<&mut PortInfo> {
        let index = self.position(port).ok()?;
        self.slots[index].as_mut().map(|(_, info)| info)
    }

    /// Records that Xen bound `port` (the port its bind hypercall returned) as `binding`,
    /// notifying `vcpu`, with events going to `route`.
    ///
    /// Refuses a port outside 0..1024, a port already bound, a vCPU outside 0..32, a VIRQ
    /// outside 0..24, a global VIRQ on a vCPU other than 0, and a second port for the same
    /// VIRQ and vCPU (a global VIRQ counts as bound on every vCPU). Route vectors are checked
    /// when the [`Route`] is made ([`Route::vector`]).
    pub fn bind(
        &mut self,
        port: u32,
        binding: Binding,
        vcpu: u32,
        route: Route,
    ) -> Result<Port, Error> {
        let port = Port::new(port)?;
        let vcpu = check_vcpu(vcpu)?;
        if let Binding::Virq(virq) = binding {
            if virq >= NR_VIRQS {
                return Err(Error::VirqOutOfRange(virq));
            }
            if !virq_is_per_vcpu(virq) && vcpu != 0 {
                return Err(Error::GlobalVirqOffVcpu0 {
                    virq,
                    vcpu: u32::from(vcpu),
                });
            }
            if let Some(existing) = self.find_virq(virq, u32::from(vcpu)) {
                return Err(Error::VirqInUse {
                    virq,
                    vcpu: u32::from(vcpu),
                    port: existing,
                });
            }
        }
        let index = match self.position(port) {
            Ok(_) => return Err(Error::PortInUse(port)),
            Err(index) => index,
        };
        let len = usize::from(self.len);
        if len == SLOTS {
            return Err(Error::TableFull(port));
        }
        self.slots.copy_within(index..len, index + 1);
        self.slots[index] = Some((
            port,
            PortInfo {
                binding,
                route,
                vcpu,
            },
        ));
        self.len += 1;
        Ok(port)
    }

    /// Forgets `port` (after `EVTCHNOP_close`) and returns what it was.
    pub fn unbind(&mut self, port: u32) -> Result<PortInfo, Error> {
        let port = Port::new(port)?;
        let index = self.position(port).map_err(|_| Error::NotBound(port))?;
        let len = usize::from(self.len);
        let (_, info) = self.slots[index].ok_or(Error::NotBound(port))?;
        self.slots.copy_within(index + 1..len, index);
        self.slots[len - 1] = None;
        self.len -= 1;
        Ok(info)
    }

    /// Sends `port`'s events to `route` from now on (e.g. the timer VIRQ moving from IRQ 0's
    /// vector to the local APIC timer vector); returns the old route.
    pub fn reroute(&mut self, port: u32, route: Route) -> Result<Route, Error> {
        let port = Port::new(port)?;
        let info = self.entry_mut(port).ok_or(Error::NotBound(port))?;
        Ok(core::mem::replace(&mut info.route, route))
    }

    /// Records that `port` now notifies `vcpu` (after `EVTCHNOP_bind_vcpu`); returns the old
    /// vCPU. Per-vCPU VIRQs and IPIs cannot move, as in Xen.
    pub fn set_notify_vcpu(&mut self, port: u32, vcpu: u32) -> Result<u32, Error> {
        let port = Port::new(port)?;
        let vcpu = check_vcpu(vcpu)?;
        let info = self.entry_mut(port).ok_or(Error::NotBound(port))?;
        match info.binding {
            Binding::Ipi => return Err(Error::NotMovable(port)),
            Binding::Virq(virq) if virq_is_per_vcpu(virq) => return Err(Error::NotMovable(port)),
            _ => {}
        }
        Ok(u32::from(core::mem::replace(&mut info.vcpu, vcpu)))
    }

    /// The binding of `port`, if any.
    #[inline]
    pub fn get(&self, port: Port) -> Option<&PortInfo> {
        let index = self.position(port).ok()?;
        self.slots[index].as_ref().map(|(_, info)| info)
    }

    /// The binding of raw port number `port`.
    pub fn lookup(&self, port: u32) -> Result<&PortInfo, Error> {
        let port = Port::new(port)?;
        self.get(port).ok_or(Error::NotBound(port))
    }

    /// The port bound to `virq` for `vcpu` (for a global VIRQ, on any vCPU).
    pub fn find_virq(&self, virq: u32, vcpu: u32) -> Option<Port> {
        let per_vcpu = virq_is_per_vcpu(virq);
        self.iter()
            .find(|(_, info)| {
                info.binding == Binding::Virq(virq) && (!per_vcpu || info.vcpu() == vcpu)
            })
            .map(|(port, _)| port)
    }

    /// All bound ports in ascending order.
    pub fn iter(&self) -> impl Iterator<Item = (Port, &PortInfo)> + '_ {
        self.slots[..usize::from(self.len)]
            .iter()
            .filter_map(|slot| slot.as_ref().map(|(port, info)| (*port, info)))
    }

    /// The number of bound ports.
    #[inline]
    pub fn len(&self) -> usize {
        usize::from(self.len)
    }

    /// Whether no port is bound.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// How many ports the table can hold.
    #[inline]
    pub const fn capacity(&self) -> usize {
        SLOTS
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::abi::{VIRQ_CONSOLE, VIRQ_DOM_EXC};

    fn to(vector: u32) -> Route {
        Route::vector(vector).unwrap()
    }

    #[test]
    fn bind_and_look_up() {
        let mut table = FullPortTable::new();
        let port = table
            .bind(3, Binding::Virq(VIRQ_TIMER), 0, to(0x20))
            .unwrap();
        assert_eq!(port.get(), 3);
        let info = table.lookup(3).unwrap();
        assert_eq!(info.binding(), Binding::Virq(VIRQ_TIMER));
        assert_eq!(info.route(), to(0x20));
        assert_eq!(info.vcpu(), 0);
        assert_eq!(table.find_virq(VIRQ_TIMER, 0), Some(port));
        assert_eq!(table.find_virq(VIRQ_TIMER, 1), None);
        assert_eq!(table.len(), 1);
        table
            .bind(1023, Binding::Console, 0, Route::Rom(1))
            .unwrap();
        assert_eq!(
            table.iter().map(|(port, _)| port.get()).collect::<Vec<_>>(),
            vec![3, 1023]
        );
    }

    #[test]
    fn bind_refuses_bad_input() {
        let mut table = FullPortTable::new();
        let timer = Binding::Virq(VIRQ_TIMER);
        assert_eq!(
            table.bind(1024, timer, 0, to(0x20)),
            Err(Error::PortOutOfRange(1024))
        );
        assert_eq!(Route::vector(0x1F), Err(Error::VectorOutOfRange(0x1F)));
        assert_eq!(Route::vector(256), Err(Error::VectorOutOfRange(256)));
        assert_eq!(
            table.bind(4, timer, 32, to(0x20)),
            Err(Error::VcpuOutOfRange(32))
        );
        assert_eq!(
            table.bind(4, Binding::Virq(24), 0, to(0x20)),
            Err(Error::VirqOutOfRange(24))
        );
        assert_eq!(
            table.bind(4, Binding::Virq(VIRQ_CONSOLE), 1, to(0x20)),
            Err(Error::GlobalVirqOffVcpu0 {
                virq: VIRQ_CONSOLE,
                vcpu: 1
            })
        );
        assert!(table.is_empty(), "nothing was bound by the refused calls");
    }

    #[test]
    fn double_binding_is_refused() {
        let mut table = FullPortTable::new();
        let timer = table
            .bind(4, Binding::Virq(VIRQ_TIMER), 0, to(0x20))
            .unwrap();
        assert_eq!(
            table.bind(4, Binding::Ipi, 0, to(0xF0)),
            Err(Error::PortInUse(timer)),
            "a port holds one binding"
        );
        assert_eq!(
            table.bind(5, Binding::Virq(VIRQ_TIMER), 0, to(0xEF)),
            Err(Error::VirqInUse {
                virq: VIRQ_TIMER,
                vcpu: 0,
                port: timer
            })
        );
        // The timer is per-vCPU: vCPU 1 may have its own.
        table
            .bind(5, Binding::Virq(VIRQ_TIMER), 1, to(0xEF))
            .unwrap();
        // A global VIRQ stays taken even after it moved to another vCPU.
        let exc = table
            .bind(6, Binding::Virq(VIRQ_DOM_EXC), 0, Route::Rom(0))
            .unwrap();
        table.set_notify_vcpu(6, 2).unwrap();
        assert_eq!(
            table.bind(7, Binding::Virq(VIRQ_DOM_EXC), 0, Route::Rom(0)),
            Err(Error::VirqInUse {
                virq: VIRQ_DOM_EXC,
                vcpu: 0,
                port: exc
            })
        );
        // IPIs may have several ports per vCPU.
        table.bind(8, Binding::Ipi, 0, to(0xF0)).unwrap();
        table.bind(9, Binding::Ipi, 0, to(0xF1)).unwrap();
        assert_eq!(table.len(), 5);
    }

    #[test]
    fn unbind_and_reroute() {
        let mut table = FullPortTable::new();
        let unknown = Port::new(12).unwrap();
        assert_eq!(table.unbind(12), Err(Error::NotBound(unknown)));
        assert_eq!(table.reroute(12, to(0x30)), Err(Error::NotBound(unknown)));
        assert_eq!(table.lookup(12), Err(Error::NotBound(unknown)));
        assert_eq!(table.unbind(5000), Err(Error::PortOutOfRange(5000)));
        assert_eq!(
            table.reroute(5000, to(0x30)),
            Err(Error::PortOutOfRange(5000))
        );

        table
            .bind(12, Binding::Virq(VIRQ_TIMER), 0, to(0x20))
            .unwrap();
        assert_eq!(table.reroute(12, to(0xEF)), Ok(to(0x20)));
        assert_eq!(table.lookup(12).unwrap().route(), to(0xEF));
        let info = table.unbind(12).unwrap();
        assert_eq!(info.route(), to(0xEF));
        assert!(table.is_empty());
        assert_eq!(table.find_virq(VIRQ_TIMER, 0), None);
        // The port and the VIRQ are free again.
        table
            .bind(12, Binding::Virq(VIRQ_TIMER), 0, to(0x20))
            .unwrap();
    }

    #[test]
    fn moving_ports_between_vcpus() {
        let mut table = FullPortTable::new();
        table
            .bind(1, Binding::Virq(VIRQ_TIMER), 0, to(0x20))
            .unwrap();
        table.bind(2, Binding::Ipi, 0, to(0xF0)).unwrap();
        table
            .bind(
                3,
                Binding::Interdomain {
                    remote_domain: 0,
                    remote_port: 7,
                },
                0,
                to(0x40),
            )
            .unwrap();
        assert_eq!(
            table.set_notify_vcpu(1, 1),
            Err(Error::NotMovable(Port::new(1).unwrap()))
        );
        assert_eq!(
            table.set_notify_vcpu(2, 1),
            Err(Error::NotMovable(Port::new(2).unwrap()))
        );
        assert_eq!(table.set_notify_vcpu(3, 32), Err(Error::VcpuOutOfRange(32)));
        assert_eq!(
            table.set_notify_vcpu(4, 1),
            Err(Error::NotBound(Port::new(4).unwrap()))
        );
        assert_eq!(table.set_notify_vcpu(3, 1), Ok(0));
        assert_eq!(table.lookup(3).unwrap().vcpu(), 1);
    }
}
