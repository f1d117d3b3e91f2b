// SPDX-License-Identifier: GPL-2.0

//! Helpers shared by the KUnit suites.

#![deny(unsafe_code)]

/// A small deterministic pseudo-random generator (xorshift64*), so that test
/// workloads are reproducible from their seed.
pub(crate) struct Rng(u64);

impl Rng {
    /// A generator started from `seed`.
    pub(crate) fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }

    /// The next 64 random bits.
    pub(crate) fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number in `0..n` (`n > 0`).
    pub(crate) fn below(&mut self, n: u32) -> u32 {
        (((self.next() >> 32) * u64::from(n)) >> 32) as u32
    }

    /// Shuffles `v` in place (Fisher-Yates).
    pub(crate) fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = self.below(i as u32 + 1) as usize;
            v.swap(i, j);
        }
    }
}

use kernel::{
    new_spinlock,
    prelude::*,
    sync::{
        atomic::{Atomic, Relaxed},
        Arc, Completion, SpinLock,
    },
    workqueue::{impl_has_work, new_work, Work, WorkItem},
};

/// Ranges handed out and not yet freed, shared by concurrent test workers; counts the
/// ranges handed out while overlapping a live one (given out twice) and the failures.
#[pin_data]
pub(crate) struct LiveRanges {
    #[pin]
    ranges: SpinLock<KVec<(usize, usize)>>,
    overlaps: Atomic<u32>,
    failures: Atomic<u32>,
}

impl LiveRanges {
    /// An empty set.
    pub(crate) fn new() -> Result<Arc<Self>> {
        Arc::pin_init(
            pin_init!(Self {
                ranges <- new_spinlock!(KVec::new()),
                overlaps: Atomic::new(0),
                failures: Atomic::new(0),
            }),
            GFP_KERNEL,
        )
    }

    /// Records `start..end` as handed out.
    pub(crate) fn insert(&self, start: usize, end: usize) {
        let mut ranges = self.ranges.lock();
        if ranges.iter().any(|&(a, b)| start < b && a < end) {
            self.overlaps.add(1, Relaxed);
        }
        if ranges.push((start, end), GFP_ATOMIC).is_err() {
            self.fail();
        }
    }

    /// Forgets the range starting at `start`.
    pub(crate) fn remove(&self, start: usize) {
        self.ranges.lock().retain(|&mut (a, _)| a != start);
    }

    /// Counts a failure.
    pub(crate) fn fail(&self) {
        self.failures.add(1, Relaxed);
    }

    /// Ranges handed out twice.
    pub(crate) fn overlaps(&self) -> u32 {
        self.overlaps.load(Relaxed)
    }

    /// Failures counted.
    pub(crate) fn failures(&self) -> u32 {
        self.failures.load(Relaxed)
    }
}

/// Counts finished jobs of [`run_concurrently`].
#[pin_data]
struct Latch {
    remaining: Atomic<u32>,
    #[pin]
    done: Completion,
}

/// One job of [`run_concurrently`].
#[pin_data]
struct Job<T: Send + Sync + 'static> {
    shared: Arc<T>,
    seed: u64,
    body: fn(&T, u64),
    latch: Arc<Latch>,
    #[pin]
    work: Work<Job<T>>,
}

impl_has_work! {
    impl{T: Send + Sync + 'static} HasWork<Self> for Job<T> { self.work }
}

impl<T: Send + Sync + 'static> WorkItem for Job<T> {
    type Pointer = Arc<Job<T>>;

    fn run(this: Arc<Job<T>>) {
        (this.body)(&this.shared, this.seed);
        if this.latch.remaining.fetch_sub(1, Relaxed) == 1 {
            this.latch.done.complete_all();
        }
    }
}

/// Runs `body(shared, seed)` with seeds `1..=n` in `n` work items on the unbound
/// workqueue (so on every CPU) and waits for all of them.
pub(crate) fn run_concurrently<T: Send + Sync + 'static>(
    shared: &Arc<T>,
    n: u32,
    body: fn(&T, u64),
) -> Result {
    let latch = Arc::pin_init(
        pin_init!(Latch {
            remaining: Atomic::new(n),
            done <- Completion::new(),
        }),
        GFP_KERNEL,
    )?;
    for seed in 1..=u64::from(n) {
        let (shared, l) = (shared.clone(), latch.clone());
        let job = Arc::pin_init(
            pin_init!(Job {
                shared,
                seed,
                body,
                latch: l,
                work <- new_work!("unmapped_alloc_test_job"),
            }),
            GFP_KERNEL,
        );
        match job {
            Ok(job) => {
                let _ = crate::sys::system_dfl().enqueue(job);
            }
            Err(e) => {
                // Count the job that will never run, then report.
                if latch.remaining.fetch_sub(1, Relaxed) == 1 {
                    latch.done.complete_all();
                }
                latch.done.wait_for_completion();
                return Err(e);
            }
        }
    }
    latch.done.wait_for_completion();
    Ok(())
}

/// Marks the kernel log from its creation to its drop as holding expected splats:
/// refused frees are reported with the caller's stack, which the test scripts
/// (`tools/testing/splats.sh`) would otherwise count as a kernel splat. Only tests
/// that make bad calls hold one, for their duration.
pub(crate) struct ExpectSplats;

impl ExpectSplats {
    /// Starts the region.
    pub(crate) fn new() -> Self {
        kernel::pr_info!("expect splat begin\n");
        Self
    }
}

impl Drop for ExpectSplats {
    fn drop(&mut self) {
        kernel::pr_info!("expect splat end\n");
    }
}

/// `assert_eq!` for the helpers of the tests and the test-only consistency checks: says
/// what differed, where, and returns `EINVAL` from the enclosing function.
///
/// In a test function, the `kunit_tests` macro turns `assert_eq!` into a KUnit failure
/// of that test; anywhere else `assert_eq!` panics and takes the kernel down, so one
/// broken property (a `make mutants` bug, say) would hide every test after it. The
/// helpers return a [`Result`] instead, which the test propagates with `?` and KUnit
/// reports as the test's failure.
macro_rules! ensure_eq {
    ($left:expr, $right:expr $(,)?) => {
        match (&$left, &$right) {
            (left, right) => {
                if *left != *right {
                    ::kernel::pr_err!(
                        "{}:{}: check failed: {} == {}\n  left: {:?}\n right: {:?}\n",
                        file!(),
                        line!(),
                        stringify!($left),
                        stringify!($right),
                        left,
                        right
                    );
                    return Err(::kernel::error::code::EINVAL);
                }
            }
        }
    };
}

pub(crate) use ensure_eq;
