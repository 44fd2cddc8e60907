//! Event channels: `event_channel.h` (interface 0x00040e00), x86_32 layout.
//!
//! `HYPERVISOR_event_channel_op(cmd, &struct)` with `cmd` one of
//! `EVTCHNOP_*`. Only the 2-level ABI is used by this project: port `p` is
//! bit `p % 32` of `shared_info.evtchn_pending[p / 32]` (and of
//! `evtchn_mask`), and selector bit `p / 32` of `vcpu_info.evtchn_pending_sel`.

// Constants keep Xen's spellings (`EVTCHNOP_send`).
#![allow(non_upper_case_globals)]

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use crate::xen::DomId;

/// `evtchn_port_t`.
#[doc(alias = "evtchn_port_t")]
pub type EvtchnPort = u32;

/// `EVTCHNOP_bind_interdomain`.
pub const EVTCHNOP_bind_interdomain: u32 = 0;
/// `EVTCHNOP_bind_virq`.
pub const EVTCHNOP_bind_virq: u32 = 1;
/// `EVTCHNOP_bind_pirq`.
pub const EVTCHNOP_bind_pirq: u32 = 2;
/// `EVTCHNOP_close`.
pub const EVTCHNOP_close: u32 = 3;
/// `EVTCHNOP_send`.
pub const EVTCHNOP_send: u32 = 4;
/// `EVTCHNOP_status`.
pub const EVTCHNOP_status: u32 = 5;
/// `EVTCHNOP_alloc_unbound`.
pub const EVTCHNOP_alloc_unbound: u32 = 6;
/// `EVTCHNOP_bind_ipi`.
pub const EVTCHNOP_bind_ipi: u32 = 7;
/// `EVTCHNOP_bind_vcpu`.
pub const EVTCHNOP_bind_vcpu: u32 = 8;
/// `EVTCHNOP_unmask`.
pub const EVTCHNOP_unmask: u32 = 9;
/// `EVTCHNOP_reset`.
pub const EVTCHNOP_reset: u32 = 10;
/// `EVTCHNOP_init_control` (FIFO ABI).
pub const EVTCHNOP_init_control: u32 = 11;
/// `EVTCHNOP_expand_array` (FIFO ABI).
pub const EVTCHNOP_expand_array: u32 = 12;
/// `EVTCHNOP_set_priority` (FIFO ABI).
pub const EVTCHNOP_set_priority: u32 = 13;

/// `EVTCHNSTAT_closed`: the channel is not in use.
pub const EVTCHNSTAT_closed: u32 = 0;
/// `EVTCHNSTAT_unbound`: waiting for an interdomain connection.
pub const EVTCHNSTAT_unbound: u32 = 1;
/// `EVTCHNSTAT_interdomain`: connected to a remote domain.
pub const EVTCHNSTAT_interdomain: u32 = 2;
/// `EVTCHNSTAT_pirq`: bound to a physical IRQ.
pub const EVTCHNSTAT_pirq: u32 = 3;
/// `EVTCHNSTAT_virq`: bound to a virtual IRQ.
pub const EVTCHNSTAT_virq: u32 = 4;
/// `EVTCHNSTAT_ipi`: bound to a virtual IPI.
pub const EVTCHNSTAT_ipi: u32 = 5;

/// `EVTCHN_2L_NR_CHANNELS` on x86_32: `sizeof(xen_ulong_t)^2 * 64` = 1024.
pub const EVTCHN_2L_NR_CHANNELS: u32 = 4 * 4 * 64;

/// `BIND_PIRQ__WILL_SHARE` in `evtchn_bind_pirq.flags`.
pub const BIND_PIRQ__WILL_SHARE: u32 = 1;

/// `struct evtchn_alloc_unbound`: allocate a port in `dom` for `remote_dom`
/// to bind to later.
#[doc(alias = "evtchn_alloc_unbound")]
#[doc(alias = "evtchn_alloc_unbound_t")]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
#[repr(C)]
pub struct EvtchnAllocUnbound {
    /// IN: the domain to allocate in (`DOMID_SELF`).
    pub dom: DomId,
    /// IN: the domain allowed to bind.
    pub remote_dom: DomId,
    /// OUT: the new port.
    pub port: EvtchnPort,
}

assert_abi_layout!(
    EvtchnAllocUnbound,
    size = 8,
    align = 4,
    dom = 0,
    remote_dom = 2,
    port = 4
);

/// `struct evtchn_bind_interdomain`: connect to `remote_dom`'s unbound port.
#[doc(alias = "evtchn_bind_interdomain")]
#[doc(alias = "evtchn_bind_interdomain_t")]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
#[repr(C)]
pub struct EvtchnBindInterdomain {
    /// IN.
    pub remote_dom: DomId,
    pub _pad0: u16,
    /// IN.
    pub remote_port: EvtchnPort,
    /// OUT.
    pub local_port: EvtchnPort,
}

assert_abi_layout!(
    EvtchnBindInterdomain,
    size = 12,
    align = 4,
    remote_dom = 0,
    remote_port = 4,
    local_port = 8,
);

/// `struct evtchn_bind_virq`: bind `virq` on `vcpu` to a new port.
#[doc(alias = "evtchn_bind_virq")]
#[doc(alias = "evtchn_bind_virq_t")]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
#[repr(C)]
pub struct EvtchnBindVirq {
    /// IN: `VIRQ_*`.
    pub virq: u32,
    /// IN.
    pub vcpu: u32,
    /// OUT.
    pub port: EvtchnPort,
}

assert_abi_layout!(
    EvtchnBindVirq,
    size = 12,
    align = 4,
    virq = 0,
    vcpu = 4,
    port = 8
);

/// `struct evtchn_bind_pirq`.
#[doc(alias = "evtchn_bind_pirq")]
#[doc(alias = "evtchn_bind_pirq_t")]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
#[repr(C)]
pub struct EvtchnBindPirq {
    /// IN.
    pub pirq: u32,
    /// IN: `BIND_PIRQ__*`.
    pub flags: u32,
    /// OUT.
    pub port: EvtchnPort,
}

assert_abi_layout!(
    EvtchnBindPirq,
    size = 12,
    align = 4,
    pirq = 0,
    flags = 4,
    port = 8
);

/// `struct evtchn_bind_ipi`: a new IPI port delivered to `vcpu`.
#[doc(alias = "evtchn_bind_ipi")]
#[doc(alias = "evtchn_bind_ipi_t")]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
#[repr(C)]
pub struct EvtchnBindIpi {
    /// IN.
    pub vcpu: u32,
    /// OUT.
    pub port: EvtchnPort,
}

assert_abi_layout!(EvtchnBindIpi, size = 8, align = 4, vcpu = 0, port = 4);

/// `struct evtchn_close`.
#[doc(alias = "evtchn_close")]
#[doc(alias = "evtchn_close_t")]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
#[repr(C)]
pub struct EvtchnClose {
    /// IN.
    pub port: EvtchnPort,
}

assert_abi_layout!(EvtchnClose, size = 4, align = 4, port = 0);

/// `struct evtchn_send`: notify the other end of `port`.
#[doc(alias = "evtchn_send")]
#[doc(alias = "evtchn_send_t")]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
#[repr(C)]
pub struct EvtchnSend {
    /// IN.
    pub port: EvtchnPort,
}

assert_abi_layout!(EvtchnSend, size = 4, align = 4, port = 0);

/// `struct evtchn_status`: query the state of `port` in `dom`.
///
/// `u` is a union whose meaning depends on `status`; read it with
/// [`binding`](Self::binding).
#[doc(alias = "evtchn_status")]
#[doc(alias = "evtchn_status_t")]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
#[repr(C)]
pub struct EvtchnStatus {
    /// IN.
    pub dom: DomId,
    pub _pad0: u16,
    /// IN.
    pub port: EvtchnPort,
    /// OUT: `EVTCHNSTAT_*`.
    pub status: u32,
    /// OUT: the vCPU the channel is bound to.
    pub vcpu: u32,
    /// OUT: `u.unbound.dom`, `u.interdomain.{dom, port}`, `u.pirq` or `u.virq`
    /// as two 32-bit words.
    pub u: [u32; 2],
}

assert_abi_layout!(
    EvtchnStatus,
    size = 24,
    align = 4,
    dom = 0,
    port = 4,
    status = 8,
    vcpu = 12,
    u = 16,
);

/// What an [`EvtchnStatus`] says a port is bound to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EvtchnBinding {
    /// `EVTCHNSTAT_closed`.
    Closed,
    /// `EVTCHNSTAT_unbound`: waiting for `remote_dom`.
    Unbound { remote_dom: DomId },
    /// `EVTCHNSTAT_interdomain`: connected to `port` of `dom`.
    Interdomain { dom: DomId, port: EvtchnPort },
    /// `EVTCHNSTAT_pirq`.
    Pirq(u32),
    /// `EVTCHNSTAT_virq`.
    Virq(u32),
    /// `EVTCHNSTAT_ipi`.
    Ipi,
    /// A status value this crate does not know.
    Unknown(u32),
}

impl EvtchnStatus {
    /// A query for `port` of domain `dom`.
    pub const fn query(dom: DomId, port: EvtchnPort) -> Self {
        Self {
            dom,
            _pad0: 0,
            port,
            status: 0,
            vcpu: 0,
            u: [0; 2],
        }
    }

    /// Decodes `status` and the union `u`.
    pub const fn binding(&self) -> EvtchnBinding {
        match self.status {
            EVTCHNSTAT_closed => EvtchnBinding::Closed,
            // `u.unbound.dom` and `u.interdomain.dom` are the low 16 bits of
            // the first word (little endian), `u.interdomain.port` the second.
            EVTCHNSTAT_unbound => EvtchnBinding::Unbound {
                remote_dom: self.u[0] as u16,
            },
            EVTCHNSTAT_interdomain => EvtchnBinding::Interdomain {
                dom: self.u[0] as u16,
                port: self.u[1],
            },
            EVTCHNSTAT_pirq => EvtchnBinding::Pirq(self.u[0]),
            EVTCHNSTAT_virq => EvtchnBinding::Virq(self.u[0]),
            EVTCHNSTAT_ipi => EvtchnBinding::Ipi,
            other => EvtchnBinding::Unknown(other),
        }
    }
}

/// `struct evtchn_bind_vcpu`: deliver `port` to `vcpu` from now on.
#[doc(alias = "evtchn_bind_vcpu")]
#[doc(alias = "evtchn_bind_vcpu_t")]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
#[repr(C)]
pub struct EvtchnBindVcpu {
    /// IN.
    pub port: EvtchnPort,
    /// IN.
    pub vcpu: u32,
}

assert_abi_layout!(EvtchnBindVcpu, size = 8, align = 4, port = 0, vcpu = 4);

/// `struct evtchn_unmask`: unmask `port` and redeliver it if pending.
#[doc(alias = "evtchn_unmask")]
#[doc(alias = "evtchn_unmask_t")]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
#[repr(C)]
pub struct EvtchnUnmask {
    /// IN.
    pub port: EvtchnPort,
}

assert_abi_layout!(EvtchnUnmask, size = 4, align = 4, port = 0);

/// `struct evtchn_reset`.
#[doc(alias = "evtchn_reset")]
#[doc(alias = "evtchn_reset_t")]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
#[repr(C)]
pub struct EvtchnReset {
    /// IN.
    pub dom: DomId,
}

assert_abi_layout!(EvtchnReset, size = 2, align = 2, dom = 0);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xen::DOMID_SELF;

    #[test]
    fn status_union_decodes_by_status() {
        let mut s = EvtchnStatus::query(DOMID_SELF, 5);
        assert_eq!(s.binding(), EvtchnBinding::Closed);
        s.status = EVTCHNSTAT_unbound;
        s.u = [0x0000_0007, 0];
        assert_eq!(s.binding(), EvtchnBinding::Unbound { remote_dom: 7 });
        s.status = EVTCHNSTAT_interdomain;
        s.u = [0x0000_0003, 42];
        assert_eq!(s.binding(), EvtchnBinding::Interdomain { dom: 3, port: 42 });
        s.status = EVTCHNSTAT_virq;
        s.u = [1, 0];
        assert_eq!(s.binding(), EvtchnBinding::Virq(1));
        s.status = EVTCHNSTAT_ipi;
        assert_eq!(s.binding(), EvtchnBinding::Ipi);
        s.status = 9;
        assert_eq!(s.binding(), EvtchnBinding::Unknown(9));
    }
}
