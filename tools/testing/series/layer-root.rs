// SPDX-License-Identifier: GPL-2.0

//! Allocator for memory in a special direct map state: pages removed from the kernel
//! direct map, and memory shared with the host of a confidential guest.
//!
//! Layout: all `unsafe` code is in [`sys`], the thin layer over the kernel's primitives.
//! Every other module denies `unsafe` code at compile time.

// The page allocator, the layer's first user, comes with the next patch.
#[expect(dead_code, unused_imports)]
mod sys;
