// SPDX-License-Identifier: GPL-2.0
//! Guest RAM: one vm-memory `GuestMemoryMmap` region over the anonymous
//! mapping that is also the KVM memslot, and fault-safe accesses to it.
//!
//! vm-memory translates and bounds-checks guest-physical addresses; the copy
//! itself is `safe_copy`'s, since vm-memory's own accessors are plain loads
//! and stores that a private page of a protected VM turns into SIGSEGV.

use crate::safe_copy;
use vm_memory::{GuestAddress, GuestMemoryBackend, GuestMemoryMmap, GuestRegionMmap, MmapRegion};

/// Why an access to guest memory did not happen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Not (entirely) in guest RAM.
    Outside,
    /// The host may not touch the page: pKVM refused the access.
    Refused,
}

pub struct GuestRam {
    mem: GuestMemoryMmap,
    base: u64,
    size: u64,
}

impl GuestRam {
    /// `size` bytes of anonymous memory at guest-physical `base`: private,
    /// not reserved (the guest gets each page as it first faults it in).
    pub fn new(base: u64, size: u64) -> std::io::Result<Self> {
        let err = |e: &dyn std::fmt::Display| std::io::Error::other(e.to_string());
        let len = usize::try_from(size).map_err(|e| err(&e))?;
        let region = MmapRegion::build(
            None,
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
        )
        .map_err(|e| err(&e))?;
        let region = GuestRegionMmap::new(region, GuestAddress(base))
            .ok_or_else(|| err(&"guest RAM beyond the address space"))?;
        let mem = GuestMemoryMmap::from_regions(vec![region]).map_err(|e| err(&e))?;
        safe_copy::install();
        Ok(GuestRam { mem, base, size })
    }

    pub fn memory(&self) -> &GuestMemoryMmap {
        &self.mem
    }

    pub fn base(&self) -> u64 {
        self.base
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    /// Where the VMM maps guest RAM (the memslot's userspace address).
    pub fn host_address(&self) -> u64 {
        self.host_ptr(self.base, 0).map_or(0, |p| p as u64)
    }

    /// The VMM's address of `len` bytes at `gpa`, if all are in guest RAM.
    fn host_ptr(&self, gpa: u64, len: usize) -> Result<*mut u8, Access> {
        let slice = self
            .mem
            .get_slice(GuestAddress(gpa), len.max(1))
            .map_err(|_| Access::Outside)?;
        let ptr = slice.ptr_guard_mut().as_ptr();
        Ok(ptr)
    }

    /// Reads `buf.len()` bytes at guest-physical `gpa`.
    pub fn read(&self, gpa: u64, buf: &mut [u8]) -> Result<(), Access> {
        if buf.is_empty() {
            return Ok(());
        }
        let src = self.host_ptr(gpa, buf.len())?;
        // SAFETY: src..src + len is inside the mapping of guest RAM, which
        // lives as long as self; buf is ours. Faults are recovered.
        unsafe { safe_copy::copy(buf.as_mut_ptr(), src, buf.len()) }.map_err(|_| Access::Refused)
    }

    /// Writes `buf` at guest-physical `gpa`.
    pub fn write(&self, gpa: u64, buf: &[u8]) -> Result<(), Access> {
        if buf.is_empty() {
            return Ok(());
        }
        let dst = self.host_ptr(gpa, buf.len())?;
        // SAFETY: as in read(), the other way.
        unsafe { safe_copy::copy(dst, buf.as_ptr(), buf.len()) }.map_err(|_| Access::Refused)
    }

    /// Makes the page at `gpa` inaccessible to the VMM, as pKVM makes a
    /// private page: for the tests.
    #[cfg(test)]
    pub fn make_private(&self, gpa: u64) {
        let p = self.host_ptr(gpa & !0xfff, 4096).unwrap();
        // SAFETY: a whole page of our own mapping of guest RAM.
        assert_eq!(
            unsafe { libc::mprotect(p.cast(), 4096, libc::PROT_NONE) },
            0
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_writes_and_refusals() {
        let ram = GuestRam::new(0x4000_0000, 1 << 20).unwrap();
        ram.write(0x4000_1000, b"hello").unwrap();
        let mut b = [0u8; 5];
        ram.read(0x4000_1000, &mut b).unwrap();
        assert_eq!(&b, b"hello");
        assert_eq!(ram.read(0x3fff_ffff, &mut b), Err(Access::Outside));
        assert_eq!(ram.read(0x400f_fffe, &mut b), Err(Access::Outside));
        ram.make_private(0x4000_2000);
        assert_eq!(ram.read(0x4000_2ffe, &mut b), Err(Access::Refused));
        assert_eq!(ram.write(0x4000_2000, &b), Err(Access::Refused));
        ram.read(0x4000_1ffb, &mut b).unwrap();
    }
}
