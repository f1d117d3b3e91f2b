// SPDX-License-Identifier: GPL-2.0

//! Conversion of blocks between private (encrypted) and shared (decrypted) memory.
//!
//! Every conversion the decrypted allocator makes goes through a [`Backend`]:
//!
//! - [`Backend::Real`] calls `set_memory_decrypted()` / `set_memory_encrypted()`. In a
//!   guest without memory encryption they succeed without doing anything.
//! - [`Backend::Model`] records the state of every page in a [`ModelBackend`], so that
//!   tests can check which pages are shared, and fails the Nth call on request.
//!
//! A failed call leaves the block's state unknown; the allocator then leaks the block.
//! The model marks the pages of a failed call shared (the worst case), so that a leak
//! that did not happen would show up as a shared page given back.

#![deny(unsafe_code)]

use crate::sys::PageRange;
use kernel::{
    new_mutex,
    prelude::*,
    sync::{
        atomic::{Atomic, Relaxed},
        Arc, Mutex,
    },
};

/// Where conversions go.
pub(crate) enum Backend {
    /// The architecture's `set_memory_decrypted()` / `set_memory_encrypted()`.
    Real,
    /// A model that records page states, for tests.
    #[allow(dead_code)]
    Model(Arc<ModelBackend>),
}

/// Extra microseconds every real conversion takes (benchmarks only, see
/// `unmapped_alloc_set_sim_delay()`).
pub(crate) static SIM_DELAY_US: Atomic<u32> = Atomic::new(0);

fn sim_delay() {
    let us = SIM_DELAY_US.load(Relaxed);
    if us > 0 {
        kernel::time::delay::fsleep(kernel::time::Delta::from_micros(i64::from(us)));
    }
}

impl Backend {
    /// Makes the pages shared with the host.
    pub(crate) fn decrypt(&self, r: &PageRange) -> Result {
        match self {
            Backend::Real => {
                sim_delay();
                r.set_decrypted()
            }
            Backend::Model(m) => m.convert(r, true),
        }
    }

    /// Makes the pages private again.
    pub(crate) fn encrypt(&self, r: &PageRange) -> Result {
        match self {
            Backend::Real => {
                sim_delay();
                r.set_encrypted()
            }
            Backend::Model(m) => m.convert(r, false),
        }
    }

    /// Whether any page is known to be shared (the model knows; the real backend
    /// trusts a successful `set_memory_encrypted()`).
    pub(crate) fn any_shared(&self, r: &PageRange) -> bool {
        match self {
            Backend::Real => false,
            Backend::Model(m) => (0..r.nr_pages()).any(|i| m.is_shared(r.pfn().add(i).number())),
        }
    }
}

/// Page states recorded by the model backend.
#[pin_data]
pub(crate) struct ModelBackend {
    /// Shared ranges (and those whose conversion failed: unknown, so shared as far
    /// as the model knows). Each keeps its block, so the hostile host of the torture
    /// test only ever writes pages that are still the component's.
    #[pin]
    shared: Mutex<KVec<PageRange>>,
    calls: Atomic<u64>,
    fail_at: Atomic<u64>,
    /// How many calls from `fail_at` on fail.
    fail_run: Atomic<u64>,
    /// Milliseconds every call takes (tests of what runs beside a conversion).
    delay_ms: Atomic<u32>,
    /// Calls that started, and calls that returned: a call is in progress while they
    /// differ.
    pub(crate) entered: Atomic<u64>,
    pub(crate) finished: Atomic<u64>,
    /// Successful calls that made memory shared.
    pub(crate) decrypt_calls: Atomic<u64>,
    /// Successful calls that made memory private.
    pub(crate) encrypt_calls: Atomic<u64>,
    /// Calls made in atomic context, where a real conversion could not sleep.
    pub(crate) atomic_calls: Atomic<u64>,
    /// Ranges made shared while not all zero: what a host that keeps contents
    /// across a share (pKVM, Arm CCA) would have been shown.
    pub(crate) dirty_shares: Atomic<u64>,
    /// The NOFS/NOIO memalloc scope of the task that made the last call.
    pub(crate) last_scope: Atomic<u32>,
    /// Non-zero: calls also fail where `fail_unmapped_alloc` says so, as real
    /// conversions do (the torture test's model).
    inject: Atomic<u32>,
    /// Calls refused because a page was already in the requested state: a double
    /// decrypt or encrypt, which SEV-SNP answers by terminating the guest.
    pub(crate) double_conversions: Atomic<u64>,
}

#[allow(dead_code)]
impl ModelBackend {
    /// A model with every page private.
    pub(crate) fn new() -> Result<Arc<Self>> {
        Arc::pin_init(
            pin_init!(Self {
                shared <- new_mutex!(KVec::new()),
                calls: Atomic::new(0),
                fail_at: Atomic::new(0),
                fail_run: Atomic::new(0),
                delay_ms: Atomic::new(0),
                entered: Atomic::new(0),
                finished: Atomic::new(0),
                decrypt_calls: Atomic::new(0),
                encrypt_calls: Atomic::new(0),
                atomic_calls: Atomic::new(0),
                dirty_shares: Atomic::new(0),
                last_scope: Atomic::new(0),
                inject: Atomic::new(0),
                double_conversions: Atomic::new(0),
            }),
            GFP_KERNEL,
        )
    }

    /// Makes the `n`th call from now fail (1 = the next one); 0 disables.
    pub(crate) fn fail_nth(&self, n: u64) {
        self.fail_calls(n, 1);
    }

    /// Makes `count` calls from the `n`th from now on fail (1 = the next one); `n == 0`
    /// disables.
    pub(crate) fn fail_calls(&self, n: u64, count: u64) {
        let base = self.calls.load(Relaxed);
        self.fail_run.store(count, Relaxed);
        self.fail_at
            .store(if n == 0 { 0 } else { base + n }, Relaxed);
    }

    /// Makes every call take `ms` milliseconds more (sleeping).
    pub(crate) fn set_delay_ms(&self, ms: u32) {
        self.delay_ms.store(ms, Relaxed);
    }

    fn convert(&self, r: &PageRange, shared: bool) -> Result {
        self.entered.add(1, Relaxed);
        let delay = self.delay_ms.load(Relaxed);
        if delay > 0 {
            kernel::time::delay::fsleep(kernel::time::Delta::from_millis(i64::from(delay)));
        }
        let r = self.convert_now(r, shared);
        self.finished.add(1, Relaxed);
        r
    }

    fn convert_now(&self, r: &PageRange, shared: bool) -> Result {
        if crate::sys::in_atomic() {
            self.atomic_calls.add(1, Relaxed);
        }
        #[cfg(CONFIG_UNMAPPED_ALLOC_KUNIT_TEST)]
        {
            if shared && !crate::sys::in_atomic() && !r.is_zeroed().unwrap_or(false) {
                self.dirty_shares.add(1, Relaxed);
            }
            self.last_scope
                .store(crate::sys::reclaim_scope_current(), Relaxed);
        }
        let call = self.calls.fetch_add(1, Relaxed) + 1;
        let at = self.fail_at.load(Relaxed);
        let failed = (at != 0 && at <= call && call - at < self.fail_run.load(Relaxed))
            || (self.inject.load(Relaxed) != 0
                && crate::sys::should_fail(
                    crate::sys::FailSite::Conversion,
                    r.nr_pages() * crate::sys::PAGE_SIZE,
                ));
        let (first, nr) = (r.pfn().number(), r.nr_pages());
        let mut ranges = self.shared.lock();
        // Every page must change state: encrypting a private page or decrypting a
        // shared one is refused, changing nothing, as the hardware would fault.
        let already = (first..first + nr).any(|pfn| {
            let covered = ranges.iter().any(|s| {
                let f = s.pfn().number();
                f <= pfn && pfn < f + s.nr_pages()
            });
            covered == shared
        });
        if already {
            self.double_conversions.add(1, Relaxed);
            return Err(EINVAL);
        }
        ranges.retain(|s| {
            let f = s.pfn().number();
            f + s.nr_pages() <= first || first + nr <= f
        });
        // Atomic: the shrinker converts under this lock from inside reclaim.
        if shared || failed {
            ranges.push(r.clone(), GFP_ATOMIC)?;
        }
        if failed {
            return Err(EIO);
        }
        let counter = if shared {
            &self.decrypt_calls
        } else {
            &self.encrypt_calls
        };
        counter.add(1, Relaxed);
        Ok(())
    }

    /// Whether frame `pfn` is shared.
    pub(crate) fn is_shared(&self, pfn: usize) -> bool {
        self.shared.lock().iter().any(|s| {
            let f = s.pfn().number();
            f <= pfn && pfn < f + s.nr_pages()
        })
    }

    /// Number of shared pages.
    pub(crate) fn shared_pages(&self) -> usize {
        self.shared.lock().iter().map(|s| s.nr_pages()).sum()
    }

    /// Lets the kernel's fault injection (`fail_unmapped_alloc`, conversion site) fail
    /// calls too.
    pub(crate) fn set_inject(&self, on: bool) {
        self.inject.store(u32::from(on), Relaxed);
    }

    /// The hostile host: overwrites every shared page, free or in use, with
    /// pseudo-random bytes. One range at a time under the lock, so that no range can
    /// be made private and given back while it is written. Returns the pages written.
    #[cfg(CONFIG_UNMAPPED_ALLOC_TORTURE)]
    pub(crate) fn host_write(&self, seed: u64) -> usize {
        let mut written = 0;
        let mut i = 0;
        loop {
            let ranges = self.shared.lock();
            let Some(r) = ranges.get(i) else {
                break;
            };
            written += r.host_scribble(seed.wrapping_add(i as u64));
            drop(ranges);
            i += 1;
        }
        written
    }
}
