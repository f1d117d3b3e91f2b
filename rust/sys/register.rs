// SPDX-License-Identifier: GPL-2.0

//! Registration with the kernel (the shrinker, the shutdown hook, the hibernation
//! notifier, the workqueue,
//! values published once at initialisation) and the out-parameters of C callers.

use core::sync::atomic::{
    AtomicPtr,
    Ordering::{Acquire, SeqCst},
};
use kernel::{bindings, error::to_result, prelude::*};

/// Registers the shrinker that returns free blocks under memory pressure.
pub(crate) fn register_shrinker() -> Result {
    // SAFETY: Called once at initialisation; the callbacks are defined in the crate root.
    to_result(unsafe { bindings::ua_register_shrinker() })
}

/// Registers the shutdown hook that runs `unmapped_alloc_unshare_all()` once devices
/// are shut down, on reboot, power-off, halt and kexec.
pub(crate) fn register_shutdown_hook() -> Result {
    // SAFETY: Called once at initialisation; the callback is defined in the crate root.
    to_result(unsafe { bindings::ua_register_shutdown_hook() })
}

/// Registers the hibernation notifier that refuses hibernation while unmapped pages
/// are in use (they would be copied into the image).
pub(crate) fn register_pm_notifier() -> Result {
    // SAFETY: Called once at initialisation; the callback is in register.c.
    to_result(unsafe { bindings::ua_register_pm_notifier() })
}

/// Whether hibernation may proceed: `EBUSY` while unmapped pages are in use.
#[cfg(CONFIG_UNMAPPED_ALLOC_KUNIT_TEST)]
pub(crate) fn hibernation_check() -> Result {
    // SAFETY: No requirements; reads the component's counters.
    to_result(unsafe { bindings::ua_hibernation_check() })
}

/// Stores `value` through a pointer a C caller passed for it (ignored if NULL).
///
/// # Safety
///
/// `dst` is NULL or valid for writing a `T`.
pub(crate) unsafe fn write_out<T>(dst: *mut T, value: T) {
    if !dst.is_null() {
        // SAFETY: Not NULL, so valid for writing a `T` (the caller's contract).
        unsafe { dst.write(value) };
        // The C caller reads it: initialised to KMSAN, which does not see Rust's stores.
        super::detectors::written(dst as usize, core::mem::size_of::<T>());
    }
}

/// The default unbound workqueue, `system_dfl_wq`, which replaces `system_unbound_wq`
/// (7.2 warns about work queued on the latter; its Rust crate has no wrapper yet).
pub(crate) fn system_dfl() -> &'static kernel::workqueue::Queue {
    // SAFETY: `system_dfl_wq` is a C global workqueue, created at boot before any
    // initcall and never destroyed.
    unsafe { kernel::workqueue::Queue::from_raw(bindings::system_dfl_wq) }
}

/// A value set once and then read without locks for good, like
/// [`kernel::sync::SetOnce`], but read with a plain load: the kernel's atomics are
/// out-of-line C calls unless the tree has `CONFIG_RUST_INLINE_HELPERS`, and every call
/// of the C API reads one of these. The value is never dropped (the component is built
/// in).
pub(crate) struct Published<T>(AtomicPtr<T>);

impl<T> Published<T> {
    /// Nothing published yet.
    pub(crate) const fn new() -> Self {
        Self(AtomicPtr::new(core::ptr::null_mut()))
    }
}

impl<T: Send + Sync> Published<T> {
    /// Publishes `value`; `false` (and `value` dropped) if something was published already.
    pub(crate) fn publish(&self, value: T) -> Result<bool> {
        let p = KBox::into_raw(KBox::new(value, GFP_KERNEL)?);
        if self
            .0
            .compare_exchange(core::ptr::null_mut(), p, SeqCst, Acquire)
            .is_ok()
        {
            return Ok(true);
        }
        // SAFETY: `p` came from `KBox::into_raw` above and was not published.
        drop(unsafe { KBox::from_raw(p) });
        Ok(false)
    }

    /// The published value.
    #[inline]
    pub(crate) fn get(&self) -> Option<&T> {
        // SAFETY: A non-null pointer was published by `publish` from a box that is never
        // freed, and only shared from then on (`T: Sync`).
        unsafe { self.0.load(Acquire).as_ref() }
    }
}
