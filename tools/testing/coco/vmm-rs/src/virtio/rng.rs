// SPDX-License-Identifier: GPL-2.0
//! virtio-rng: fills the guest's buffers from the host's /dev/urandom.

use super::queue::Desc;
use super::Device;
use crate::guest::GuestRam;
use std::fs::File;
use std::io::{self, Read};
use virtio_bindings::virtio_ids::VIRTIO_ID_RNG;

/// At most this much per request.
const MAX_REQUEST: usize = 64 << 10;

pub struct Rng {
    source: File,
    pub requests: u64,
    pub bytes: u64,
    /// Buffers the VMM could not write (private memory, or outside RAM).
    pub refused: u64,
}

impl Rng {
    pub fn new() -> io::Result<Self> {
        Ok(Rng {
            source: File::open("/dev/urandom")?,
            requests: 0,
            bytes: 0,
            refused: 0,
        })
    }
}

impl Device for Rng {
    fn name(&self) -> &'static str {
        "virtio-rng"
    }

    fn device_id(&self) -> u32 {
        VIRTIO_ID_RNG
    }

    fn features(&self) -> u64 {
        0
    }

    fn num_queues(&self) -> usize {
        1
    }

    fn read_config(&self, _offset: u64, _data: &mut [u8]) {}

    fn serve(&mut self, _queue: usize, ram: &GuestRam, chain: &[Desc]) -> u32 {
        self.requests += 1;
        let mut written = 0usize;
        let mut buf = [0u8; 4096];
        'chain: for d in chain.iter().filter(|d| d.write) {
            let mut done = 0usize;
            while done < d.len as usize && written < MAX_REQUEST {
                let n = (d.len as usize - done)
                    .min(buf.len())
                    .min(MAX_REQUEST - written);
                if self.source.read_exact(&mut buf[..n]).is_err() {
                    break 'chain;
                }
                if ram
                    .write(d.addr.wrapping_add(done as u64), &buf[..n])
                    .is_err()
                {
                    self.refused += 1;
                    break 'chain;
                }
                done += n;
                written += n;
            }
        }
        self.bytes += written as u64;
        written as u32
    }

    fn report(&self) -> Vec<String> {
        vec![format!(
            "{} requests, {} bytes, {} refused",
            self.requests, self.bytes, self.refused
        )]
    }
}

#[cfg(test)]
mod tests {
    use super::super::queue::tests::{Driver, BASE};
    use super::super::tests::{bring_up, wr, TestIrq};
    use super::super::MmioTransport;
    use super::*;
    use std::sync::Arc;
    use virtio_bindings::bindings::virtio_mmio::VIRTIO_MMIO_QUEUE_NOTIFY;

    #[test]
    fn fills_buffers_and_survives_private_ones() {
        let ram = Arc::new(GuestRam::new(BASE, 1 << 20).unwrap());
        let irq = Arc::new(TestIrq::default());
        let mut t =
            MmioTransport::new(1, Box::new(Rng::new().unwrap()), ram.clone(), Box::new(irq));
        assert_eq!((t.base(), t.spi()), (0x0a00_0200, 17));
        let mut drv = Driver::new(&ram, BASE + 0x1000, 8);
        bring_up(&mut t, &drv);
        ram.write(BASE + 0x8000, &[0; 64]).unwrap();
        drv.add(&ram, &[(BASE + 0x8000, 64, true)]);
        ram.make_private(BASE + 0x9000);
        drv.add(&ram, &[(BASE + 0x9000, 32, true)]);
        wr(&mut t, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
        let mut b = [0u8; 64];
        ram.read(BASE + 0x8000, &mut b).unwrap();
        assert!(b.iter().any(|&x| x != 0));
        assert_eq!(drv.used_idx(&ram), 2);
        assert_eq!(drv.used_elem(&ram, 0).1, 64);
        assert_eq!(drv.used_elem(&ram, 1).1, 0);
        assert_eq!(
            t.report()[0],
            "coco: virtio-rng 1: 2 requests, 64 bytes, 1 refused"
        );
    }
}
