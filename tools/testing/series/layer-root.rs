// SPDX-License-Identifier: GPL-2.0

//! Allocator for memory in a special direct map state: pages removed from the kernel
//! direct map, and memory shared with the host of a confidential guest.
//!
//! Layout: all `unsafe` code is in [`sys`], the thin layer over the kernel's primitives.
//! Every other module denies `unsafe` code at compile time.

// The page allocator, the layer's first user, comes with the next patch.
#[expect(dead_code, unused_imports, unused_macros)]
mod sys;
// The test of the tests: the layer's bug detector hooks have mutants; the
// module parameter that sets one comes with the page allocator.
#[expect(dead_code)]
mod mutant;

/// The prefix of the layer's messages, until `module!` defines it with the module.
const __LOG_PREFIX: &[u8] = b"unmapped_alloc\0";
