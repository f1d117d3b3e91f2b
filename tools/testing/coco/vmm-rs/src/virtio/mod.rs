// SPDX-License-Identifier: GPL-2.0
//! virtio-mmio devices (virtio 1.x, the modern MMIO transport, version 2).
//!
//! Each device has its own 0x200-byte window and a level-triggered SPI on
//! the vGICv3 (driven with KVM_IRQ_LINE: high while InterruptStatus is not
//! 0). The transport offers VIRTIO_F_VERSION_1 and VIRTIO_F_ACCESS_PLATFORM
//! besides the device's features and refuses FEATURES_OK without
//! VERSION_1 (no legacy interface). Queue notifications are served on the
//! vCPU thread that wrote QueueNotify, under the device's lock.

pub mod blk;
pub mod queue;
pub mod rng;

use crate::guest::GuestRam;
use queue::{Desc, VirtQueue};
use std::sync::Arc;
use virtio_bindings::bindings::virtio_config::{
    VIRTIO_CONFIG_S_FEATURES_OK, VIRTIO_CONFIG_S_NEEDS_RESET, VIRTIO_F_ACCESS_PLATFORM,
    VIRTIO_F_VERSION_1,
};
use virtio_bindings::bindings::virtio_mmio::*;
use virtio_queue::QueueT;

/// The first device's window; device i is at MMIO_BASE + i * MMIO_SIZE.
pub const MMIO_BASE: u64 = 0x0a00_0000;
pub const MMIO_SIZE: u64 = 0x200;
/// Device i's interrupt is SPI FIRST_SPI + i (INTID 32 + FIRST_SPI + i).
pub const FIRST_SPI: u32 = 16;

const MAGIC: u32 = 0x7472_6976; // "virt"
const VENDOR: u32 = 0x6d76_6175; // "uavm"
const QUEUE_MAX: u16 = 256;

/// An interrupt line to the guest.
pub trait Irq: Send + Sync {
    fn set_level(&self, level: bool);
}

/// What a device adds to the transport.
pub trait Device: Send {
    /// "virtio-blk", "virtio-rng": the report's prefix.
    fn name(&self) -> &'static str;
    fn device_id(&self) -> u32;
    /// Device-specific feature bits (the transport adds its own).
    fn features(&self) -> u64;
    fn num_queues(&self) -> usize;
    /// Bytes of the configuration space at `offset` (past the end: 0).
    fn read_config(&self, offset: u64, data: &mut [u8]);
    /// Serves one descriptor chain of queue `queue`; returns the bytes
    /// written to the chain's device-writable buffers.
    fn serve(&mut self, queue: usize, ram: &GuestRam, chain: &[Desc]) -> u32;
    /// The counters, one line each, without the "coco: <name> <i>: " prefix.
    fn report(&self) -> Vec<String>;
}

pub struct MmioTransport {
    pub index: usize,
    device: Box<dyn Device>,
    ram: Arc<GuestRam>,
    irq: Box<dyn Irq>,
    queues: Vec<VirtQueue>,
    status: u32,
    device_features_sel: u32,
    driver_features_sel: u32,
    driver_features: u64,
    queue_sel: u32,
    interrupt_status: u32,
    /// Notifications whose rings could not be read or written.
    ring_errors: u64,
    /// The features of the last FEATURES_OK (kept across resets: the
    /// guest resets its devices when it powers off).
    accepted: u64,
    /// Device resets by the driver.
    resets: u64,
}

impl MmioTransport {
    pub fn new(
        index: usize,
        device: Box<dyn Device>,
        ram: Arc<GuestRam>,
        irq: Box<dyn Irq>,
    ) -> Self {
        let queues = (0..device.num_queues())
            .map(|_| VirtQueue::new(QUEUE_MAX))
            .collect();
        MmioTransport {
            index,
            device,
            ram,
            irq,
            queues,
            status: 0,
            device_features_sel: 0,
            driver_features_sel: 0,
            driver_features: 0,
            queue_sel: 0,
            interrupt_status: 0,
            ring_errors: 0,
            accepted: 0,
            resets: 0,
        }
    }

    pub fn base(&self) -> u64 {
        MMIO_BASE + self.index as u64 * MMIO_SIZE
    }

    pub fn spi(&self) -> u32 {
        FIRST_SPI + self.index as u32
    }

    pub fn name(&self) -> &'static str {
        self.device.name()
    }

    fn offered(&self) -> u64 {
        self.device.features() | (1 << VIRTIO_F_VERSION_1) | (1 << VIRTIO_F_ACCESS_PLATFORM)
    }

    fn selected(&mut self) -> Option<&mut VirtQueue> {
        self.queues.get_mut(self.queue_sel as usize)
    }

    fn reset(&mut self) {
        self.queues.iter_mut().for_each(VirtQueue::reset);
        self.status = 0;
        self.device_features_sel = 0;
        self.driver_features_sel = 0;
        self.driver_features = 0;
        self.queue_sel = 0;
        self.interrupt_status = 0;
        self.irq.set_level(false);
    }

    fn interrupt(&mut self, bits: u32) {
        self.interrupt_status |= bits;
        // Also when already high: for a guest that made the SPI
        // edge-triggered, every event must be a new edge.
        self.irq.set_level(true);
    }

    /// A read of `data.len()` bytes at `offset` in the window.
    pub fn read(&mut self, offset: u64, data: &mut [u8]) {
        data.fill(0);
        if offset >= u64::from(VIRTIO_MMIO_CONFIG) {
            self.device
                .read_config(offset - u64::from(VIRTIO_MMIO_CONFIG), data);
            return;
        }
        // The registers are 32-bit wide, accessed 32 bits at a time.
        if data.len() != 4 || offset & 3 != 0 {
            return;
        }
        let v = match offset as u32 {
            VIRTIO_MMIO_MAGIC_VALUE => MAGIC,
            VIRTIO_MMIO_VERSION => 2,
            VIRTIO_MMIO_DEVICE_ID => self.device.device_id(),
            VIRTIO_MMIO_VENDOR_ID => VENDOR,
            VIRTIO_MMIO_DEVICE_FEATURES => match self.device_features_sel {
                0 => self.offered() as u32,
                1 => (self.offered() >> 32) as u32,
                _ => 0,
            },
            VIRTIO_MMIO_QUEUE_NUM_MAX => self.selected().map_or(0, |q| q.queue.max_size().into()),
            VIRTIO_MMIO_QUEUE_READY => self.selected().map_or(0, |q| q.queue.ready().into()),
            VIRTIO_MMIO_INTERRUPT_STATUS => self.interrupt_status,
            VIRTIO_MMIO_STATUS => self.status,
            // No shared memory regions: their length reads as -1.
            VIRTIO_MMIO_SHM_LEN_LOW | VIRTIO_MMIO_SHM_LEN_HIGH => u32::MAX,
            VIRTIO_MMIO_CONFIG_GENERATION => 0,
            _ => 0,
        };
        data.copy_from_slice(&v.to_le_bytes());
    }

    /// A write of `data` at `offset` in the window.
    pub fn write(&mut self, offset: u64, data: &[u8]) {
        // Configuration space writes: nothing of ours is writable.
        if offset >= u64::from(VIRTIO_MMIO_CONFIG) || data.len() != 4 || offset & 3 != 0 {
            return;
        }
        let v = u32::from_le_bytes(data.try_into().unwrap());
        match offset as u32 {
            VIRTIO_MMIO_DEVICE_FEATURES_SEL => self.device_features_sel = v,
            VIRTIO_MMIO_DRIVER_FEATURES_SEL => self.driver_features_sel = v,
            VIRTIO_MMIO_DRIVER_FEATURES => match self.driver_features_sel {
                0 => self.driver_features = self.driver_features & !0xffff_ffff | u64::from(v),
                1 => {
                    self.driver_features = self.driver_features & 0xffff_ffff | (u64::from(v) << 32)
                }
                _ => {}
            },
            VIRTIO_MMIO_QUEUE_SEL => self.queue_sel = v,
            VIRTIO_MMIO_QUEUE_NUM => {
                if let Some(q) = self.selected() {
                    q.queue.set_size(v as u16);
                }
            }
            VIRTIO_MMIO_QUEUE_READY => {
                let bad = self.selected().map(|q| q.set_ready(v == 1).is_err());
                if bad == Some(true) {
                    self.ring_errors += 1;
                    self.status |= VIRTIO_CONFIG_S_NEEDS_RESET;
                }
            }
            VIRTIO_MMIO_QUEUE_DESC_LOW
            | VIRTIO_MMIO_QUEUE_DESC_HIGH
            | VIRTIO_MMIO_QUEUE_AVAIL_LOW
            | VIRTIO_MMIO_QUEUE_AVAIL_HIGH
            | VIRTIO_MMIO_QUEUE_USED_LOW
            | VIRTIO_MMIO_QUEUE_USED_HIGH => {
                let reg = offset as u32;
                if let Some(q) = self.selected() {
                    let (lo, hi) = if reg & 7 == 0 {
                        (Some(v), None)
                    } else {
                        (None, Some(v))
                    };
                    match reg & !7 {
                        VIRTIO_MMIO_QUEUE_DESC_LOW => q.queue.set_desc_table_address(lo, hi),
                        VIRTIO_MMIO_QUEUE_AVAIL_LOW => q.queue.set_avail_ring_address(lo, hi),
                        _ => q.queue.set_used_ring_address(lo, hi),
                    }
                }
            }
            VIRTIO_MMIO_QUEUE_NOTIFY => self.notify(v as usize),
            VIRTIO_MMIO_INTERRUPT_ACK => {
                self.interrupt_status &= !v;
                self.irq.set_level(self.interrupt_status != 0);
            }
            VIRTIO_MMIO_STATUS => self.set_status(v),
            _ => {}
        }
    }

    fn set_status(&mut self, v: u32) {
        if v == 0 {
            self.resets += 1;
            self.reset();
            return;
        }
        let mut v = v;
        if v & VIRTIO_CONFIG_S_FEATURES_OK != 0 && self.status & VIRTIO_CONFIG_S_FEATURES_OK == 0 {
            // Only what was offered, and never the legacy interface.
            let ok = self.driver_features & !self.offered() == 0
                && self.driver_features & (1 << VIRTIO_F_VERSION_1) != 0;
            if ok {
                self.accepted = self.driver_features;
            } else {
                v &= !VIRTIO_CONFIG_S_FEATURES_OK;
            }
        }
        self.status = v | self.status & VIRTIO_CONFIG_S_NEEDS_RESET;
    }

    fn notify(&mut self, index: usize) {
        const DRIVER_OK: u32 = virtio_bindings::bindings::virtio_config::VIRTIO_CONFIG_S_DRIVER_OK;
        if self.status & DRIVER_OK == 0 || self.status & VIRTIO_CONFIG_S_NEEDS_RESET != 0 {
            return;
        }
        let Some(q) = self.queues.get_mut(index) else {
            return;
        };
        if !q.is_ready() {
            return;
        }
        let device = &mut self.device;
        let ram = &self.ram;
        match q.process(ram, |chain| device.serve(index, ram, chain)) {
            Ok(true) => self.interrupt(VIRTIO_MMIO_INT_VRING),
            Ok(false) => {}
            Err(_) => {
                // The guest gave the device rings it cannot use: the device
                // stops (NEEDS_RESET) and says so in its report.
                self.ring_errors += 1;
                self.status |= VIRTIO_CONFIG_S_NEEDS_RESET;
                self.interrupt(VIRTIO_MMIO_INT_CONFIG);
            }
        }
    }

    /// The report lines printed at exit.
    pub fn report(&self) -> Vec<String> {
        let chains: u64 = self.queues.iter().map(|q| q.served).sum();
        let mut lines: Vec<String> = self
            .device
            .report()
            .into_iter()
            .map(|l| format!("coco: {} {}: {l}", self.name(), self.index))
            .collect();
        lines.push(format!(
            "coco: {} {}: {chains} chains served, {} ring errors, {} resets, features 0x{:x}",
            self.name(),
            self.index,
            self.ring_errors,
            self.resets,
            self.accepted
        ));
        lines
    }
}

#[cfg(test)]
pub mod tests {
    use super::queue::tests::{Driver, BASE};
    use super::*;
    use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

    #[derive(Default)]
    pub struct TestIrq {
        pub level: AtomicBool,
        pub raised: AtomicU32,
    }

    impl Irq for Arc<TestIrq> {
        fn set_level(&self, level: bool) {
            self.level.store(level, Ordering::SeqCst);
            if level {
                self.raised.fetch_add(1, Ordering::SeqCst);
            }
        }
    }

    pub fn rd(t: &mut MmioTransport, off: u32) -> u32 {
        let mut b = [0u8; 4];
        t.read(off.into(), &mut b);
        u32::from_le_bytes(b)
    }

    pub fn wr(t: &mut MmioTransport, off: u32, v: u32) {
        t.write(off.into(), &v.to_le_bytes());
    }

    /// What Linux's virtio_mmio does up to DRIVER_OK, for queue 0 on `drv`.
    pub fn bring_up(t: &mut MmioTransport, drv: &Driver) -> u64 {
        assert_eq!(rd(t, VIRTIO_MMIO_MAGIC_VALUE), MAGIC);
        assert_eq!(rd(t, VIRTIO_MMIO_VERSION), 2);
        wr(t, VIRTIO_MMIO_STATUS, 0);
        wr(t, VIRTIO_MMIO_STATUS, 1);
        wr(t, VIRTIO_MMIO_STATUS, 3);
        wr(t, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 0);
        let lo = rd(t, VIRTIO_MMIO_DEVICE_FEATURES);
        wr(t, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 1);
        let hi = rd(t, VIRTIO_MMIO_DEVICE_FEATURES);
        let features = (u64::from(hi) << 32) | u64::from(lo);
        wr(t, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 0);
        wr(t, VIRTIO_MMIO_DRIVER_FEATURES, lo);
        wr(t, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 1);
        wr(t, VIRTIO_MMIO_DRIVER_FEATURES, hi);
        wr(t, VIRTIO_MMIO_STATUS, 3 | VIRTIO_CONFIG_S_FEATURES_OK);
        assert_ne!(rd(t, VIRTIO_MMIO_STATUS) & VIRTIO_CONFIG_S_FEATURES_OK, 0);
        wr(t, VIRTIO_MMIO_QUEUE_SEL, 0);
        assert_eq!(rd(t, VIRTIO_MMIO_QUEUE_READY), 0);
        assert_eq!(rd(t, VIRTIO_MMIO_QUEUE_NUM_MAX), 256);
        wr(t, VIRTIO_MMIO_QUEUE_NUM, drv.size.into());
        wr(t, VIRTIO_MMIO_QUEUE_DESC_LOW, drv.desc as u32);
        wr(t, VIRTIO_MMIO_QUEUE_DESC_HIGH, (drv.desc >> 32) as u32);
        wr(t, VIRTIO_MMIO_QUEUE_AVAIL_LOW, drv.avail as u32);
        wr(t, VIRTIO_MMIO_QUEUE_AVAIL_HIGH, (drv.avail >> 32) as u32);
        wr(t, VIRTIO_MMIO_QUEUE_USED_LOW, drv.used as u32);
        wr(t, VIRTIO_MMIO_QUEUE_USED_HIGH, (drv.used >> 32) as u32);
        wr(t, VIRTIO_MMIO_QUEUE_READY, 1);
        assert_eq!(rd(t, VIRTIO_MMIO_QUEUE_READY), 1);
        wr(t, VIRTIO_MMIO_STATUS, 7 | VIRTIO_CONFIG_S_FEATURES_OK);
        features
    }

    #[test]
    fn transport_refuses_legacy_and_unknown_features() {
        let ram = Arc::new(GuestRam::new(BASE, 1 << 20).unwrap());
        let irq = Arc::new(TestIrq::default());
        let dev = rng::Rng::new().unwrap();
        let mut t = MmioTransport::new(0, Box::new(dev), ram, Box::new(irq));
        assert_eq!(rd(&mut t, VIRTIO_MMIO_DEVICE_ID), 4);
        wr(&mut t, VIRTIO_MMIO_STATUS, 3);
        wr(&mut t, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 0);
        wr(&mut t, VIRTIO_MMIO_DRIVER_FEATURES, 0);
        wr(&mut t, VIRTIO_MMIO_STATUS, 3 | VIRTIO_CONFIG_S_FEATURES_OK);
        assert_eq!(rd(&mut t, VIRTIO_MMIO_STATUS), 3);
        wr(&mut t, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 1);
        wr(&mut t, VIRTIO_MMIO_DRIVER_FEATURES, 1 | (1 << 7));
        wr(&mut t, VIRTIO_MMIO_STATUS, 3 | VIRTIO_CONFIG_S_FEATURES_OK);
        assert_eq!(rd(&mut t, VIRTIO_MMIO_STATUS), 3);
        wr(&mut t, VIRTIO_MMIO_DRIVER_FEATURES, 3);
        wr(&mut t, VIRTIO_MMIO_STATUS, 3 | VIRTIO_CONFIG_S_FEATURES_OK);
        assert_eq!(
            rd(&mut t, VIRTIO_MMIO_STATUS),
            3 | VIRTIO_CONFIG_S_FEATURES_OK
        );
        // No queue 1; no shared memory.
        wr(&mut t, VIRTIO_MMIO_QUEUE_SEL, 1);
        assert_eq!(rd(&mut t, VIRTIO_MMIO_QUEUE_NUM_MAX), 0);
        assert_eq!(rd(&mut t, VIRTIO_MMIO_SHM_LEN_LOW), u32::MAX);
    }

    #[test]
    fn private_rings_need_reset_not_crash() {
        let ram = Arc::new(GuestRam::new(BASE, 1 << 20).unwrap());
        let irq = Arc::new(TestIrq::default());
        let dev = rng::Rng::new().unwrap();
        let mut t = MmioTransport::new(0, Box::new(dev), ram.clone(), Box::new(irq.clone()));
        let mut drv = Driver::new(&ram, BASE + 0x1000, 16);
        bring_up(&mut t, &drv);
        drv.add(&ram, &[(BASE + 0x8000, 64, true)]);
        ram.make_private(drv.avail);
        wr(&mut t, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
        assert_ne!(
            rd(&mut t, VIRTIO_MMIO_STATUS) & VIRTIO_CONFIG_S_NEEDS_RESET,
            0
        );
        assert_eq!(
            rd(&mut t, VIRTIO_MMIO_INTERRUPT_STATUS),
            VIRTIO_MMIO_INT_CONFIG
        );
        assert!(irq.level.load(Ordering::SeqCst));
        wr(&mut t, VIRTIO_MMIO_INTERRUPT_ACK, VIRTIO_MMIO_INT_CONFIG);
        assert!(!irq.level.load(Ordering::SeqCst));
        assert!(t
            .report()
            .last()
            .unwrap()
            .contains("0 chains served, 1 ring errors"));
        // A reset clears it.
        wr(&mut t, VIRTIO_MMIO_STATUS, 0);
        assert_eq!(rd(&mut t, VIRTIO_MMIO_STATUS), 0);
    }
}
