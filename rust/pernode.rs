// SPDX-License-Identifier: GPL-2.0

//! One value per possible NUMA node, each under its own IRQ-safe lock.

#![deny(unsafe_code)]

use crate::sys::{self, IrqSpinLock};
use kernel::{prelude::*, sync::LockClassKey};

/// `T` for every possible node id, each behind its own [`IrqSpinLock`].
pub(crate) struct PerNode<T>(KVec<Pin<KBox<IrqSpinLock<T>>>>);

impl<T> PerNode<T> {
    /// Calls `make` for every possible node; the locks get the class `key`. Use
    /// [`new_per_node`] to have one class per call site.
    pub(crate) fn new(
        make: impl Fn() -> T,
        name: &'static CStr,
        key: Pin<&'static LockClassKey>,
    ) -> Result<Self> {
        let mut v = KVec::with_capacity(sys::nr_node_ids(), GFP_KERNEL)?;
        for _ in 0..sys::nr_node_ids() {
            v.push(
                KBox::pin_init(IrqSpinLock::new(make(), name, key), GFP_KERNEL)?,
                GFP_KERNEL,
            )?;
        }
        Ok(Self(v))
    }

    /// The lock of node `nid`, if it is a possible node.
    pub(crate) fn get(&self, nid: i32) -> Option<&IrqSpinLock<T>> {
        usize::try_from(nid)
            .ok()
            .and_then(|n| self.0.get(n))
            .map(|l| &**l)
    }

    /// The locks of all nodes, by node id.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &IrqSpinLock<T>> {
        self.0.iter().map(|l| &**l)
    }

    /// Number of node ids.
    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }
}

/// Creates a [`PerNode`] whose locks have a lock class of their own.
macro_rules! new_per_node {
    ($make:expr, $name:literal) => {
        $crate::pernode::PerNode::new($make, $name, kernel::static_lock_class!())
    };
}
pub(crate) use new_per_node;
