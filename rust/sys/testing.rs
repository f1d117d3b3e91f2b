// SPDX-License-Identifier: GPL-2.0

//! Concurrency for the KUnit suites: code run at the same time on several CPUs, and
//! calls made in interrupt context.

use core::{
    ffi::c_void,
    sync::atomic::{
        AtomicPtr, AtomicUsize,
        Ordering::{Acquire, Release},
    },
};
use kernel::{bindings, error::to_result, prelude::*};

/// Runs `body(shared, i)` for every `i < n` at the same time, each in a kthread bound to
/// its own online CPU (the `i`-th), and returns when all have returned. `ENODEV` if
/// fewer than `n` CPUs are online. Sleeps.
pub(crate) fn on_cpus<T: Sync>(shared: &T, n: u32, body: fn(&T, u32)) -> Result {
    struct Call<'a, T> {
        shared: &'a T,
        body: fn(&T, u32),
    }

    extern "C" fn one<T: Sync>(info: *mut c_void, i: u32) {
        // SAFETY: `info` is the `Call` below, alive until `ua_test_on_cpus()` returns,
        // which waits for every thread.
        let call = unsafe { &*info.cast::<Call<'_, T>>() };
        (call.body)(call.shared, i);
    }

    let call = Call { shared, body };
    // SAFETY: `one` matches the callback type and `call` outlives every call of it (see
    // above); `T` is `Sync`, so `shared` may be used on the other CPUs.
    to_result(unsafe {
        bindings::ua_test_on_cpus(
            Some(one::<T>),
            core::ptr::from_ref(&call).cast_mut().cast(),
            n,
        )
    })
}

/// A timer that calls one function, with one argument, in interrupt context on the
/// CPU that started it; see [`with_timer`].
pub(crate) struct Timer<'a, T> {
    shared: &'a T,
    f: fn(&T),
    fired: AtomicUsize,
    raw: AtomicPtr<bindings::ua_test_timer>,
}

impl<T: Sync> Timer<'_, T> {
    extern "C" fn call(info: *mut c_void) {
        // SAFETY: `info` is the `Timer` of `with_timer`, which stops the timer before
        // the `Timer` goes away.
        let timer = unsafe { &*info.cast::<Self>() };
        (timer.f)(timer.shared);
        timer.fired.fetch_add(1, Release);
    }

    /// (Re)starts the timer to call `f(shared)` in `ns` nanoseconds, in hard interrupt
    /// context on this CPU (a softirq on PREEMPT_RT), as the allocator's interrupt
    /// callers are. The caller must not move to another CPU before it expires.
    pub(crate) fn start(&self, ns: u64) {
        // SAFETY: `raw` is the live timer of `with_timer`.
        unsafe { bindings::ua_test_timer_start(self.raw.load(Acquire), ns) }
    }

    /// How many times the timer has called `f`.
    pub(crate) fn fired(&self) -> usize {
        self.fired.load(Acquire)
    }
}

/// Runs `body` with a [`Timer`] that calls `f(shared)`, then stops the timer (waiting
/// for a call in progress). `ENOMEM` if the timer cannot be made.
pub(crate) fn with_timer<T: Sync, R>(
    shared: &T,
    f: fn(&T),
    body: impl FnOnce(&Timer<'_, T>) -> R,
) -> Result<R> {
    let timer = KBox::new(
        Timer {
            shared,
            f,
            fired: AtomicUsize::new(0),
            raw: AtomicPtr::new(core::ptr::null_mut()),
        },
        GFP_KERNEL,
    )?;
    // SAFETY: `call` matches the callback type; the `Timer` is boxed, so its address
    // stays valid until it is dropped below, after the timer was stopped.
    let raw = unsafe {
        bindings::ua_test_timer_new(
            Some(Timer::<T>::call),
            core::ptr::from_ref(&*timer).cast_mut().cast(),
        )
    };
    if raw.is_null() {
        return Err(ENOMEM);
    }
    timer.raw.store(raw, Release);
    let r = body(&timer);
    // SAFETY: `raw` came from `ua_test_timer_new()` and is freed once; after this the
    // callback no longer runs.
    unsafe { bindings::ua_test_timer_free(raw) };
    Ok(r)
}
