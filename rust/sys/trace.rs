// SPDX-License-Identifier: GPL-2.0

//! Trace events, see `include/trace/events/unmapped_alloc.h`.

kernel::declare_trace! {
    unsafe fn unmapped_alloc_block_convert(kind: i32, pfn: usize, order: u32, ret: i32);
    unsafe fn unmapped_alloc_block_release(kind: i32, pfn: usize, order: u32, ret: i32);
    unsafe fn unmapped_alloc_pages(kind: i32, pfn: usize, order: u32, gfp: u32);
    unsafe fn unmapped_free_pages(kind: i32, pfn: usize, order: u32);
    unsafe fn kmalloc_decrypted(ptr: usize, bytes_req: usize, bytes_alloc: usize, gfp: u32);
    unsafe fn kfree_decrypted(ptr: usize);
}

/// A block was converted (`ret == 0`) or its conversion failed.
pub(crate) fn block_convert(kind: i32, pfn: usize, order: u32, ret: i32) {
    // SAFETY: The event takes plain values; it is defined in `trace.c`.
    unsafe { unmapped_alloc_block_convert(kind, pfn, order, ret) }
}

/// A block was converted back and released, or leaked (`ret != 0`).
pub(crate) fn block_release(kind: i32, pfn: usize, order: u32, ret: i32) {
    // SAFETY: As above.
    unsafe { unmapped_alloc_block_release(kind, pfn, order, ret) }
}

/// Pages were allocated.
pub(crate) fn pages(kind: i32, pfn: usize, order: u32, gfp: u32) {
    // SAFETY: As above.
    unsafe { unmapped_alloc_pages(kind, pfn, order, gfp) }
}

/// Pages were freed.
pub(crate) fn free_pages(kind: i32, pfn: usize, order: u32) {
    // SAFETY: As above.
    unsafe { unmapped_free_pages(kind, pfn, order) }
}

/// A decrypted object was allocated.
pub(crate) fn kmalloc(ptr: usize, req: usize, alloc: usize, gfp: u32) {
    // SAFETY: As above.
    unsafe { kmalloc_decrypted(ptr, req, alloc, gfp) }
}

/// A decrypted object was freed.
pub(crate) fn kfree(ptr: usize) {
    // SAFETY: As above.
    unsafe { kfree_decrypted(ptr) }
}

/// A probe counting `unmapped_alloc_pages` events, for the tests.
#[cfg(CONFIG_UNMAPPED_ALLOC_KUNIT_TEST)]
pub(crate) struct PagesProbe;

#[cfg(CONFIG_UNMAPPED_ALLOC_KUNIT_TEST)]
impl PagesProbe {
    /// Registers the probe and resets its count.
    pub(crate) fn new() -> kernel::error::Result<Self> {
        // SAFETY: Registers a C probe defined in `trace.c`; undone on drop.
        kernel::error::to_result(unsafe { kernel::bindings::ua_trace_probe_register() })?;
        Ok(Self)
    }

    /// Events seen since registration.
    pub(crate) fn hits(&self) -> i32 {
        // SAFETY: Reads an atomic counter.
        unsafe { kernel::bindings::ua_trace_probe_hits() }
    }
}

#[cfg(CONFIG_UNMAPPED_ALLOC_KUNIT_TEST)]
impl Drop for PagesProbe {
    fn drop(&mut self) {
        // SAFETY: The probe was registered by `new`.
        unsafe { kernel::bindings::ua_trace_probe_unregister() };
    }
}
