// SPDX-License-Identifier: GPL-2.0

//! Allocator for memory in a special direct map state.
//!
//! - Unmapped pages, removed from the kernel direct map, for secret memory, guest memory
//!   and memory lent to a hypervisor or firmware: `unmapped_alloc()` / `unmapped_free()`
//!   in C, `kernel::unmapped_alloc::UnmappedPages` in Rust (see `kernel_api.rs`).
//! - Decrypted memory shared with the host of a confidential guest.
//!
//! Memory is converted in large blocks once and carved up, instead of converting (and
//! splitting the direct map, and flushing the TLB) on every allocation.
//!
//! Layout: all `unsafe` code is in [`sys`], the thin layer over the kernel's primitives,
//! and in [`c_api`], whose functions are `unsafe extern "C"` because `#[export]` checks
//! them against bindgen's declarations of `include/linux/unmapped_alloc.h`. Every other
//! module denies `unsafe` code at compile time.

mod backend;
mod buddy;
pub mod c_api;
mod debugfs;
mod mutant;
mod pages;
mod pernode;
mod slab;
mod sorted;
mod stats;
mod sys;
#[cfg(CONFIG_UNMAPPED_ALLOC_KUNIT_TEST)]
mod tests;
#[cfg(CONFIG_UNMAPPED_ALLOC_KUNIT_TEST)]
mod testutil;

use kernel::{prelude::*, sync::Arc};
use pages::{Config, Kind, PageAllocator};
use slab::KmallocDecrypted;
use sys::Published;

module! {
    type: UnmappedAllocModule,
    name: "unmapped_alloc",
    authors: ["unmapped_alloc developers"],
    description: "Allocator for unmapped and decrypted memory",
    license: "GPL",
    params: {
        unmapped_cache_blocks: u32 {
            default: 4,
            description: "Free unmapped blocks kept per node",
        },
        decrypted_cache_blocks: u32 {
            default: 4,
            description: "Free decrypted blocks kept per node",
        },
        decrypted_reserve_low: u32 {
            default: 256,
            description: "Atomic reserve of decrypted pages per node: refill below this",
        },
        decrypted_reserve_high: u32 {
            default: 512,
            description: "Atomic reserve of decrypted pages per node: refill up to this",
        },
        decrypted_model: u32 {
            default: 0,
            description: "Torture kernels only: 1 puts kmalloc-decrypted on the model backend",
        },
        mutant: u32 {
            default: 0,
            description: "Test kernels only: N breaks the component on purpose (make mutants)",
        },
    },
}

/// The system-wide unmapped page allocator, set up at boot.
static GLOBAL: Published<Arc<PageAllocator>> = Published::new();

/// The system-wide decrypted page allocator, set up at boot.
static DECRYPTED: Published<Arc<PageAllocator>> = Published::new();

/// The system-wide unmapped instance, once initialised.
fn global() -> Result<&'static Arc<PageAllocator>> {
    GLOBAL.get().ok_or(ENODEV)
}

/// The model backend under [`DECRYPTED`] when booted with `decrypted_model=1`, where the
/// torture test's hostile host finds the shared memory.
#[cfg(CONFIG_UNMAPPED_ALLOC_TORTURE)]
static MODEL: Published<Arc<backend::ModelBackend>> = Published::new();

/// The system-wide `kmalloc-decrypted-*` caches, on [`DECRYPTED`].
static KMALLOC: Published<KmallocDecrypted> = Published::new();

/// The system-wide decrypted instance, once initialised.
fn decrypted() -> Result<&'static Arc<PageAllocator>> {
    DECRYPTED.get().ok_or(ENODEV)
}

/// The system-wide kmalloc-decrypted caches, once initialised.
fn kmalloc() -> Result<&'static KmallocDecrypted> {
    KMALLOC.get().ok_or(ENODEV)
}

struct UnmappedAllocModule {
    _debugfs: debugfs::Files,
}

impl kernel::Module for UnmappedAllocModule {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        mutant::set(*module_parameters::mutant.value());
        let mut unmapped_config = Config::default_global(Kind::Unmapped);
        unmapped_config.cache_blocks = *module_parameters::unmapped_cache_blocks.value() as usize;
        let mut decrypted_config = Config::default_global(Kind::Decrypted(decrypted_backend()?));
        decrypted_config.cache_blocks = *module_parameters::decrypted_cache_blocks.value() as usize;
        let low = *module_parameters::decrypted_reserve_low.value() as usize;
        let high = *module_parameters::decrypted_reserve_high.value() as usize;
        if low <= high && high <= pages::MAX_RESERVE_PAGES {
            decrypted_config.reserve = (low, high);
        } else {
            pr_err!(
                "decrypted_reserve_low {} and _high {}: low above high or high above {}, using {:?}\n",
                low,
                high,
                pages::MAX_RESERVE_PAGES,
                decrypted_config.reserve
            );
        }
        if !GLOBAL.publish(PageAllocator::new(unmapped_config)?)?
            || !DECRYPTED.publish(PageAllocator::new(decrypted_config)?)?
        {
            return Err(EBUSY);
        }
        let (unmapped, decrypted) = (global()?, decrypted()?);
        if !KMALLOC.publish(KmallocDecrypted::new(decrypted)?)? {
            return Err(EBUSY);
        }
        // Fill the atomic reserve of decrypted memory now; later the background work
        // keeps it between its watermarks.
        let (_, high) = decrypted.watermarks();
        for nid in 0..sys::nr_node_ids() as i32 {
            if sys::node_has_memory(nid) {
                decrypted.refill(nid, high);
            }
        }
        sys::register_shrinker()?;
        sys::register_shutdown_hook()?;
        sys::register_pm_notifier()?;
        let files = debugfs::create(debugfs::Globals {
            unmapped,
            decrypted,
            kmalloc: kmalloc()?,
        })?;
        if let Some(why) = unmapped.refused() {
            pr_warn!("unmapped pages disabled: {}\n", why);
        }
        pr_info!("ready, blocks of order {}\n", unmapped.max_order());
        Ok(Self { _debugfs: files })
    }
}

/// The backend of the system-wide decrypted instance: the real one, or with
/// `decrypted_model=1` in a torture kernel the model, whose record of shared pages the
/// hostile host overwrites and whose conversions fail where `fail_unmapped_alloc` says.
fn decrypted_backend() -> Result<backend::Backend> {
    if *module_parameters::decrypted_model.value() == 0 {
        return Ok(backend::Backend::Real);
    }
    #[cfg(CONFIG_UNMAPPED_ALLOC_TORTURE)]
    {
        let model = backend::ModelBackend::new()?;
        model.set_inject(true);
        if !MODEL.publish(model.clone())? {
            return Err(EBUSY);
        }
        pr_warn!("decrypted memory on the model backend (torture)\n");
        Ok(backend::Backend::Model(model))
    }
    #[cfg(not(CONFIG_UNMAPPED_ALLOC_TORTURE))]
    {
        pr_err!("decrypted_model needs CONFIG_UNMAPPED_ALLOC_TORTURE: ignored\n");
        Ok(backend::Backend::Real)
    }
}
