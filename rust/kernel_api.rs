// SPDX-License-Identifier: GPL-2.0

//! Memory in a special direct map state, from `mm/unmapped_alloc`.
//!
//! C header: [`include/linux/unmapped_alloc.h`](srctree/include/linux/unmapped_alloc.h)
//!
//! This module is the `kernel` crate's `unmapped_alloc` (kept with the component as
//! `mm/unmapped_alloc/rust/kernel_api.rs`) so that any Rust code in the tree, modules
//! included, can use the allocator through owning types that free on drop. Its examples
//! run as KUnit tests with `CONFIG_RUST_KERNEL_DOCTESTS`.
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

use crate::{
    alloc::Flags,
    bindings,
    error::code::{EINVAL, ENOMEM},
    error::Result,
};
use core::ptr::NonNull;

/// Largest order an allocation can have: one block (2 MiB).
///
/// # Examples
///
/// ```
/// use kernel::unmapped_alloc::{max_order, UnmappedPages};
///
/// // One whole block: 2 MiB with 4 KiB pages.
/// let block = UnmappedPages::alloc(GFP_KERNEL, max_order())?;
/// assert_eq!(block.nr_pages(), 1 << max_order());
/// # Ok::<(), Error>(())
/// ```
pub fn max_order() -> u32 {
    // SAFETY: No requirements.
    unsafe { bindings::ua_block_order() }
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
///
/// # Examples
///
/// ```
/// use kernel::unmapped_alloc::{page_state, PageState, UnmappedPages};
///
/// let pages = UnmappedPages::alloc(GFP_KERNEL, 1)?;
/// assert_eq!(page_state(pages.pfn()), PageState::UnmappedUsed);
/// assert_eq!(page_state(pages.pfn() + 1), PageState::UnmappedUsed);
/// let pfn = pages.pfn();
/// drop(pages);
/// assert_ne!(page_state(pfn), PageState::UnmappedUsed);
/// # Ok::<(), Error>(())
/// ```
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
    ///
    /// # Examples
    ///
    /// ```
    /// use kernel::unmapped_alloc::{page_state, PageState, UnmappedPages};
    ///
    /// // Node 0 is preferred: memory of another node that is already unmapped may serve
    /// // the call before a new block is unmapped on node 0.
    /// let pages = UnmappedPages::alloc_node(0, GFP_KERNEL, 0)?;
    /// assert_eq!(page_state(pages.pfn()), PageState::UnmappedUsed);
    /// // An impossible order fails (with a one-time warning in the log).
    /// assert!(UnmappedPages::alloc_node(0, GFP_KERNEL, 64).is_err());
    /// # Ok::<(), Error>(())
    /// ```
    pub fn alloc_node(nid: i32, flags: Flags, order: u32) -> Result<Self> {
        // SAFETY: Any arguments are accepted; bad ones make the call return NULL.
        let page = unsafe { bindings::unmapped_alloc_node(nid, flags.as_raw(), order) };
        Self::from_raw(page, order)
    }

    /// Allocates 2^`order` zeroed unmapped pages on the local node.
    pub fn alloc(flags: Flags, order: u32) -> Result<Self> {
        Self::alloc_node(bindings::NUMA_NO_NODE, flags, order)
    }

    /// Allocates 2^`order` unmapped pages whose previous contents are not scrubbed, for
    /// users that initialise all of the memory themselves.
    ///
    /// # Examples
    ///
    /// ```
    /// use kernel::{
    ///     bindings::NUMA_NO_NODE,
    ///     unmapped_alloc::{page_state, PageState, UnmappedPages},
    /// };
    ///
    /// // The caller fills the pages itself, so the scrub is skipped; they are unmapped
    /// // all the same.
    /// let pages = UnmappedPages::alloc_noscrub(NUMA_NO_NODE, GFP_KERNEL, 1)?;
    /// assert_eq!(page_state(pages.pfn() + 1), PageState::UnmappedUsed);
    /// # Ok::<(), Error>(())
    /// ```
    pub fn alloc_noscrub(nid: i32, flags: Flags, order: u32) -> Result<Self> {
        // SAFETY: Any arguments are accepted; bad ones make the call return NULL.
        let page = unsafe { bindings::unmapped_alloc_noscrub(nid, flags.as_raw(), order) };
        Self::from_raw(page, order)
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

/// 2^order contiguous zeroed pages shared with the host of a confidential guest
/// (decrypted), freed on drop.
///
/// The pages stay in the direct map. The host may read and write them at any time, so
/// access them through [`DecryptedPages::as_ptr`] with volatile or copying accesses,
/// never through references.
///
/// # Invariants
///
/// `page` is the first page of a live allocation of order `order` from
/// `alloc_decrypted_pages_node()` that this object owns.
///
/// # Examples
///
/// ```
/// use kernel::unmapped_alloc::{page_state, DecryptedPages, PageState};
///
/// // A page to share with the host, e.g. a ring of a paravirtual device.
/// let ring = DecryptedPages::alloc(GFP_KERNEL, 0)?;
/// assert_eq!(page_state(ring.pfn()), PageState::SharedUsed);
/// ring.write(0, b"hello")?;
/// # Ok::<(), Error>(())
/// ```
pub struct DecryptedPages {
    page: NonNull<bindings::page>,
    order: u32,
}

// SAFETY: The allocation is not tied to the allocating thread; it may be freed anywhere.
unsafe impl Send for DecryptedPages {}
// SAFETY: Shared references only read the frame number and order.
unsafe impl Sync for DecryptedPages {}

impl DecryptedPages {
    /// Allocates 2^`order` zeroed decrypted pages on node `nid` (or `NUMA_NO_NODE`).
    ///
    /// With flags that cannot sleep only memory that is already decrypted is used.
    pub fn alloc_node(nid: i32, flags: Flags, order: u32) -> Result<Self> {
        // SAFETY: Any arguments are accepted; bad ones make the call return NULL.
        let page = unsafe { bindings::alloc_decrypted_pages_node(nid, flags.as_raw(), order) };
        let page = NonNull::new(page).ok_or(ENOMEM)?;
        // INVARIANT: A successful allocation of `order`, now owned by us.
        Ok(Self { page, order })
    }

    /// Allocates 2^`order` zeroed decrypted pages on the local node.
    ///
    /// # Examples
    ///
    /// ```
    /// use kernel::unmapped_alloc::DecryptedPages;
    ///
    /// // Zeroed before they were shared.
    /// let pages = DecryptedPages::alloc(GFP_KERNEL, 0)?;
    /// let mut buf = [0xffu8; 16];
    /// pages.read(100, &mut buf)?;
    /// assert_eq!(buf, [0u8; 16]);
    /// # Ok::<(), Error>(())
    /// ```
    pub fn alloc(flags: Flags, order: u32) -> Result<Self> {
        Self::alloc_node(bindings::NUMA_NO_NODE, flags, order)
    }

    /// Kernel virtual address of the first byte.
    ///
    /// # Examples
    ///
    /// ```
    /// use kernel::{page::PAGE_SIZE, unmapped_alloc::DecryptedPages};
    ///
    /// let pages = DecryptedPages::alloc(GFP_KERNEL, 0)?;
    /// assert_eq!(pages.as_ptr() as usize % PAGE_SIZE, 0);
    /// # Ok::<(), Error>(())
    /// ```
    pub fn as_ptr(&self) -> *mut u8 {
        // SAFETY: Decrypted pages are in the direct map; this is address arithmetic.
        unsafe { bindings::ua_pfn_to_virt(self.pfn()) as *mut u8 }
    }

    /// Copies `data` into the pages at `offset`, byte by byte with volatile writes.
    ///
    /// # Examples
    ///
    /// ```
    /// use kernel::unmapped_alloc::DecryptedPages;
    ///
    /// let pages = DecryptedPages::alloc(GFP_KERNEL, 0)?;
    /// pages.write(8, &[1, 2, 3])?;
    /// let mut back = [0u8; 3];
    /// pages.read(8, &mut back)?;
    /// assert_eq!(back, [1, 2, 3]);
    /// // Past the end is refused.
    /// assert!(pages.write(pages.size() - 1, &[1, 2]).is_err());
    /// # Ok::<(), Error>(())
    /// ```
    pub fn write(&self, offset: usize, data: &[u8]) -> Result {
        let end = offset.checked_add(data.len()).ok_or(EINVAL)?;
        if end > self.size() {
            return Err(EINVAL);
        }
        for (i, b) in data.iter().enumerate() {
            // SAFETY: `offset + i < size()`: inside the allocation, which is mapped.
            unsafe { self.as_ptr().add(offset + i).write_volatile(*b) };
        }
        Ok(())
    }

    /// Copies bytes at `offset` into `buf`, with volatile reads.
    ///
    /// # Examples
    ///
    /// ```
    /// use kernel::unmapped_alloc::DecryptedPages;
    ///
    /// let pages = DecryptedPages::alloc(GFP_KERNEL, 0)?;
    /// let mut word = [0xffu8; 8];
    /// pages.read(0, &mut word)?;
    /// assert_eq!(u64::from_ne_bytes(word), 0);
    /// assert!(pages.read(usize::MAX, &mut word).is_err());
    /// # Ok::<(), Error>(())
    /// ```
    pub fn read(&self, offset: usize, buf: &mut [u8]) -> Result {
        let end = offset.checked_add(buf.len()).ok_or(EINVAL)?;
        if end > self.size() {
            return Err(EINVAL);
        }
        for (i, b) in buf.iter_mut().enumerate() {
            // SAFETY: `offset + i < size()`: inside the allocation, which is mapped.
            *b = unsafe { self.as_ptr().add(offset + i).read_volatile() };
        }
        Ok(())
    }

    /// Page frame number of the first page.
    pub fn pfn(&self) -> usize {
        // SAFETY: `page` is a valid page by the type invariant.
        unsafe { bindings::ua_page_to_pfn(self.page.as_ptr()) }
    }

    /// Physical address of the first page, as the host or a device sees it.
    pub fn phys_addr(&self) -> u64 {
        (self.pfn() as u64) << crate::page::PAGE_SHIFT
    }

    /// Order of the allocation.
    pub fn order(&self) -> u32 {
        self.order
    }

    /// Size in bytes.
    pub fn size(&self) -> usize {
        crate::page::PAGE_SIZE << self.order
    }
}

impl Drop for DecryptedPages {
    fn drop(&mut self) {
        // SAFETY: By the type invariant we own this allocation of `order`.
        unsafe { bindings::free_decrypted_pages(self.page.as_ptr(), self.order) };
    }
}

/// A buffer of decrypted memory from `kmalloc_decrypted()`, freed on drop.
///
/// Aligned to at least 256 bytes and to its size class up to a page. The host may read
/// and write it at any time: use [`DecryptedBuf::read`] / [`DecryptedBuf::write`] or
/// volatile accesses through [`DecryptedBuf::as_ptr`], never references.
///
/// # Invariants
///
/// `ptr` is a live object of `kmalloc_decrypted()` of at least `len` bytes that this
/// object owns.
///
/// # Examples
///
/// ```
/// use kernel::unmapped_alloc::DecryptedBuf;
///
/// // An interrupt translation table for a GICv3 ITS: 256 B aligned, shared.
/// let itt = DecryptedBuf::zeroed(256, GFP_KERNEL)?;
/// assert_eq!(itt.as_ptr() as usize % 256, 0);
/// # Ok::<(), Error>(())
/// ```
pub struct DecryptedBuf {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: The allocation is not tied to the allocating thread; it may be freed anywhere.
unsafe impl Send for DecryptedBuf {}
// SAFETY: Shared references only allow volatile accesses, as for shared memory.
unsafe impl Sync for DecryptedBuf {}

impl DecryptedBuf {
    /// Allocates `len` bytes of decrypted memory; zeroed with `__GFP_ZERO` in `flags`.
    ///
    /// # Examples
    ///
    /// ```
    /// use kernel::unmapped_alloc::DecryptedBuf;
    ///
    /// let buf = DecryptedBuf::alloc(1500, GFP_KERNEL)?;
    /// assert_eq!(buf.len(), 1500);
    /// // Sizes are at least 256 B: a 300 B request comes from kmalloc-decrypted-512.
    /// assert_eq!(DecryptedBuf::alloc(300, GFP_KERNEL)?.as_ptr() as usize % 512, 0);
    /// assert!(DecryptedBuf::alloc(0, GFP_KERNEL).is_err());
    /// // Sizes no allocation can have fail cleanly, as kmalloc() does.
    /// assert!(DecryptedBuf::alloc(usize::MAX, GFP_KERNEL).is_err());
    /// # Ok::<(), Error>(())
    /// ```
    pub fn alloc(len: usize, flags: Flags) -> Result<Self> {
        // SAFETY: Any arguments are accepted; bad ones make the call return NULL.
        let p = unsafe { bindings::kmalloc_decrypted(len, flags.as_raw()) };
        let ptr = NonNull::new(p.cast::<u8>()).ok_or(ENOMEM)?;
        // INVARIANT: A live object of at least `len` bytes, now owned by us.
        Ok(Self { ptr, len })
    }

    /// Allocates `len` zeroed bytes of decrypted memory.
    ///
    /// # Examples
    ///
    /// ```
    /// use kernel::unmapped_alloc::DecryptedBuf;
    ///
    /// let buf = DecryptedBuf::zeroed(64, GFP_KERNEL)?;
    /// let mut back = [0xffu8; 64];
    /// buf.read(0, &mut back)?;
    /// assert!(back.iter().all(|&b| b == 0));
    /// # Ok::<(), Error>(())
    /// ```
    pub fn zeroed(len: usize, flags: Flags) -> Result<Self> {
        Self::alloc(len, flags | crate::alloc::flags::__GFP_ZERO)
    }

    /// Kernel virtual address.
    ///
    /// # Examples
    ///
    /// ```
    /// use kernel::unmapped_alloc::DecryptedBuf;
    ///
    /// let buf = DecryptedBuf::alloc(256, GFP_KERNEL)?;
    /// // SAFETY: The first byte is inside the buffer; volatile, as the host may write it.
    /// unsafe { buf.as_ptr().write_volatile(7) };
    /// let mut b = [0u8];
    /// buf.read(0, &mut b)?;
    /// assert_eq!(b[0], 7);
    /// # Ok::<(), Error>(())
    /// ```
    pub fn as_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    /// Requested length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the buffer is empty (never: zero-sized requests fail).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Physical address, as the host or a device sees it.
    ///
    /// # Examples
    ///
    /// ```
    /// use kernel::{
    ///     page::PAGE_SHIFT,
    ///     unmapped_alloc::{page_state, DecryptedBuf, PageState},
    /// };
    ///
    /// let buf = DecryptedBuf::alloc(256, GFP_KERNEL)?;
    /// assert_eq!(buf.phys_addr() % 256, 0);
    /// // The page holding the object is shared with the host, in an object cache.
    /// let pfn = (buf.phys_addr() >> PAGE_SHIFT) as usize;
    /// assert_eq!(page_state(pfn), PageState::SharedObjects);
    /// # Ok::<(), Error>(())
    /// ```
    pub fn phys_addr(&self) -> u64 {
        // SAFETY: The object lies in the direct map; the helper checks the address.
        let pfn = unsafe { bindings::ua_virt_to_pfn(self.ptr.as_ptr() as usize) };
        ((pfn as u64) << crate::page::PAGE_SHIFT)
            + (self.ptr.as_ptr() as usize % crate::page::PAGE_SIZE) as u64
    }

    /// Copies `data` into the buffer at `offset` with volatile writes.
    ///
    /// # Examples
    ///
    /// ```
    /// use kernel::unmapped_alloc::DecryptedBuf;
    ///
    /// let buf = DecryptedBuf::alloc(16, GFP_KERNEL)?;
    /// buf.write(4, b"abcd")?;
    /// assert!(buf.write(14, b"abcd").is_err());
    /// # Ok::<(), Error>(())
    /// ```
    pub fn write(&self, offset: usize, data: &[u8]) -> Result {
        let end = offset.checked_add(data.len()).ok_or(EINVAL)?;
        if end > self.len {
            return Err(EINVAL);
        }
        for (i, b) in data.iter().enumerate() {
            // SAFETY: `offset + i < len`: inside the owned object.
            unsafe { self.ptr.as_ptr().add(offset + i).write_volatile(*b) };
        }
        Ok(())
    }

    /// Copies bytes at `offset` into `buf` with volatile reads.
    ///
    /// # Examples
    ///
    /// ```
    /// use kernel::unmapped_alloc::DecryptedBuf;
    ///
    /// let buf = DecryptedBuf::alloc(16, GFP_KERNEL)?;
    /// buf.write(0, b"abcd")?;
    /// let mut back = [0u8; 4];
    /// buf.read(0, &mut back)?;
    /// assert_eq!(&back, b"abcd");
    /// assert!(buf.read(13, &mut back).is_err());
    /// # Ok::<(), Error>(())
    /// ```
    pub fn read(&self, offset: usize, buf: &mut [u8]) -> Result {
        let end = offset.checked_add(buf.len()).ok_or(EINVAL)?;
        if end > self.len {
            return Err(EINVAL);
        }
        for (i, b) in buf.iter_mut().enumerate() {
            // SAFETY: `offset + i < len`: inside the owned object.
            *b = unsafe { self.ptr.as_ptr().add(offset + i).read_volatile() };
        }
        Ok(())
    }
}

impl Drop for DecryptedBuf {
    fn drop(&mut self) {
        // SAFETY: By the type invariant we own this object.
        unsafe { bindings::kfree_decrypted(self.ptr.as_ptr().cast()) };
    }
}

/// What `mm/unmapped_alloc` knows of a page, see [`page_state`].
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum PageState {
    /// Not a page of the component.
    NotOwned,
    /// Unmapped from the direct map, free in a cached block.
    UnmappedFree,
    /// Unmapped, handed out.
    UnmappedUsed,
    /// Decrypted (shared with the host), free.
    SharedFree,
    /// Decrypted, handed out.
    SharedUsed,
    /// In a block whose state is unknown after a failed conversion.
    Leaked,
    /// Decrypted, held by the object caches (a slab or a large object).
    SharedObjects,
}

/// The component's record of the page with frame number `pfn`.
///
/// # Examples
///
/// ```
/// use kernel::unmapped_alloc::{page_state, DecryptedPages, PageState};
///
/// let pages = DecryptedPages::alloc(GFP_KERNEL, 0)?;
/// assert_eq!(page_state(pages.pfn()), PageState::SharedUsed);
/// // Frames the component never had (here the first one) are not its own.
/// assert_eq!(page_state(0), PageState::NotOwned);
/// # Ok::<(), Error>(())
/// ```
pub fn page_state(pfn: usize) -> PageState {
    // SAFETY: Any frame number is accepted; the lookup checks `pfn_valid()` before it
    // touches a `struct page`, and only compares the pointer otherwise.
    let state = unsafe { bindings::unmapped_alloc_page_state(bindings::ua_pfn_to_page(pfn)) };
    match state {
        bindings::unmapped_page_state_UNMAPPED_PAGE_FREE => PageState::UnmappedFree,
        bindings::unmapped_page_state_UNMAPPED_PAGE_USED => PageState::UnmappedUsed,
        bindings::unmapped_page_state_SHARED_PAGE_FREE => PageState::SharedFree,
        bindings::unmapped_page_state_SHARED_PAGE_USED => PageState::SharedUsed,
        bindings::unmapped_page_state_UNMAPPED_ALLOC_PAGE_LEAKED => PageState::Leaked,
        bindings::unmapped_page_state_SHARED_PAGE_OBJECTS => PageState::SharedObjects,
        _ => PageState::NotOwned,
    }
}
