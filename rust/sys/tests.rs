// SPDX-License-Identifier: GPL-2.0

//! KUnit suite of the unsafe layer: direct map changes, frames, per-CPU values.

#![deny(unsafe_code)]

#[kernel::macros::kunit_tests(unmapped_alloc_sys)]
mod direct_map {
    use crate::sys::*;
    use kernel::bindings::{GFP_KERNEL, __GFP_ZERO};
    use kernel::prelude::*;

    fn all_present(b: &Block, want: bool) -> bool {
        (0..b.nr_pages()).all(|i| b.pfn().add(i).is_present() == want)
    }

    #[test]
    fn per_cpu_values_exclusive_and_each_visited_once() -> Result {
        use crate::stats::CpuCounter;
        use core::sync::atomic::{AtomicUsize, Ordering::Relaxed};

        let mut next = 0;
        let v = PerCpu::new(|| {
            next += 1;
            (next - 1, CpuCounter::new())
        })?;
        // A second use of the CPU's value while the first lives is refused.
        let (first, second, cpu) = on_this_cpu(|this| {
            let a = v.local(this);
            let b = v.local(this);
            (a.as_deref().copied(), b.is_some(), this.id())
        });
        assert_eq!(first, Some(cpu));
        assert!(!second);
        assert!(on_this_cpu(|this| v.local(this).is_some()));
        // Every CPU's value once; every online CPU's value on that CPU (no CPU goes
        // on- or offline during the suites).
        let on_self = AtomicUsize::new(0);
        v.each_cpu(
            |local| {
                local.shared().inc();
                (**local, on_this_cpu(|this| this.id()))
            },
            |(slot, ran_on)| {
                if slot == ran_on {
                    on_self.fetch_add(1, Relaxed);
                }
            },
        );
        assert!(v.shared().all(|c| c.get() == 1));
        assert_eq!(v.shared().count(), kernel::cpu::nr_cpu_ids() as usize);
        assert_eq!(on_self.load(Relaxed), num_online_cpus() as usize);
        Ok(())
    }

    #[test]
    fn unmap_and_restore_page() -> Result {
        let b = Block::alloc(NUMA_NO_NODE, GFP_KERNEL, 0).ok_or(ENOMEM)?;
        assert!(b.pfn().is_present());
        b.set_direct_map(0, 1, false)?;
        b.flush_tlb();
        assert!(!b.pfn().is_present());
        b.set_direct_map(0, 1, true)?;
        b.flush_tlb();
        assert!(b.pfn().is_present());
        Block::release(b)?;
        Ok(())
    }

    #[test]
    fn unmap_and_restore_pmd_block() -> Result {
        let order = block_order();
        let Some(b) = Block::alloc(NUMA_NO_NODE, GFP_KERNEL, order) else {
            // Memory may be too fragmented for a 2 MiB block: fall back to a smaller one.
            return Err(ENOMEM);
        };
        assert_eq!(b.nr_pages(), 512);
        assert!(all_present(&b, true));
        b.set_direct_map(0, b.nr_pages(), false)?;
        b.flush_tlb();
        assert!(all_present(&b, false));
        b.set_direct_map(0, b.nr_pages(), true)?;
        b.flush_tlb();
        assert!(all_present(&b, true));
        Block::release(b)?;
        Ok(())
    }

    #[test]
    fn unmapped_page_readable_through_temp_map() -> Result {
        let b = Block::alloc(NUMA_NO_NODE, GFP_KERNEL | __GFP_ZERO, 1).ok_or(ENOMEM)?;
        b.set_direct_map(0, 2, false)?;
        b.flush_tlb();
        assert!(!b.pfn().add(1).is_present());
        let r = Block::range(&b, 0, 2)?;
        r.write_byte(PAGE_SIZE + 7, 0xa5)?;
        assert_eq!(r.read_byte(PAGE_SIZE + 7)?, 0xa5);
        Block::range(&b, 1, 1)?.scrub()?;
        assert_eq!(r.read_byte(PAGE_SIZE + 7)?, 0);
        assert_eq!(r.read_byte(2 * PAGE_SIZE), Err(EINVAL));
        b.set_direct_map(0, 2, true)?;
        b.flush_tlb();
        drop(r);
        Block::release(b)?;
        Ok(())
    }

    #[test]
    fn decrypt_and_encrypt_range() -> Result {
        let b = Block::alloc(NUMA_NO_NODE, GFP_KERNEL, 2).ok_or(ENOMEM)?;
        let r = Block::range(&b, 0, 4)?;
        assert_eq!(r.set_decrypted(), Ok(()));
        assert_eq!(r.set_encrypted(), Ok(()));
        assert!(all_present(&b, true));
        drop(r);
        Block::release(b)?;
        Ok(())
    }

    #[test]
    fn pfn_round_trip() {
        let b = Block::alloc(NUMA_NO_NODE, GFP_KERNEL, 0).unwrap();
        let pfn = b.pfn();
        assert_eq!(Pfn::of_page(pfn.page()), pfn);
        assert_eq!(pfn.phys() >> kernel::page::PAGE_SHIFT, pfn.number() as u64);
        assert!(node_has_memory(pfn.nid()));
        assert_eq!(Block::release(b), Ok(()));
    }

    #[test]
    fn ranges_keep_their_block() -> Result {
        let b = Block::alloc(NUMA_NO_NODE, GFP_KERNEL | __GFP_ZERO, 1).ok_or(ENOMEM)?;
        let r = Block::range(&b, 1, 1)?;
        let m = Block::whole(&b)?.mapped(0, 2 * PAGE_SIZE)?;
        // Pages a range or its mapped bytes name cannot go back: release refuses and
        // drops only the reference it was given.
        assert_eq!(Block::release(b.clone()), Err(EBUSY));
        drop(r);
        assert_eq!(Block::release(b.clone()), Err(EBUSY));
        // Still usable: the bytes are the block's, mapped, zeroed at allocation.
        assert!(m.zero(PAGE_SIZE, PAGE_SIZE));
        assert!(!m.zero(PAGE_SIZE, PAGE_SIZE + 1));
        assert_eq!(m.read(PAGE_SIZE), Some(0));
        drop(m);
        // The last reference gives the pages back.
        assert_eq!(Block::release(b), Ok(()));
        Ok(())
    }
}
