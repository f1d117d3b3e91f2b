// SPDX-License-Identifier: GPL-2.0

//! A virtio-like consumer in a confidential guest: a ring shared with the host, and
//! bounce buffers allocated and freed in bursts under a spinlock (atomic context),
//! the way a network driver's transmit path would, served from the decrypted
//! allocator's atomic reserve without any conversion.

use kernel::{
    new_spinlock,
    prelude::*,
    unmapped_alloc::{DecryptedBuf, DecryptedPages},
};

module! {
    type: VirtioLike,
    name: "virtio_like_sample",
    authors: ["unmapped_alloc developers"],
    description: "virtio-like consumer of unmapped_alloc's decrypted memory",
    license: "GPL",
}

const BURSTS: usize = 50;
const BURST: usize = 32;
const PACKET: usize = 1536;

struct VirtioLike {
    _ring: DecryptedPages,
}

/// Transmit state, protected by the queue lock like a driver's TX queue.
struct TxQueue {
    in_flight: KVec<DecryptedBuf>,
    sent: usize,
    failed: usize,
}

impl kernel::Module for VirtioLike {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        // The descriptor ring: two pages shared with the device model on the host.
        let ring = DecryptedPages::alloc(GFP_KERNEL | __GFP_ZERO, 1)?;
        let queue = KBox::pin_init(
            new_spinlock!(TxQueue {
                in_flight: KVec::with_capacity(BURST, GFP_KERNEL)?,
                sent: 0,
                failed: 0,
            }),
            GFP_KERNEL,
        )?;
        let packet = [0x5au8; 64];
        for burst in 0..BURSTS {
            let mut q = queue.lock();
            // Atomic context: the queue lock is held.
            for i in 0..BURST {
                match DecryptedBuf::alloc(PACKET, GFP_ATOMIC) {
                    Ok(buf) => {
                        buf.write(0, &packet)?;
                        ring.write((i % 64) * 64, &buf.phys_addr().to_le_bytes())?;
                        if q.in_flight.push_within_capacity(buf).is_err() {
                            q.failed += 1;
                        }
                    }
                    Err(_) => q.failed += 1,
                }
            }
            // The host consumed the burst: complete it, freeing the buffers.
            q.sent += q.in_flight.len();
            q.in_flight.clear();
            drop(q);
            if burst == 0 {
                pr_info!(
                    "first burst of {} x {} B bounce buffers sent\n",
                    BURST,
                    PACKET
                );
            }
        }
        let q = queue.lock();
        pr_info!(
            "{} bursts: {} buffers sent, {} atomic allocation failures, ring at phys {:#x}\n",
            BURSTS,
            q.sent,
            q.failed,
            ring.phys_addr()
        );
        if q.failed > 0 {
            return Err(ENOMEM);
        }
        drop(q);
        Ok(Self { _ring: ring })
    }
}
