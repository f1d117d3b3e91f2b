// SPDX-License-Identifier: GPL-2.0

//! Per-CPU values: [`PerCpu`] holds a value per CPU that only code running on that
//! CPU ([`ThisCpu`]) uses, one user at a time, or anyone while that CPU is offline.

use core::{
    cell::UnsafeCell,
    marker::PhantomData,
    ops::{Deref, DerefMut},
    sync::atomic::{
        compiler_fence, AtomicBool,
        Ordering::{Relaxed, SeqCst},
    },
};
use kernel::{bindings, prelude::*};

/// Proof that the holder runs on CPU `cpu` and stays there: preemption is off (or the CPU
/// is offline and [`PerCpu::each_cpu`] holds the hotplug lock).
///
/// Made only by [`PreemptOff`] and [`PerCpu::each_cpu`]; borrowed from the guard, or never
/// leaves `each_cpu`'s closure.
pub(crate) struct ThisCpu {
    cpu: usize,
    _not_send: PhantomData<*mut ()>,
}

impl ThisCpu {
    /// The CPU's id.
    #[inline(always)]
    pub(crate) fn id(&self) -> usize {
        self.cpu
    }
}

/// Preemption off on the current CPU, which cannot change until the guard is dropped. The
/// holder must not sleep. Interrupts stay on: they are what makes this cheaper than
/// disabling them, which ends a translation block under QEMU and costs a pipeline flush on
/// real hardware.
///
/// A guard rather than only a closure ([`on_this_cpu`]): the fast paths use it directly,
/// so that nothing stands between them and their caller's inlining.
pub(crate) struct PreemptOff {
    this: ThisCpu,
}

impl PreemptOff {
    /// Disables preemption.
    #[inline(always)]
    pub(crate) fn new() -> Self {
        // SAFETY: Any context may disable preemption; `drop()` enables it again.
        unsafe { bindings::preempt_disable() };
        // SAFETY: Preemption is off, so the CPU number stays valid until it is enabled
        // again, which only `drop()` does.
        let cpu = unsafe { bindings::raw_smp_processor_id() } as usize;
        Self {
            this: ThisCpu {
                cpu,
                _not_send: PhantomData,
            },
        }
    }

    /// The CPU the holder runs on, for as long as the guard lives.
    #[inline(always)]
    pub(crate) fn this(&self) -> &ThisCpu {
        &self.this
    }
}

impl Drop for PreemptOff {
    #[inline(always)]
    fn drop(&mut self) {
        // SAFETY: `new()` disabled preemption; this is its one matching enable (the guard
        // is neither `Clone` nor `Send`, so it is dropped once, on this CPU).
        unsafe { bindings::preempt_enable() };
    }
}

/// Runs `f` with preemption off on the current CPU (see [`PreemptOff`]).
#[inline(always)]
pub(crate) fn on_this_cpu<R>(f: impl FnOnce(&ThisCpu) -> R) -> R {
    let guard = PreemptOff::new();
    f(guard.this())
}

/// The value of one CPU, on its own cache line.
#[repr(align(64))]
struct CpuSlot<L, S> {
    /// A [`CpuLocal`] of the slot exists. Only code on the slot's CPU reads or writes it,
    /// so interrupts are the only concurrency: plain loads and stores with compiler
    /// barriers (`local_trylock()` in C).
    busy: AtomicBool,
    local: UnsafeCell<L>,
    shared: S,
}

/// A value per possible CPU: `L`, which only code on its CPU uses, one at a time (see
/// [`PerCpu::local`]), and `S`, which anyone may read (counters the CPU updates).
pub(crate) struct PerCpu<L, S> {
    slots: KVec<CpuSlot<L, S>>,
}

// SAFETY: `local` of slot `i` is only used through a `CpuLocal`, made by `local()` with a
// `ThisCpu` of CPU `i`, while the slot's `busy` is set. Code on CPU `i` with preemption off
// is one task, and interrupts on CPU `i` (callers are never in NMI context): one that finds
// `busy` clear uses the slot and clears `busy` again before the interrupted code goes on,
// and one that finds it set leaves the slot alone. For an offline CPU `i`, `each_cpu` is
// the only user, serialised by its mutex and the hotplug lock. So `L` is never used
// concurrently, it only moves between CPUs (`L: Send`). `S` is shared as is.
unsafe impl<L: Send, S: Sync> Sync for PerCpu<L, S> {}

// SAFETY: Owning a `PerCpu` owns its `L` and `S` values.
unsafe impl<L: Send, S: Send> Send for PerCpu<L, S> {}

/// Exclusive use of the current CPU's value in a [`PerCpu`]; see [`PerCpu::local`].
pub(crate) struct CpuLocal<'a, L, S> {
    slot: &'a CpuSlot<L, S>,
}

impl<L, S> CpuLocal<'_, L, S> {
    /// The CPU's shared part.
    #[inline]
    pub(crate) fn shared(&self) -> &S {
        &self.slot.shared
    }
}

impl<L, S> Deref for CpuLocal<'_, L, S> {
    type Target = L;

    #[inline]
    fn deref(&self) -> &L {
        // SAFETY: `busy` makes this the only `CpuLocal` of the slot, see `PerCpu`.
        unsafe { &*self.slot.local.get() }
    }
}

impl<L, S> DerefMut for CpuLocal<'_, L, S> {
    #[inline]
    fn deref_mut(&mut self) -> &mut L {
        // SAFETY: As for `deref`, and `self` is borrowed mutably.
        unsafe { &mut *self.slot.local.get() }
    }
}

impl<L, S> Drop for CpuLocal<'_, L, S> {
    #[inline]
    fn drop(&mut self) {
        // All uses of the value come before the slot is free again.
        compiler_fence(SeqCst);
        self.slot.busy.store(false, Relaxed);
    }
}

impl<L, S> PerCpu<L, S> {
    /// One value per possible CPU id, from `make`.
    pub(crate) fn new(mut make: impl FnMut() -> (L, S)) -> Result<Self> {
        let n = kernel::cpu::nr_cpu_ids() as usize;
        let mut slots = KVec::with_capacity(n, GFP_KERNEL)?;
        for _ in 0..n {
            let (local, shared) = make();
            slots.push(
                CpuSlot {
                    busy: AtomicBool::new(false),
                    local: UnsafeCell::new(local),
                    shared,
                },
                GFP_KERNEL,
            )?;
        }
        Ok(Self { slots })
    }

    /// The value of the CPU of `cpu`; `None` if it is in use further up the stack (the
    /// caller interrupted its user, or is its user).
    #[inline(always)]
    pub(crate) fn local<'a>(&'a self, cpu: &'a ThisCpu) -> Option<CpuLocal<'a, L, S>> {
        let slot = self.slots.get(cpu.cpu)?;
        if slot.busy.load(Relaxed) {
            return None;
        }
        slot.busy.store(true, Relaxed);
        // No use of the value before the slot is taken.
        compiler_fence(SeqCst);
        Some(CpuLocal { slot })
    }

    /// The shared part of the CPU of `cpu`, without taking its slot.
    #[inline(always)]
    pub(crate) fn shared_of(&self, cpu: &ThisCpu) -> Option<&S> {
        self.slots.get(cpu.cpu).map(|s| &s.shared)
    }

    /// The shared part of CPU `i`, without taking its slot.
    pub(crate) fn shared_at(&self, i: usize) -> Option<&S> {
        self.slots.get(i).map(|s| &s.shared)
    }

    /// The shared parts of all CPUs.
    pub(crate) fn shared(&self) -> impl Iterator<Item = &S> {
        self.slots.iter().map(|s| &s.shared)
    }

    /// For every possible CPU: `take` something out of its value, then hand it to
    /// `then`. For an online CPU both run on that CPU, `take` with preemption off; for
    /// an offline one, here. Process context; sleeps.
    pub(crate) fn each_cpu<T, F, G>(&self, take: F, then: G)
    where
        F: Fn(&mut CpuLocal<'_, L, S>) -> T + Sync,
        G: Fn(T) + Sync,
    {
        struct Call<'a, L, S, F, G> {
            values: &'a PerCpu<L, S>,
            take: &'a F,
            then: &'a G,
        }

        extern "C" fn one<L, S, T, F, G>(
            info: *mut kernel::ffi::c_void,
            cpu: kernel::ffi::c_uint,
            online: bool,
        ) where
            F: Fn(&mut CpuLocal<'_, L, S>) -> T + Sync,
            G: Fn(T) + Sync,
        {
            // SAFETY: `info` is the `Call` below, alive until `ua_each_cpu()` returns.
            let call = unsafe { &*(info as *const Call<'_, L, S, F, G>) };
            let cpu = cpu as usize;
            if crate::mutant::is(crate::mutant::Mutant::SkipLastCpu)
                && cpu + 1 == kernel::cpu::nr_cpu_ids() as usize
            {
                return;
            }
            let take = |this: &ThisCpu| call.values.local(this).map(|mut v| (call.take)(&mut v));
            let taken = if online {
                // In a kworker bound to `cpu`.
                on_this_cpu(|this| if this.cpu == cpu { take(this) } else { None })
            } else {
                // `cpu` is offline and stays so (`ua_each_cpu()` holds the hotplug lock
                // and its own mutex): nothing else can use its value.
                take(&ThisCpu {
                    cpu,
                    _not_send: PhantomData,
                })
            };
            if let Some(t) = taken {
                (call.then)(t);
            }
        }

        let call = Call {
            values: self,
            take: &take,
            then: &then,
        };
        // SAFETY: `one` matches the callback type; `call` outlives the call, which waits
        // for every CPU. `F` and `G` are `Sync`: they run on other CPUs.
        unsafe {
            bindings::ua_each_cpu(
                Some(one::<L, S, T, F, G>),
                core::ptr::from_ref(&call).cast_mut().cast(),
            )
        };
    }
}
