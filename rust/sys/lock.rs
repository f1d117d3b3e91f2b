// SPDX-License-Identifier: GPL-2.0

//! The IRQ-safe spinlock: [`IrqSpinLock`] is a `spinlock_t` taken with interrupts
//! disabled, so the allocators can be called from any context.

use kernel::{
    bindings,
    sync::lock::{Backend, Lock},
};

/// A `spinlock_t` taken with `spin_lock_irqsave()`.
pub(crate) struct IrqSpinLockBackend;

/// A spinlock that disables interrupts, usable from any context.
pub(crate) type IrqSpinLock<T> = Lock<T, IrqSpinLockBackend>;

/// Creates an [`IrqSpinLock`] initialiser with a static lock class.
macro_rules! new_irq_spinlock {
    ($inner:expr, $name:literal) => {
        $crate::sys::IrqSpinLock::new($inner, $name, kernel::static_lock_class!())
    };
}
pub(crate) use new_irq_spinlock;

// SAFETY: `spinlock_t` provides mutual exclusion; the saved flags are restored on unlock by
// the same guard that saved them.
unsafe impl Backend for IrqSpinLockBackend {
    type State = bindings::spinlock_t;
    type GuardState = usize;

    unsafe fn init(
        ptr: *mut Self::State,
        name: *const kernel::ffi::c_char,
        key: *mut bindings::lock_class_key,
    ) {
        // SAFETY: The caller passes a valid lock slot, name and key.
        unsafe { bindings::__spin_lock_init(ptr, name, key) }
    }

    unsafe fn lock(ptr: *mut Self::State) -> Self::GuardState {
        // SAFETY: The caller passes an initialised lock.
        unsafe { bindings::ua_spin_lock_irqsave(ptr) }
    }

    unsafe fn try_lock(_ptr: *mut Self::State) -> Option<Self::GuardState> {
        // Not needed by the component.
        None
    }

    unsafe fn unlock(ptr: *mut Self::State, guard_state: &Self::GuardState) {
        // SAFETY: The caller holds the lock; `guard_state` are the flags saved by `lock`.
        unsafe { bindings::ua_spin_unlock_irqrestore(ptr, *guard_state) }
    }

    unsafe fn assert_is_held(ptr: *mut Self::State) {
        // SAFETY: The caller passes an initialised lock.
        unsafe { bindings::ua_assert_spin_locked(ptr) }
    }
}
