// SPDX-License-Identifier: GPL-2.0
//! ua-vmm: the smallest VMM that runs a Linux kernel as a pKVM protected VM,
//! for 'make test-coco' of unmapped_alloc, on the rust-vmm crates, with
//! virtio devices (it replaced the C vmm.c of earlier rounds).
//!
//! It runs inside an arm64 host booted with kvm-arm.mode=protected, creates
//! a KVM_VM_TYPE_ARM_PROTECTED VM with one memslot, a vGICv3, the architected
//! timer and PSCI (both in KVM), loads the kernel Image and a device tree
//! built by the caller, and emulates the write side of a PL011 that the
//! guest uses as its early console (every other unclaimed MMIO access reads
//! 0), plus virtio-mmio devices: virtio-blk on a host file and virtio-rng.
//! The host-side checks (mailbox and sweeps) are those of the C VMM, with
//! the same output lines: see coco.rs.
//!
//! Guest-physical layout (the device tree must match):
//!   0x08000000  GICv3 distributor (64 KiB)
//!   0x080a0000  GICv3 redistributors (128 KiB per vCPU)
//!   0x09000000  PL011 (write-only console)
//!   0x0a000000  virtio-mmio device i at 0x0a000000 + 0x200 * i, SPI 16 + i
//!   0x40000000  RAM; the kernel at its start, the device tree in its last 2 MiB
//!   0x48000000  the initramfs, if any (the device tree's linux,initrd-start)
//!
//! Usage: ua-vmm -k Image -d guest.dtb [-i initramfs] [-m MiB] [-c vCPUs]
//!               [--blk FILE]... [--rng]...
//! Devices are numbered in command-line order. Exit status: 0 if the guest
//! powered off or reset, 1 on any error.
#![cfg_attr(not(target_arch = "aarch64"), allow(dead_code))]

mod coco;
mod guest;
mod safe_copy;
mod virtio;
#[cfg(target_arch = "aarch64")]
mod vmm;

pub const MAX_VCPUS: u32 = 8;
/// virtio-mmio windows (and SPIs) available.
pub const MAX_DEVICES: usize = 32;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceSpec {
    Blk(String),
    Rng,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Args {
    pub kernel: String,
    pub dtb: String,
    pub initrd: Option<String>,
    pub ram_size: u64,
    pub vcpus: u32,
    pub devices: Vec<DeviceSpec>,
}

/// strtoull(s, NULL, 0): base from the prefix, up to the first bad digit.
fn c_number(s: &str) -> u64 {
    let s = s.trim_start();
    let (neg, s) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let (radix, digits) = if let Some(h) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        (16, h)
    } else if s.starts_with('0') {
        (8, s)
    } else {
        (10, s)
    };
    let v = digits
        .chars()
        .map_while(|c| c.to_digit(radix))
        .fold(0u64, |v, d| {
            v.wrapping_mul(radix.into()).wrapping_add(d.into())
        });
    if neg {
        v.wrapping_neg()
    } else {
        v
    }
}

pub fn usage(argv0: &str) -> String {
    format!(
        "usage: {argv0} -k Image -d guest.dtb [-i initramfs] [-m MiB] [-c vCPUs (1-{MAX_VCPUS})] \
         [--blk FILE]... [--rng]..."
    )
}

/// The command line of the C VMM (getopt "k:d:i:m:c:") and the device options.
pub fn parse_args(argv: &[String]) -> Option<Args> {
    let (mut kernel, mut dtb, mut initrd) = (None, None, None);
    let (mut ram_size, mut vcpus) = (1024u64 << 20, 1u32);
    let mut devices = Vec::new();
    let mut it = argv.iter().skip(1);
    while let Some(arg) = it.next() {
        if let Some(long) = arg.strip_prefix("--") {
            let (name, inline) = match long.split_once('=') {
                Some((n, v)) => (n, Some(v.to_owned())),
                None => (long, None),
            };
            match name {
                "blk" => devices.push(DeviceSpec::Blk(inline.or_else(|| it.next().cloned())?)),
                "rng" if inline.is_none() => devices.push(DeviceSpec::Rng),
                _ => return None,
            }
            continue;
        }
        let opt = arg.strip_prefix('-').filter(|o| !o.is_empty())?;
        let (flag, rest) = opt.split_at(1);
        let value = if rest.is_empty() {
            it.next()?.clone()
        } else {
            rest.to_owned()
        };
        match flag {
            "k" => kernel = Some(value),
            "d" => dtb = Some(value),
            "i" => initrd = Some(value),
            "m" => ram_size = c_number(&value) << 20,
            "c" => vcpus = c_number(&value) as u32,
            _ => return None,
        }
    }
    if vcpus == 0 || vcpus > MAX_VCPUS || ram_size < 64 << 20 || devices.len() > MAX_DEVICES {
        return None;
    }
    Some(Args {
        kernel: kernel?,
        dtb: dtb?,
        initrd,
        ram_size,
        vcpus,
        devices,
    })
}

fn main() {
    let argv: Vec<String> = std::env::args().collect();
    let Some(args) = parse_args(&argv) else {
        eprintln!("{}", usage(argv.first().map_or("ua-vmm", String::as_str)));
        std::process::exit(1);
    };
    #[cfg(target_arch = "aarch64")]
    vmm::run(args);
    #[cfg(not(target_arch = "aarch64"))]
    {
        let _ = args;
        eprintln!("ua-vmm: runs on arm64 KVM hosts only");
        std::process::exit(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Option<Args> {
        let v: Vec<String> = s.split_whitespace().map(str::to_owned).collect();
        parse_args(&v)
    }

    #[test]
    fn command_line_of_vmm_c() {
        let a =
            args("ua-vmm -k /Image -d /guest.dtb -i /guest-initrd.cpio.gz -m 512 -c 2").unwrap();
        assert_eq!(a.kernel, "/Image");
        assert_eq!(a.dtb, "/guest.dtb");
        assert_eq!(a.initrd.as_deref(), Some("/guest-initrd.cpio.gz"));
        assert_eq!((a.ram_size, a.vcpus), (512 << 20, 2));
        assert!(a.devices.is_empty());
        let a = args("ua-vmm -k/Image -d/dtb -m0x200").unwrap();
        assert_eq!((a.ram_size, a.vcpus, a.initrd), (512 << 20, 1, None));
        assert_eq!(args("ua-vmm -k I -d D").unwrap().ram_size, 1024 << 20);
        assert!(args("ua-vmm -k I").is_none());
        assert!(args("ua-vmm -k I -d D -c 9").is_none());
        assert!(args("ua-vmm -k I -d D -c 0").is_none());
        assert!(args("ua-vmm -k I -d D -m 63").is_none());
        assert!(args("ua-vmm -k I -d D -x 1").is_none());
        assert!(args("ua-vmm -k I -d").is_none());
    }

    #[test]
    fn device_options_in_order() {
        let a = args("ua-vmm --rng -k I -d D --blk /disk.img --blk=/two --rng").unwrap();
        assert_eq!(
            a.devices,
            [
                DeviceSpec::Rng,
                DeviceSpec::Blk("/disk.img".into()),
                DeviceSpec::Blk("/two".into()),
                DeviceSpec::Rng
            ]
        );
        assert!(args("ua-vmm -k I -d D --blk").is_none());
        assert!(args("ua-vmm -k I -d D --net").is_none());
    }

    #[test]
    fn numbers_like_strtoull() {
        assert_eq!(c_number("512"), 512);
        assert_eq!(c_number("0x10"), 16);
        assert_eq!(c_number("010"), 8);
        assert_eq!(c_number("12abc"), 12);
        assert_eq!(c_number("abc"), 0);
    }
}
