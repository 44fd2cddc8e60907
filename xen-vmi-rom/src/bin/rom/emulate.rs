//! The #GP path: privileged instructions a kernel executes natively in
//! ring 1 (docs/traps-and-privilege.md), decoded by `decode` and carried
//! out against Xen and the device models.

use xen_abi::arch_x86_32::FLAT_RING1_CS;
use xen_abi::hypercall::Hypervisor;
use xen_vmi_rom::decode::{
    decode, ControlReg, DecodeError, Op, Reg32, Regs, RmOperand, Segment, Width,
};
use xen_vmi_rom::layout::ROM_STATE_VA;
use xen_vmi_rom::rom_state::RESUME_AT_OFFSET;

use crate::runtime::runtime;
use crate::traps::TrapFrame;
use crate::xen::hypervisor;

/// EFLAGS.DF: string instructions step downwards.
const EFLAGS_DF: u32 = 1 << 10;

/// Sets the kernel's virtual IF; an event that came in meanwhile is
/// delivered now (a hypercall return is where Xen delivers the upcall).
pub fn enable_events_and_deliver() {
    crate::events::enable_and_deliver();
}

/// The 6-byte pseudo-descriptor of LGDT/LIDT at `addr`: (base, limit); a
/// 16-bit operand size loads only 24 bits of the base.
fn pseudo_descriptor(addr: u32, width: Width) -> (u32, u16) {
    // SAFETY: the kernel's operand, in its own memory; a bad address faults
    // the kernel as the processor's access would.
    let (limit, base) = unsafe {
        (
            core::ptr::read_unaligned(addr as *const u16),
            core::ptr::read_unaligned((addr + 2) as *const u32),
        )
    };
    let base = if width.bytes() == 2 {
        base & 0x00FF_FFFF
    } else {
        base
    };
    (base, limit)
}

#[cfg_attr(feature = "image", optimize(size))]
fn selector_of(rm: RmOperand, regs: &Regs) -> u16 {
    match rm {
        RmOperand::Reg(r) => regs.get(r) as u16,
        // SAFETY: the kernel's operand, in its own memory.
        RmOperand::Mem(m) => unsafe { core::ptr::read_unaligned(m.offset(regs) as *const u16) },
    }
}

fn read_insn(eip: u32, buf: &mut [u8; 15]) -> usize {
    // Read to the end of the page first: the next page may not be mapped,
    // and most instructions end before it.
    let to_page_end = (4096 - (eip & 0xFFF)) as usize;
    let n = to_page_end.min(15);
    // SAFETY: the kernel is executing at `eip`, so its page is mapped.
    unsafe { core::ptr::copy_nonoverlapping(eip as *const u8, buf.as_mut_ptr(), n) };
    n
}

fn regs_of(frame: &TrapFrame) -> Regs {
    Regs {
        eax: frame.eax,
        ecx: frame.ecx,
        edx: frame.edx,
        ebx: frame.ebx,
        // Same-ring exception: the kernel's ESP is just above Xen's frame.
        esp: (&raw const frame.eflags) as u32 + 4,
        ebp: frame.ebp,
        esi: frame.esi,
        edi: frame.edi,
    }
}

fn write_back(frame: &mut TrapFrame, regs: &Regs) {
    frame.eax = regs.eax;
    frame.ecx = regs.ecx;
    frame.edx = regs.edx;
    frame.ebx = regs.ebx;
    frame.ebp = regs.ebp;
    frame.esi = regs.esi;
    frame.edi = regs.edi;
}

/// How the trap path leaves an emulated instruction.
pub enum Outcome {
    /// Back to the next instruction, same stack.
    Resume,
    /// Through the resume slot: a new SS:ESP or CS (see `resume_at`).
    ResumeAt,
    /// Not an instruction the ROM emulates: the kernel's own #GP.
    NotMine,
}

/// Fills the resume slot: the kernel continues at CS:EIP with EFLAGS on
/// SS:ESP (the trap path loads SS:ESP with `lss`, then irets).
fn resume_at(eip: u32, cs: u32, eflags: u32, esp: u32, ss: u16) -> Outcome {
    let slot = (ROM_STATE_VA + RESUME_AT_OFFSET) as *mut u32;
    // SAFETY: the slot lies in the ROM's mapped state page; one vCPU, and
    // nothing runs between here and the trap path's return.
    unsafe {
        core::ptr::write_volatile(slot, eip);
        core::ptr::write_volatile(slot.add(1), cs & 0xFFFF);
        core::ptr::write_volatile(slot.add(2), eflags);
        core::ptr::write_volatile(slot.add(3), esp);
        core::ptr::write_volatile(slot.add(4), u32::from(ss));
    }
    Outcome::ResumeAt
}

fn current_ss() -> u16 {
    let ss: u16;
    // SAFETY: reads a segment register.
    unsafe {
        core::arch::asm!("mov {0:x}, ss", out(reg) ss, options(nomem, nostack, preserves_flags))
    };
    ss
}

/// A selector the kernel meant for ring 0: on Xen it runs in ring 1, where
/// Xen has raised its descriptors' DPL to 1 (ring compression). A selector
/// that already has RPL >= 1 faulted for a real reason.
fn compressed(selector: u16) -> Option<u16> {
    (selector & 3 == 0 && selector & !7 != 0).then_some(selector | 1)
}

fn read_u32(addr: u32) -> u32 {
    // SAFETY: the kernel's stack or operand, in its own memory.
    unsafe { core::ptr::read_unaligned(addr as *const u32) }
}

fn read_u16(addr: u32) -> u16 {
    // SAFETY: as above.
    unsafe { core::ptr::read_unaligned(addr as *const u16) }
}

/// The instructions that fault only because the kernel is in ring 1
/// (docs/traps-and-privilege.md, "Rings"), with the selector's RPL raised.
#[cfg_attr(feature = "image", optimize(size))]
fn ring_compression(op: Op, frame: &mut TrapFrame, regs: &mut Regs, len: u32) -> Outcome {
    let next = frame.eip.wrapping_add(len);
    let kesp = regs.esp;
    match op {
        Op::RetFar { width, release } if width.bytes() == 4 => {
            let Some(cs) = compressed(read_u16(kesp + 4)) else {
                return Outcome::NotMine;
            };
            let eip = read_u32(kesp);
            resume_at(
                eip,
                u32::from(cs),
                frame.eflags,
                kesp + 8 + u32::from(release),
                current_ss(),
            )
        }
        Op::Iret { width } if width.bytes() == 4 => {
            let Some(cs) = compressed(read_u16(kesp + 4)) else {
                return Outcome::NotMine;
            };
            let eflags = read_u32(kesp + 8);
            // The frame's IF is the kernel's interrupt flag after the return.
            crate::traps::set_saved_mask(frame, eflags & 0x200 == 0);
            resume_at(
                read_u32(kesp),
                u32::from(cs),
                eflags,
                kesp + 12,
                current_ss(),
            )
        }
        Op::MovToSreg {
            sreg: Segment::Ss,
            src,
        } => {
            let Some(ss) = compressed(selector_of(src, regs)) else {
                return Outcome::NotMine;
            };
            resume_at(next, frame.cs, frame.eflags, kesp, ss)
        }
        Op::PopSreg {
            sreg: Segment::Ss,
            width,
        } => {
            let Some(ss) = compressed(read_u16(kesp)) else {
                return Outcome::NotMine;
            };
            resume_at(next, frame.cs, frame.eflags, kesp + width.bytes(), ss)
        }
        Op::LoadFarPointer {
            sreg: Segment::Ss,
            dest,
            mem,
            width,
        } if width.bytes() == 4 => {
            let addr = mem.offset(regs);
            let Some(ss) = compressed(read_u16(addr + 4)) else {
                return Outcome::NotMine;
            };
            let offset = read_u32(addr);
            let esp = if dest == Reg32::Esp {
                offset
            } else {
                regs.set(dest, offset);
                write_back(frame, regs);
                kesp
            };
            resume_at(next, frame.cs, frame.eflags, esp, ss)
        }
        _ => Outcome::NotMine,
    }
}

/// Carries out the instruction at the fault, or says it is the kernel's.
/// Only the kernel's own instructions are emulated: a #GP from user mode
/// (CS RPL 3) is the processor's verdict on the program, as natively.
#[inline(never)]
#[cfg_attr(feature = "image", optimize(size))]
pub fn general_protection(frame: &mut TrapFrame) -> Outcome {
    if frame.cs & 3 == 3 {
        return Outcome::NotMine;
    }
    let mut bytes = [0u8; 15];
    let mut n = read_insn(frame.eip, &mut bytes);
    let insn = match decode(&bytes[..n]) {
        Err(DecodeError::Truncated) if n < 15 => {
            // SAFETY: the instruction continues on the next page, which the
            // processor fetched before faulting, so it is mapped.
            unsafe {
                core::ptr::copy_nonoverlapping(frame.eip as *const u8, bytes.as_mut_ptr(), 15)
            };
            n = 15;
            decode(&bytes[..n])
        }
        other => other,
    };
    let Ok(insn) = insn else {
        return Outcome::NotMine;
    };
    let mut regs = regs_of(frame);
    let rt = runtime();
    let handled = match insn.op {
        Op::In { port, width } => {
            let p = port.port(&regs);
            if matches!(p, 0x20 | 0x21 | 0xA0 | 0xA1) {
                // The kernel reads its interrupt controller: let it see a
                // timer request that came in with interrupts disabled, the
                // VMI alarm's or a PIT edge that is due.
                crate::time::poll();
                let (bus, mut host) = rt.split();
                bus.poll_timer(&mut host);
                // An edge this look latched is flagged for delivery at the
                // kernel's next STI (as in time::catch_up).
                crate::time::note_deliverable();
            }
            let value = if p == xen_vmi_rom::ports::ROM_STATS_PORT && width == Width::Dword {
                crate::xen::hypercall_count()
            } else {
                let (bus, mut host) = rt.split();
                bus.read(&mut host, p, width)
            };
            regs.set_sized(Reg32::Eax, width, value);
            true
        }
        Op::Out { port, width } => {
            let (bus, mut host) = rt.split();
            bus.write(&mut host, port.port(&regs), width, regs.eax & width.mask());
            // An EOI or unmask may leave an interrupt for the kernel: it is
            // flagged, and taken when the handler gives the IF back.
            crate::time::note_deliverable();
            true
        }
        Op::Ins { width, rep } => {
            string_io(frame.eflags, &mut regs, width, rep, true);
            true
        }
        Op::Outs { width, rep, .. } => {
            string_io(frame.eflags, &mut regs, width, rep, false);
            true
        }
        // The ROM runs with events masked; the kernel's flag is the one
        // Xen saved in the frame, restored on the way back.
        Op::Cli => {
            crate::traps::set_saved_mask(frame, true);
            true
        }
        Op::Sti => {
            crate::traps::set_saved_mask(frame, false);
            // STI holds interrupts off for one more instruction, so
            // `sti; hlt` (the idle idiom) halts before any interrupt is
            // taken, and the interrupt ends the halt with its return
            // address past HLT. Emulated apart, an interrupt pending at the
            // STI would be taken before the HLT, which then waits for
            // another: the two are one unit here.
            if bytes.get(usize::from(insn.len)) == Some(&HLT_OPCODE) {
                frame.eip = frame.eip.wrapping_add(1);
                halt();
            }
            true
        }
        Op::Lgdt { mem, width } => {
            let (base, limit) = pseudo_descriptor(mem.offset(&regs), width);
            crate::desc::load_gdt_for(base, limit, frame.cs as u16)
        }
        Op::Lidt { mem, width } => {
            let (base, limit) = pseudo_descriptor(mem.offset(&regs), width);
            crate::desc::load_idt(base, limit);
            true
        }
        Op::Ltr(rm) => crate::desc::load_tr(selector_of(rm, &regs)),
        Op::Lldt(rm) => crate::desc::load_ldt(selector_of(rm, &regs)),
        // What Xen's own emulation refuses reaches the ROM: a CR3 value
        // (Xen reads it as a machine frame; the kernel means its own
        // physical address), CR0.PG, and whatever Xen does not take of
        // CR0/CR4 and INVLPG. They become the VMI calls' actions.
        Op::MovToCr { cr, reg } => {
            let value = regs.get(reg);
            match cr {
                ControlReg::Cr0 => crate::cpu_calls::set_cr0(value),
                ControlReg::Cr2 => crate::cpu_calls::set_cr2(value),
                ControlReg::Cr3 => crate::paging::native_set_cr3(value),
                ControlReg::Cr4 => crate::cpu_calls::set_cr4(value),
            }
            true
        }
        Op::MovFromCr { cr, reg } => {
            let value = match cr {
                ControlReg::Cr0 => crate::cpu_calls::get_cr0(),
                ControlReg::Cr2 => crate::cpu_calls::get_cr2(),
                ControlReg::Cr3 => crate::paging::get_cr3(),
                ControlReg::Cr4 => crate::cpu_calls::get_cr4(),
            };
            regs.set(reg, value);
            true
        }
        Op::Invlpg(mem) => {
            crate::paging::inval_page(mem.offset(&regs));
            true
        }
        Op::Clts => {
            crate::cpu_calls::clts();
            true
        }
        Op::Rdmsr => match crate::cpu_calls::read_msr(regs.ecx) {
            Some(v) => {
                regs.eax = v as u32;
                regs.edx = (v >> 32) as u32;
                true
            }
            None => false,
        },
        Op::Wrmsr => {
            crate::cpu_calls::write_msr(regs.ecx, (u64::from(regs.edx) << 32) | u64::from(regs.eax))
        }
        Op::Hlt => {
            if crate::traps::saved_mask(frame) != 0 {
                // Interrupts disabled: the processor stays halted until
                // NMI, INIT or reset; nothing would ever resume the kernel.
                crate::xen::kernel_stopped(frame.eip);
            }
            halt();
            true
        }
        // SYSEXIT needs CPL 0: it becomes an iret to ring 3, built by the
        // ROM's SYSEXIT path with the kernel's EDX/ECX as they are.
        Op::Sysexit => {
            frame.eip = crate::fast_syscall::sysexit_emulation_alias();
            frame.cs = (frame.cs & 0xFFFF_0000) | u32::from(FLAT_RING1_CS);
            return Outcome::Resume;
        }
        other => return ring_compression(other, frame, &mut regs, u32::from(insn.len)),
    };
    if !handled {
        return Outcome::NotMine;
    }
    write_back(frame, &regs);
    frame.eip = frame.eip.wrapping_add(u32::from(insn.len));
    Outcome::Resume
}

/// HLT's opcode.
const HLT_OPCODE: u8 = 0xF4;

/// A halt with the kernel's interrupts enabled: until an interrupt.
#[cfg_attr(feature = "image", optimize(size))]
fn halt() {
    crate::runtime::flush_console();
    // An interrupt already waiting (an IRQ the kernel saw requested at its
    // PIC before STI, a PIT edge that is due) ends the halt at once, as on
    // the processor: it is flagged pending, so the block below returns and
    // the interrupt is delivered.
    let (bus, mut host) = runtime().split();
    bus.poll_timer(&mut host);
    crate::time::note_deliverable();
    // Blocks until an event is pending (Xen unmasks events while the vCPU
    // is blocked, so a wake-up is never lost).
    let _ = hypervisor().sched_block();
}

/// INS/OUTS, one element per repetition, ES:EDI / DS:ESI taken as flat.
#[cfg_attr(feature = "image", optimize(size))]
fn string_io(eflags: u32, regs: &mut Regs, width: Width, rep: bool, input: bool) {
    let step = if eflags & EFLAGS_DF != 0 {
        0u32.wrapping_sub(width.bytes())
    } else {
        width.bytes()
    };
    let port = regs.edx as u16;
    let count = if rep { regs.ecx } else { 1 };
    let (bus, mut host) = runtime().split();
    for _ in 0..count {
        if input {
            let v = bus.read(&mut host, port, width);
            // SAFETY: the kernel asked for a store to ES:EDI in its own
            // memory; a bad address faults the kernel as it would natively.
            unsafe { write_sized(regs.edi, width, v) };
            regs.edi = regs.edi.wrapping_add(step);
        } else {
            // SAFETY: as above, a load from DS:ESI.
            let v = unsafe { read_sized(regs.esi, width) };
            bus.write(&mut host, port, width, v);
            regs.esi = regs.esi.wrapping_add(step);
        }
        if rep {
            regs.ecx = regs.ecx.wrapping_sub(1);
        }
    }
}

/// # Safety
/// `addr` must be writable for `width` bytes.
unsafe fn write_sized(addr: u32, width: Width, v: u32) {
    // SAFETY: the caller vouches for the address.
    unsafe {
        match width.bytes() {
            1 => core::ptr::write_unaligned(addr as *mut u8, v as u8),
            2 => core::ptr::write_unaligned(addr as *mut u16, v as u16),
            _ => core::ptr::write_unaligned(addr as *mut u32, v),
        }
    }
}

/// # Safety
/// `addr` must be readable for `width` bytes.
unsafe fn read_sized(addr: u32, width: Width) -> u32 {
    // SAFETY: the caller vouches for the address.
    unsafe {
        match width.bytes() {
            1 => u32::from(core::ptr::read_unaligned(addr as *const u8)),
            2 => u32::from(core::ptr::read_unaligned(addr as *const u16)),
            _ => core::ptr::read_unaligned(addr as *const u32),
        }
    }
}
