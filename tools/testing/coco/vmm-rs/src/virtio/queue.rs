// SPDX-License-Identifier: GPL-2.0
//! A split virtqueue served by virtio-queue's `Queue` on a shadow of the
//! guest's rings.
//!
//! virtio-queue reads descriptors and the available ring, and writes the
//! used ring, with vm-memory's plain loads and stores: on a ring page the
//! guest did not share (or unshared meanwhile) that is a SIGSEGV in the
//! VMM, not a device error. Probing the rings before each use would leave a
//! window in which a hostile guest unshares them. So `Queue` never sees
//! guest memory: it runs on a private `GuestMemoryMmap` of the VMM that has
//! the three ring areas at their guest-physical addresses. On each
//! notification the VMM copies the guest's available index, then its
//! available ring and descriptor table, into the shadow with the fault-safe
//! copy (in that order, with an acquire barrier after the index, as the
//! virtio spec orders a device's reads); `Queue` pops the chains and adds
//! used elements in the shadow; the new used elements, then (after a
//! release barrier) the used index, are copied back to the guest.
//!
//! Descriptor buffers are read and written by the devices through
//! `GuestRam`, also fault-safe. Indirect descriptors are not offered; a
//! chain that uses one anyway reads its table from the shadow, where it is
//! not, and ends there.

use crate::guest::GuestRam;
use std::sync::atomic::{fence, Ordering};
use virtio_queue::{Queue, QueueT};
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap, GuestRegionMmap};

/// One buffer of a descriptor chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Desc {
    pub addr: u64,
    pub len: u32,
    /// Device-writable (VIRTQ_DESC_F_WRITE).
    pub write: bool,
}

/// The queue's rings could not be used (not in RAM, overlapping, private).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RingError;

struct Shadow {
    mem: GuestMemoryMmap,
    desc: (u64, usize),
    avail: (u64, usize),
    used: u64,
    size: u16,
}

pub struct VirtQueue {
    pub queue: Queue,
    shadow: Option<Shadow>,
    /// The used index the guest has been given.
    published: u16,
    /// Descriptor chains served.
    pub served: u64,
}

impl VirtQueue {
    pub fn new(max_size: u16) -> Self {
        VirtQueue {
            queue: Queue::new(max_size).expect("a power of two"),
            shadow: None,
            published: 0,
            served: 0,
        }
    }

    pub fn reset(&mut self) {
        self.queue.reset();
        self.shadow = None;
        self.published = 0;
    }

    /// The driver set QueueReady to `ready`.
    pub fn set_ready(&mut self, ready: bool) -> Result<(), RingError> {
        self.queue.set_ready(ready);
        self.shadow = None;
        self.published = 0;
        if !ready {
            return Ok(());
        }
        let size = self.queue.size();
        let n = u64::from(size);
        let desc = (self.queue.desc_table(), 16 * n);
        let avail = (self.queue.avail_ring(), 6 + 2 * n);
        let used = (self.queue.used_ring(), 6 + 8 * n);
        let mut areas = [desc, avail, used];
        areas.sort_unstable();
        let regions = areas
            .iter()
            .map(|&(a, l)| GuestRegionMmap::from_range(GuestAddress(a), l as usize, None))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| RingError)?;
        // Overlapping or wrapping rings are refused here.
        let mem = GuestMemoryMmap::from_regions(regions).map_err(|_| RingError)?;
        self.shadow = Some(Shadow {
            mem,
            desc: (desc.0, desc.1 as usize),
            avail: (avail.0, avail.1 as usize),
            used: used.0,
            size,
        });
        Ok(())
    }

    pub fn is_ready(&self) -> bool {
        self.shadow.is_some()
    }

    /// Serves every chain the driver made available: `serve` gets the
    /// chain's buffers and returns the bytes it wrote to them. Returns
    /// whether any chain was used.
    pub fn process(
        &mut self,
        ram: &GuestRam,
        mut serve: impl FnMut(&[Desc]) -> u32,
    ) -> Result<bool, RingError> {
        let sh = self.shadow.as_ref().ok_or(RingError)?;
        let mut buf = vec![0u8; sh.desc.1.max(sh.avail.1)];
        // The index first, then what it covers.
        let mut idx = [0u8; 2];
        ram.read(sh.avail.0 + 2, &mut idx).map_err(|_| RingError)?;
        fence(Ordering::Acquire);
        let ring = &mut buf[..sh.avail.1];
        ram.read(sh.avail.0, ring).map_err(|_| RingError)?;
        ring[2..4].copy_from_slice(&idx);
        sh.mem
            .write_slice(ring, GuestAddress(sh.avail.0))
            .map_err(|_| RingError)?;
        let table = &mut buf[..sh.desc.1];
        ram.read(sh.desc.0, table).map_err(|_| RingError)?;
        sh.mem
            .write_slice(table, GuestAddress(sh.desc.0))
            .map_err(|_| RingError)?;

        let mut used = false;
        let mut descs = Vec::new();
        while let Some(chain) = self.queue.pop_descriptor_chain(&sh.mem) {
            let head = chain.head_index();
            descs.clear();
            descs.extend(chain.map(|d| Desc {
                addr: d.addr().0,
                len: d.len(),
                write: d.is_write_only(),
            }));
            let len = serve(&descs);
            self.queue
                .add_used(&sh.mem, head, len)
                .map_err(|_| RingError)?;
            self.served += 1;
            used = true;
        }

        // The new used elements, then the index that publishes them.
        let next = self.queue.next_used();
        let mut elem = [0u8; 8];
        while self.published != next {
            let at = sh.used + 4 + 8 * u64::from(self.published % sh.size);
            sh.mem
                .read_slice(&mut elem, GuestAddress(at))
                .map_err(|_| RingError)?;
            ram.write(at, &elem).map_err(|_| RingError)?;
            self.published = self.published.wrapping_add(1);
        }
        if used {
            fence(Ordering::Release);
            ram.write(sh.used + 2, &next.to_le_bytes())
                .map_err(|_| RingError)?;
        }
        Ok(used)
    }
}

#[cfg(test)]
pub mod tests {
    use super::*;

    /// A driver's side of a split ring in guest RAM, for the tests.
    pub struct Driver {
        pub desc: u64,
        pub avail: u64,
        pub used: u64,
        pub size: u16,
        next_desc: u16,
        avail_idx: u16,
    }

    impl Driver {
        pub fn new(ram: &GuestRam, at: u64, size: u16) -> Self {
            let n = u64::from(size);
            let d = Driver {
                desc: at,
                avail: at + 16 * n,
                used: (at + 16 * n + 6 + 2 * n + 4095) & !4095,
                size,
                next_desc: 0,
                avail_idx: 0,
            };
            ram.write(at, &vec![0; (d.used + 6 + 8 * n - at) as usize])
                .unwrap();
            d
        }

        pub fn setup(&self, q: &mut VirtQueue) -> Result<(), RingError> {
            q.queue.set_size(self.size);
            q.queue
                .set_desc_table_address(Some(self.desc as u32), Some((self.desc >> 32) as u32));
            q.queue
                .set_avail_ring_address(Some(self.avail as u32), Some((self.avail >> 32) as u32));
            q.queue
                .set_used_ring_address(Some(self.used as u32), Some((self.used >> 32) as u32));
            q.set_ready(true)
        }

        /// Adds a chain of (gpa, len, device-writable) buffers; returns its head.
        pub fn add(&mut self, ram: &GuestRam, bufs: &[(u64, u32, bool)]) -> u16 {
            let head = self.next_desc;
            for (i, &(addr, len, write)) in bufs.iter().enumerate() {
                let idx = self.next_desc;
                self.next_desc = (self.next_desc + 1) % self.size;
                let mut flags = if write { 2u16 } else { 0 };
                if i + 1 < bufs.len() {
                    flags |= 1;
                }
                let mut d = [0u8; 16];
                d[0..8].copy_from_slice(&addr.to_le_bytes());
                d[8..12].copy_from_slice(&len.to_le_bytes());
                d[12..14].copy_from_slice(&flags.to_le_bytes());
                d[14..16].copy_from_slice(&self.next_desc.to_le_bytes());
                ram.write(self.desc + 16 * u64::from(idx), &d).unwrap();
            }
            let slot = self.avail + 4 + 2 * u64::from(self.avail_idx % self.size);
            ram.write(slot, &head.to_le_bytes()).unwrap();
            self.avail_idx = self.avail_idx.wrapping_add(1);
            ram.write(self.avail + 2, &self.avail_idx.to_le_bytes())
                .unwrap();
            head
        }

        pub fn used_idx(&self, ram: &GuestRam) -> u16 {
            let mut b = [0u8; 2];
            ram.read(self.used + 2, &mut b).unwrap();
            u16::from_le_bytes(b)
        }

        /// The used element `i`: (head, len).
        pub fn used_elem(&self, ram: &GuestRam, i: u16) -> (u32, u32) {
            let mut b = [0u8; 8];
            ram.read(self.used + 4 + 8 * u64::from(i % self.size), &mut b)
                .unwrap();
            (
                u32::from_le_bytes(b[..4].try_into().unwrap()),
                u32::from_le_bytes(b[4..].try_into().unwrap()),
            )
        }
    }

    pub const BASE: u64 = 0x4000_0000;

    #[test]
    fn chains_are_served_and_published() {
        let ram = GuestRam::new(BASE, 1 << 20).unwrap();
        let mut drv = Driver::new(&ram, BASE + 0x1000, 8);
        let mut q = VirtQueue::new(256);
        drv.setup(&mut q).unwrap();
        let h0 = drv.add(
            &ram,
            &[(BASE + 0x8000, 16, false), (BASE + 0x9000, 1, true)],
        );
        let h1 = drv.add(&ram, &[(BASE + 0xa000, 512, true)]);
        let mut seen = Vec::new();
        let used = q
            .process(&ram, |d| {
                seen.push(d.to_vec());
                d.iter().filter(|d| d.write).map(|d| d.len).sum()
            })
            .unwrap();
        assert!(used);
        assert_eq!(seen.len(), 2);
        assert_eq!(
            seen[0][1],
            Desc {
                addr: BASE + 0x9000,
                len: 1,
                write: true
            }
        );
        assert_eq!(drv.used_idx(&ram), 2);
        assert_eq!(drv.used_elem(&ram, 0), (u32::from(h0), 1));
        assert_eq!(drv.used_elem(&ram, 1), (u32::from(h1), 512));
        // Nothing new: nothing used, the index stays.
        assert!(!q.process(&ram, |_| 0).unwrap());
        // Wrap around the ring several times.
        for i in 0..20u64 {
            drv.add(&ram, &[(BASE + 0x8000 + i, 1, true)]);
            assert!(q.process(&ram, |_| 1).unwrap());
        }
        assert_eq!(drv.used_idx(&ram), 22);
    }

    #[test]
    fn private_or_bad_rings_are_errors() {
        let ram = GuestRam::new(BASE, 1 << 20).unwrap();
        let mut drv = Driver::new(&ram, BASE + 0x1000, 8);
        let mut q = VirtQueue::new(256);
        drv.setup(&mut q).unwrap();
        drv.add(&ram, &[(BASE + 0x8000, 16, true)]);
        ram.make_private(drv.desc);
        assert_eq!(q.process(&ram, |_| 0), Err(RingError));
        // Overlapping rings are refused when the queue is made ready.
        let mut q = VirtQueue::new(256);
        q.queue.set_size(8);
        q.queue
            .set_desc_table_address(Some((BASE + 0x1000) as u32), Some(0));
        q.queue
            .set_avail_ring_address(Some((BASE + 0x1040) as u32), Some(0));
        q.queue
            .set_used_ring_address(Some((BASE + 0x2000) as u32), Some(0));
        assert_eq!(q.set_ready(true), Err(RingError));
        // Rings outside RAM: an error at the first notification.
        let mut q = VirtQueue::new(256);
        let drv2 = Driver {
            desc: 0x1000,
            avail: 0x2000,
            used: 0x3000,
            size: 8,
            next_desc: 0,
            avail_idx: 0,
        };
        drv2.setup(&mut q).unwrap();
        assert_eq!(q.process(&ram, |_| 0), Err(RingError));
    }

    #[test]
    fn an_indirect_chain_ends_without_harm() {
        let ram = GuestRam::new(BASE, 1 << 20).unwrap();
        let mut drv = Driver::new(&ram, BASE + 0x1000, 8);
        let mut q = VirtQueue::new(256);
        drv.setup(&mut q).unwrap();
        let head = drv.add(&ram, &[(BASE + 0x8000, 32, false)]);
        // Make it VIRTQ_DESC_F_INDIRECT, pointing at a private page.
        ram.make_private(BASE + 0x8000);
        ram.write(drv.desc + 16 * u64::from(head) + 12, &4u16.to_le_bytes())
            .unwrap();
        let mut lens = Vec::new();
        q.process(&ram, |d| {
            lens.push(d.len());
            0
        })
        .unwrap();
        assert_eq!(lens, [0]);
        assert_eq!(drv.used_idx(&ram), 1);
    }
}
