// SPDX-License-Identifier: GPL-2.0

//! A Rust consumer of `kernel::unmapped_alloc`: memory lent to a hypervisor or
//! firmware, which the kernel must not reach through its direct map.

use kernel::{
    prelude::*,
    unmapped_alloc::{DecryptedPages, UnmappedPages},
};

module! {
    type: RustUnmappedSample,
    name: "unmapped_alloc_rust_sample",
    authors: ["unmapped_alloc developers"],
    description: "Sample Rust consumer of unmapped_alloc",
    license: "GPL",
}

struct RustUnmappedSample {
    _lent: KVec<UnmappedPages>,
}

impl kernel::Module for RustUnmappedSample {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        // A donation of 1 MiB in 64 KiB pieces, as a guest memory pool would take it.
        let mut lent = KVec::new();
        for _ in 0..16 {
            lent.push(UnmappedPages::alloc(GFP_KERNEL, 4)?, GFP_KERNEL)?;
        }
        let first = &lent[0];
        pr_info!(
            "lent {} chunks of {} pages, first at phys {:#x} on node {}\n",
            lent.len(),
            first.nr_pages(),
            first.phys_addr(),
            first.nid()
        );
        // Short-lived allocations of every order come and go.
        for order in 0..=kernel::unmapped_alloc::max_order() {
            let p = UnmappedPages::alloc(GFP_KERNEL, order)?;
            pr_info!("order {}: pfn {:#x}\n", order, p.pfn());
        }
        // Atomic context is served from memory that is already unmapped.
        let atomic = UnmappedPages::alloc(GFP_ATOMIC, 0)?;
        pr_info!("atomic page at pfn {:#x}\n", atomic.pfn());
        // A buffer shared with the host, e.g. a virtio ring of a confidential guest.
        let ring = DecryptedPages::alloc(GFP_KERNEL, 1)?;
        ring.write(0, b"hello host")?;
        let mut back = [0u8; 10];
        ring.read(0, &mut back)?;
        pr_info!(
            "shared ring of {} bytes at phys {:#x} reads back {:?}\n",
            ring.size(),
            ring.phys_addr(),
            core::str::from_utf8(&back).unwrap_or("?")
        );
        Ok(Self { _lent: lent })
    }
}

impl Drop for RustUnmappedSample {
    fn drop(&mut self) {
        pr_info!("returning the lent pages\n");
    }
}
