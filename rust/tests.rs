// SPDX-License-Identifier: GPL-2.0

//! KUnit suite of the global instances and the C API, with the real backend.

#[kernel::macros::kunit_tests(unmapped_alloc_real_backend)]
mod real_backend {
    use crate::c_api::{objects::*, *};
    use crate::sys::{self, Block, Pfn};
    use crate::*;
    use kernel::bindings::{self, GFP_KERNEL, __GFP_ZERO};

    fn present(addr: usize) -> bool {
        Pfn::of_virt(addr).is_some_and(|p| p.is_present())
    }

    #[test]
    fn kmalloc_decrypted_through_c_api() -> Result {
        // SAFETY: The C API functions called here are always safe to call.
        unsafe {
            // Refused frees below are reported with a stack.
            let _splats = crate::testutil::ExpectSplats::new();
            let k = kmalloc()?;
            for size in [1usize, 256, 1000, 4096, 8192, 20000] {
                let p = kmalloc_decrypted(size, GFP_KERNEL | __GFP_ZERO);
                assert!(!p.is_null());
                let a = p as usize;
                assert_eq!(a % slab::MIN_SIZE, 0);
                assert!(ksize_decrypted(p) >= size);
                // Decrypted memory stays in the direct map.
                assert!(present(a));
                kfree_decrypted(p);
            }
            let bad = k.bad_frees.get();
            let other = KBox::new([0u8; 256], kernel::alloc::flags::GFP_KERNEL)?;
            kfree_decrypted(core::ptr::from_ref::<[u8; 256]>(&*other).cast());
            assert_eq!(k.bad_frees.get(), bad + 1);
            Ok(())
        }
    }

    #[test]
    fn dedicated_cache_through_c_api() -> Result {
        // SAFETY: `c`, `again` and `other` are each used from their creation until they
        // are destroyed, last.
        unsafe {
            let c = kmem_cache_create_decrypted(c"its-itt-test".as_char_ptr(), 768, 256);
            assert!(!c.is_null());
            let mut objs = [core::ptr::null_mut(); 8];
            for o in objs.iter_mut() {
                *o = kmem_cache_alloc_decrypted(c, GFP_KERNEL);
                assert!(!o.is_null());
                assert_eq!(*o as usize % 1024, 0);
            }
            for &o in objs.iter() {
                kmem_cache_free_decrypted(c, o);
            }
            let tag = sys::with_cache(c, |c: &slab::ObjCache| c.tag()).ok_or(EINVAL)?;
            kmem_cache_destroy_decrypted(c);
            // A destroyed cache's tag is taken again: tags never run out.
            let again = kmem_cache_create_decrypted(c"its-itt-test".as_char_ptr(), 768, 256);
            assert!(!again.is_null());
            let other = kmem_cache_create_decrypted(c"its-itt-test2".as_char_ptr(), 768, 256);
            assert!(!other.is_null());
            assert_eq!(
                sys::with_cache(again, |c: &slab::ObjCache| c.tag()),
                Some(tag)
            );
            assert_ne!(
                sys::with_cache(other, |c: &slab::ObjCache| c.tag()),
                Some(tag)
            );
            kmem_cache_destroy_decrypted(other);
            kmem_cache_destroy_decrypted(again);
            Ok(())
        }
    }

    /// The global unmapped instance follows `can_set_direct_map()`: where the direct map
    /// can change, its pages are really gone from it; where it cannot (arm64 booted
    /// with `rodata=noalias` and without debug_pagealloc), every allocation is refused and
    /// the `direct_map` file says why. `make test ARCH=arm64` boots both ways.
    #[test]
    fn global_unmapped_follows_can_set_direct_map() -> Result {
        // SAFETY: The C API functions called here are always safe to call.
        unsafe {
            let g = global()?;
            let text = crate::debugfs::render(&crate::debugfs::DirectMap(g))?;
            let text = core::str::from_utf8(&text).map_err(|_| EINVAL)?;
            let refused_before = g.stats.refused_allocs.get();
            let u = unmapped_alloc(GFP_KERNEL, 0);
            if sys::can_set_direct_map() {
                pr_info!("can_set_direct_map: yes, unmapped pages served\n");
                assert!(!u.is_null());
                assert!(!Pfn::of_page(u).is_present());
                assert!(text.contains("unmapped enabled"));
                unmapped_free(u, 0);
            } else {
                pr_info!("can_set_direct_map: no, unmapped pages refused\n");
                assert!(u.is_null());
                assert_eq!(g.stats.refused_allocs.get(), refused_before + 1);
                assert!(text.contains("can_set_direct_map no"));
                assert!(text.contains("unmapped refused: set_direct_map_*()"));
                // Decrypted memory does not depend on it.
                let d = alloc_decrypted_pages(GFP_KERNEL, 0);
                assert!(!d.is_null());
                free_decrypted_pages(d, 0);
            }
            Ok(())
        }
    }

    #[test]
    fn pages_through_c_api() -> Result {
        // SAFETY: The C API functions called here are always safe to call.
        unsafe {
            // Refused frees below are reported with a stack.
            let _splats = crate::testutil::ExpectSplats::new();
            let u = unmapped_alloc(GFP_KERNEL, 3);
            assert!(!u.is_null());
            let d = alloc_decrypted_pages(GFP_KERNEL, 3);
            assert!(!d.is_null());
            let (up, dp) = (Pfn::of_page(u), Pfn::of_page(d));
            for i in 0..8 {
                assert!(!up.add(i).is_present());
                assert!(dp.add(i).is_present());
            }
            assert_eq!(
                unmapped_alloc_page_state(u),
                bindings::unmapped_page_state_UNMAPPED_PAGE_USED
            );
            assert_eq!(
                unmapped_alloc_page_state(d),
                bindings::unmapped_page_state_SHARED_PAGE_USED
            );
            // Each kind refuses the other's pages.
            let (ub, db) = (
                global()?.stats.bad_frees.get(),
                decrypted()?.stats.bad_frees.get(),
            );
            unmapped_free(d, 3);
            free_decrypted_pages(u, 3);
            assert_eq!(global()?.stats.bad_frees.get(), ub + 1);
            assert_eq!(decrypted()?.stats.bad_frees.get(), db + 1);
            unmapped_free(u, 3);
            free_decrypted_pages(d, 3);
            assert_eq!(
                unmapped_alloc_page_state(d),
                bindings::unmapped_page_state_SHARED_PAGE_FREE
            );
            let other = Block::alloc(sys::NUMA_NO_NODE, GFP_KERNEL, 0).ok_or(ENOMEM)?;
            assert_eq!(
                unmapped_alloc_page_state(other.pfn().page()),
                bindings::unmapped_page_state_UNMAPPED_PAGE_NOT_OWNED
            );
            Block::release(other)?;
            Ok(())
        }
    }

    #[test]
    fn c_api_contract_sizes_states_and_references() -> Result {
        // SAFETY: The C API functions called here are always safe to call.
        unsafe {
            // Refused frees below are reported with a stack.
            let _splats = crate::testutil::ExpectSplats::new();
            // Sizes no allocation can have: NULL, as kmalloc() gives, never a panic.
            for size in [0usize, usize::MAX, usize::MAX - 255, (usize::MAX >> 1) + 2] {
                assert!(kmalloc_decrypted(size, GFP_KERNEL).is_null());
                assert!(kmalloc_decrypted_node(size, GFP_KERNEL, 0).is_null());
            }
            // A slab's page: told apart from pages, refused by the page API.
            let p = kmalloc_decrypted(300, GFP_KERNEL | __GFP_ZERO);
            assert!(!p.is_null());
            let page = Pfn::of_virt(p as usize).ok_or(EINVAL)?.page();
            assert_eq!(
                unmapped_alloc_page_state(page),
                bindings::unmapped_page_state_SHARED_PAGE_OBJECTS
            );
            let d = decrypted()?;
            let bad = d.stats.bad_frees.get();
            for order in 0..=2 {
                free_decrypted_pages(page, order);
            }
            assert_eq!(d.stats.bad_frees.get(), bad + 3);
            assert_eq!(ksize_decrypted(p), 512);
            kfree_decrypted(p);
            // The first page of an allocation holds one reference, as alloc_pages() gives.
            let u = unmapped_alloc(GFP_KERNEL, 1);
            assert!(!u.is_null());
            assert_eq!(Pfn::of_page(u).refs(), 1);
            assert_eq!(Pfn::of_page(u).add(1).refs(), 0);
            unmapped_free(u, 1);
            assert_eq!(Pfn::of_page(u).refs(), 0);
            // Hibernation would copy unmapped pages into the image: refused while any is
            // in use.
            let u = unmapped_alloc(GFP_KERNEL, 0);
            assert!(!u.is_null());
            assert_eq!(sys::hibernation_check(), Err(EBUSY));
            unmapped_free(u, 0);
            if global()?.total_pages().used() == 0 {
                assert_eq!(sys::hibernation_check(), Ok(()));
            }
            // The reserve has a ceiling.
            let (mut low, mut high) = (0, 0);
            unmapped_alloc_get_reserve(&mut low, &mut high);
            let too_many = pages::MAX_RESERVE_PAGES as kernel::ffi::c_ulong + 1;
            assert_eq!(
                unmapped_alloc_set_reserve(0, too_many),
                -(bindings::EINVAL as i32)
            );
            assert_eq!(
                unmapped_alloc_set_reserve(too_many, too_many),
                -(bindings::EINVAL as i32)
            );
            assert_eq!(d.watermarks(), (low, high));
            Ok(())
        }
    }
}
