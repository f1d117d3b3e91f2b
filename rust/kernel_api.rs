// SPDX-License-Identifier: GPL-2.0

//! Memory in a special direct map state, from `mm/unmapped_alloc`.
//!
//! C header: [`include/linux/unmapped_alloc.h`](srctree/include/linux/unmapped_alloc.h)
//!
//! This module is compiled into the `kernel` crate (it lives with the component in
//! `mm/unmapped_alloc/rust/kernel_api.rs`) so that any Rust code in the tree, modules
//! included, can use the allocator through owning types that free on drop.
//!
//! # Examples
//!
//! ```
//! use kernel::unmapped_alloc::UnmappedPages;
//!
//! // Four pages nobody can reach through the direct map, e.g. to lend to firmware.
//! let pages = UnmappedPages::alloc(GFP_KERNEL, 2)?;
//! assert_eq!(pages.nr_pages(), 4);
//! let _phys = pages.phys_addr();
//! // Dropping `pages` frees them.
//! # Ok::<(), Error>(())
//! ```

use crate::{alloc::Flags, bindings, error::code::ENOMEM, error::Result};
use core::ptr::NonNull;

/// Largest order an allocation can have: one PMD-sized block.
pub fn max_order() -> u32 {
    // SAFETY: No requirements.
    unsafe { bindings::ua_pmd_order() }
}

/// 2^order contiguous pages removed from the kernel direct map, freed on drop.
///
/// There is no kernel virtual address: map the pages elsewhere by their frame number or
/// physical address, or hand them to another entity. Their contents are zero, unless
/// allocated with [`UnmappedPages::alloc_noscrub`].
///
/// # Invariants
///
/// `page` is the first page of a live allocation of order `order` from
/// `unmapped_alloc_node()` that this object owns.
pub struct UnmappedPages {
    page: NonNull<bindings::page>,
    order: u32,
}

// SAFETY: The allocation is not tied to the allocating thread; it may be freed anywhere.
unsafe impl Send for UnmappedPages {}
// SAFETY: Shared references only read the frame number and order.
unsafe impl Sync for UnmappedPages {}

impl UnmappedPages {
    fn from_raw(page: *mut bindings::page, order: u32) -> Result<Self> {
        let page = NonNull::new(page).ok_or(ENOMEM)?;
        // INVARIANT: A successful allocation of `order`, now owned by us.
        Ok(Self { page, order })
    }

    /// Allocates 2^`order` zeroed unmapped pages on node `nid` (or `NUMA_NO_NODE`).
    ///
    /// With flags that cannot sleep (`GFP_ATOMIC`, `GFP_NOWAIT`), only memory that is
    /// already unmapped is used and the call fails fast otherwise.
    pub fn alloc_node(nid: i32, flags: Flags, order: u32) -> Result<Self> {
        // SAFETY: Any arguments are accepted; bad ones make the call return NULL.
        Self::from_raw(
            unsafe { bindings::unmapped_alloc_node(nid, flags.as_raw(), order) },
            order,
        )
    }

    /// Allocates 2^`order` zeroed unmapped pages on the local node.
    pub fn alloc(flags: Flags, order: u32) -> Result<Self> {
        Self::alloc_node(bindings::NUMA_NO_NODE, flags, order)
    }

    /// Allocates 2^`order` unmapped pages whose previous contents are not scrubbed, for
    /// users that initialise all of the memory themselves.
    pub fn alloc_noscrub(nid: i32, flags: Flags, order: u32) -> Result<Self> {
        // SAFETY: Any arguments are accepted; bad ones make the call return NULL.
        Self::from_raw(
            unsafe { bindings::unmapped_alloc_noscrub(nid, flags.as_raw(), order) },
            order,
        )
    }

    /// The first `struct page`, for C interfaces that take one.
    pub fn as_page_ptr(&self) -> *mut bindings::page {
        self.page.as_ptr()
    }

    /// Page frame number of the first page.
    pub fn pfn(&self) -> usize {
        // SAFETY: `page` is a valid page by the type invariant.
        unsafe { bindings::ua_page_to_pfn(self.page.as_ptr()) }
    }

    /// Physical address of the first page.
    pub fn phys_addr(&self) -> u64 {
        (self.pfn() as u64) << crate::page::PAGE_SHIFT
    }

    /// NUMA node of the pages.
    pub fn nid(&self) -> i32 {
        // SAFETY: `page` is a valid page by the type invariant.
        unsafe { bindings::ua_pfn_to_nid(self.pfn()) }
    }

    /// Order of the allocation.
    pub fn order(&self) -> u32 {
        self.order
    }

    /// Number of pages.
    pub fn nr_pages(&self) -> usize {
        1 << self.order
    }
}

impl Drop for UnmappedPages {
    fn drop(&mut self) {
        // SAFETY: By the type invariant we own this allocation of `order`.
        unsafe { bindings::unmapped_free(self.page.as_ptr(), self.order) };
    }
}
