// SPDX-License-Identifier: GPL-2.0

//! The C API's dedicated caches as C callers see them: the opaque
//! `struct kmem_cache_decrypted *` handles and the names passed to create them.

use kernel::{bindings, prelude::*};

/// The bytes of a C string passed by a C caller, `EINVAL` for NULL.
///
/// # Safety
///
/// `name` is NULL or points at a NUL-terminated string that stays valid and unchanged
/// for `'a`.
pub(crate) unsafe fn c_name<'a>(name: *const kernel::ffi::c_char) -> Result<&'a [u8]> {
    if name.is_null() {
        return Err(EINVAL);
    }
    // SAFETY: Not NULL, so a NUL-terminated string valid for `'a` (the caller's contract).
    Ok(unsafe { kernel::str::CStr::from_char_ptr(name) }.to_bytes())
}

/// Makes a C handle (the `struct kmem_cache_decrypted *` of the C API) of `value`.
pub(crate) fn into_handle<T>(value: KBox<T>) -> *mut bindings::kmem_cache_decrypted {
    KBox::into_raw(value).cast()
}

/// Runs `f` on the object behind a handle made by [`into_handle`]; `None` for NULL.
///
/// # Safety
///
/// `handle` is NULL or came from `into_handle::<T>()` and was not given to
/// [`take_cache`] yet, and stays so until this returns.
pub(crate) unsafe fn with_cache<T, R>(
    handle: *mut bindings::kmem_cache_decrypted,
    f: impl FnOnce(&T) -> R,
) -> Option<R> {
    let p = handle.cast::<T>();
    // SAFETY: Not NULL, so a live `T` made by `into_handle()` (the caller's contract).
    (!p.is_null()).then(|| f(unsafe { &*p }))
}

/// Takes back ownership of a handle made by [`into_handle`]; `None` for NULL.
///
/// # Safety
///
/// `handle` is NULL or came from `into_handle::<T>()`, was not taken back yet, and
/// nobody uses it any more.
pub(crate) unsafe fn take_cache<T>(handle: *mut bindings::kmem_cache_decrypted) -> Option<KBox<T>> {
    let p = handle.cast::<T>();
    // SAFETY: Not NULL, so it came from `KBox::into_raw()` in `into_handle()` and is
    // given up here (the caller's contract).
    (!p.is_null()).then(|| unsafe { KBox::from_raw(p) })
}
