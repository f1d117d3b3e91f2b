// SPDX-License-Identifier: GPL-2.0

//! Vectors of page ranges sorted by their first frame: the pools' blocks and the
//! caches' slabs.

#![deny(unsafe_code)]

use crate::sys::Pfn;
use kernel::prelude::*;

/// Something that starts at a frame.
pub(crate) trait Start {
    /// The first frame.
    fn start(&self) -> Pfn;
}

/// Index of the last element starting at or before `pfn` (the only one that can
/// contain it).
pub(crate) fn floor<T: Start>(v: &[T], pfn: Pfn) -> Option<usize> {
    match v.binary_search_by_key(&pfn, |e| e.start()) {
        Ok(i) => Some(i),
        Err(0) => None,
        Err(i) => Some(i - 1),
    }
}

/// Inserts `item` in order and returns its index. Callers hold a spinlock, so the
/// vector grows with `GFP_ATOMIC`; if it cannot, `item` is handed back.
pub(crate) fn insert<T: Start>(v: &mut KVec<T>, item: T) -> core::result::Result<usize, T> {
    let i = match v.binary_search_by_key(&item.start(), |e| e.start()) {
        Ok(i) | Err(i) => i,
    };
    if v.len() == v.capacity() && v.reserve(8, GFP_ATOMIC).is_err() {
        return Err(item);
    }
    let len = v.len();
    v.push_within_capacity(item).map_err(|e| e.0)?;
    v[i..=len].rotate_right(1);
    Ok(i)
}
