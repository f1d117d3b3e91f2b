// SPDX-License-Identifier: GPL-2.0
//! The protected VM: KVM set-up, the vCPU threads and the MMIO bus.

use crate::coco::{Coco, RAM_MARKER};
use crate::guest::GuestRam;
use crate::virtio::{
    blk::Blk, rng::Rng, Device, Irq, MmioTransport, FIRST_SPI, MMIO_BASE, MMIO_SIZE,
};
use crate::{Args, DeviceSpec};
use kvm_bindings::*;
use kvm_ioctls::{Cap, Kvm, VcpuExit, VcpuFd, VmFd};
use std::fmt::Display;
use std::fs::File;
use std::io::Write;
use std::mem::offset_of;
use std::os::unix::fs::FileExt;
use std::sync::{Arc, Mutex};
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

const GIC_DIST: u64 = 0x0800_0000;
const GIC_REDIST: u64 = 0x080a_0000;
const UART_BASE: u64 = 0x0900_0000;
const RAM_BASE: u64 = 0x4000_0000;
const DTB_SPACE: u64 = 2 << 20;
const INITRD_OFFSET: u64 = 128 << 20;
/// include/uapi/linux/kvm.h of the pinned tree (newer than kvm-bindings).
const KVM_VM_TYPE_ARM_PROTECTED: u64 = 1 << 31;
const KVM_SYSTEM_EVENT_RESET: u32 = 2;

/// Prints "ua-vmm: <what>[: <error>]" and exits with status 1.
fn die(what: impl Display, err: Option<&dyn Display>) -> ! {
    let _ = std::io::stdout().flush();
    match err {
        Some(e) => eprintln!("ua-vmm: {what}: {e}"),
        None => eprintln!("ua-vmm: {what}"),
    }
    std::process::exit(1);
}

/// KVM's errors as strerror() words, as vmm.c printed them.
fn os(e: &kvm_ioctls::Error) -> std::io::Error {
    std::io::Error::from_raw_os_error(e.errno())
}

/// An SPI of the vGIC, driven with KVM_IRQ_LINE.
struct KvmSpi {
    vm: Arc<VmFd>,
    spi: u32,
}

impl Irq for KvmSpi {
    fn set_level(&self, level: bool) {
        // irq_id is the INTID for SPIs (32 + the SPI number).
        let irq = (KVM_ARM_IRQ_TYPE_SPI << KVM_ARM_IRQ_TYPE_SHIFT) | (32 + self.spi);
        if let Err(e) = self.vm.set_irq_line(irq, level) {
            die(
                format_args!("KVM_IRQ_LINE for SPI {}", self.spi),
                Some(&os(&e)),
            );
        }
    }
}

/// Everything the vCPUs' MMIO exits reach.
struct Bus {
    coco: Coco,
    devices: Vec<Mutex<MmioTransport>>,
}

impl Bus {
    fn device(&self, addr: u64) -> Option<(&Mutex<MmioTransport>, u64)> {
        let i = addr.checked_sub(MMIO_BASE)? / MMIO_SIZE;
        let d = self.devices.get(usize::try_from(i).ok()?)?;
        Some((d, (addr - MMIO_BASE) % MMIO_SIZE))
    }

    fn read(&self, addr: u64, data: &mut [u8]) {
        match self.device(addr) {
            Some((d, off)) => d.lock().unwrap().read(off, data),
            // 0 everywhere else. For the PL011 that is "FIFO not full, not busy".
            None => data.fill(0),
        }
    }

    fn write(&self, addr: u64, data: &[u8]) {
        if addr == UART_BASE {
            // PL011 UARTDR: the character is in the low byte.
            if let Some(&c) = data.first() {
                self.coco.putc(c);
            }
        } else if let Some((d, off)) = self.device(addr) {
            d.lock().unwrap().write(off, data);
        }
    }

    /// The guest stopped: the device counters, then the line of vmm.c.
    fn finish(&self, event: u32, vcpu: u32) -> ! {
        let mut text = String::new();
        for d in &self.devices {
            for line in d.lock().unwrap().report() {
                text.push_str(&line);
                text.push('\n');
            }
        }
        if !text.is_empty() {
            self.coco.print(&text);
        }
        let _ = std::io::stdout().flush();
        let what = match event {
            KVM_SYSTEM_EVENT_SHUTDOWN => "powered off",
            KVM_SYSTEM_EVENT_RESET => "reset",
            _ => "stopped",
        };
        eprintln!(
            "ua-vmm: guest {what} (vCPU {vcpu}), {} host checks",
            self.coco.checks()
        );
        let ok = event == KVM_SYSTEM_EVENT_SHUTDOWN || event == KVM_SYSTEM_EVENT_RESET;
        std::process::exit(if ok { 0 } else { 1 });
    }
}

fn vcpu_loop(bus: &Bus, mut vcpu: VcpuFd, id: u32) -> ! {
    loop {
        match vcpu.run() {
            Ok(VcpuExit::MmioRead(addr, data)) => bus.read(addr, data),
            Ok(VcpuExit::MmioWrite(addr, data)) => bus.write(addr, data),
            Ok(VcpuExit::SystemEvent(event, _)) => bus.finish(event, id),
            // Nothing is offered to the guest beyond what KVM handles.
            Ok(VcpuExit::Hypercall(h)) => *h.ret = u64::MAX,
            Ok(VcpuExit::Intr) => {}
            Ok(exit) => die(format_args!("vCPU {id}: unexpected exit {exit:?}"), None),
            Err(e) if e.errno() == libc::EINTR || e.errno() == libc::EAGAIN => {}
            Err(e) => die(format_args!("vCPU {id}: KVM_RUN"), Some(&os(&e))),
        }
    }
}

fn open_sized(path: &str, limit: u64) -> (File, u64) {
    let file = File::open(path).unwrap_or_else(|e| die(path, Some(&e)));
    let size = file
        .metadata()
        .unwrap_or_else(|e| die(path, Some(&e)))
        .len();
    if size > limit {
        die(
            format_args!("{path}: {size} bytes do not fit in {limit}"),
            None,
        );
    }
    (file, size)
}

/// The arm64 Image header (Documentation/arch/arm64/booting.rst): the
/// magic "ARM\x64" at byte 56, text_offset at byte 8 (0 for any recent
/// kernel). linux-loader's PE loader does the same, but its 0.14 needs Rust
/// 1.87 and 0.13 an older vm-memory than virtio-queue 0.18's.
fn image_text_offset(path: &str, file: &File) -> u64 {
    let mut hdr = [0u8; 64];
    file.read_exact_at(&mut hdr, 0)
        .unwrap_or_else(|e| die(path, Some(&e)));
    if hdr[56..60] != *b"ARM\x64" {
        die(format_args!("{path}: not an arm64 Image"), None);
    }
    u64::from_le_bytes(hdr[8..16].try_into().unwrap())
}

/// Reads `size` bytes of `file` into RAM at offset `off` (before the guest runs).
fn load(mem: &GuestMemoryMmap, path: &str, file: &mut File, off: u64, size: u64) {
    mem.read_exact_volatile_from(GuestAddress(RAM_BASE + off), file, size as usize)
        .unwrap_or_else(|e| die(format_args!("{path}: short read"), Some(&e)));
}

fn core_reg(offset: usize) -> u64 {
    KVM_REG_ARM64 | KVM_REG_SIZE_U64 | u64::from(KVM_REG_ARM_CORE) | (offset / 4) as u64
}

fn set_attr(dev: &kvm_ioctls::DeviceFd, group: u32, attr: u64, val: *const u8, what: &str) {
    let a = kvm_device_attr {
        group,
        attr,
        addr: val as u64,
        flags: 0,
    };
    if let Err(e) = dev.set_device_attr(&a) {
        die(what, Some(&os(&e)));
    }
}

pub fn run(args: Args) -> ! {
    let kvm = Kvm::new().unwrap_or_else(|e| die("/dev/kvm", Some(&os(&e))));
    // Default IPA size (40 bits), protected.
    let vm = kvm
        .create_vm_with_type(KVM_VM_TYPE_ARM_PROTECTED)
        .unwrap_or_else(|e| {
            die(
                "KVM_CREATE_VM(PROTECTED) (is the host in kvm-arm.mode=protected?)",
                Some(&os(&e)),
            )
        });
    let vm = Arc::new(vm);
    let ram_size = args.ram_size;

    // Guest memory: anonymous, donated to the guest page by page as it faults.
    let ram = GuestRam::new(RAM_BASE, ram_size)
        .unwrap_or_else(|e| die(format_args!("mmap of {} MiB", ram_size >> 20), Some(&e)));
    let ram = Arc::new(ram);
    if ram_size < INITRD_OFFSET + DTB_SPACE {
        die(
            format_args!("at least {} MiB of RAM", (INITRD_OFFSET + DTB_SPACE) >> 20),
            None,
        );
    }
    let marker = RAM_MARKER.to_le_bytes().repeat(8192);
    for off in (0..ram_size).step_by(marker.len()) {
        let n = (ram_size - off).min(marker.len() as u64) as usize;
        ram.write(RAM_BASE + off, &marker[..n])
            .unwrap_or_else(|_| die("writing the marker", None));
    }
    let mem = ram.memory();
    let (mut kernel, kernel_size) = open_sized(&args.kernel, INITRD_OFFSET);
    let text_offset = image_text_offset(&args.kernel, &kernel);
    if text_offset
        .checked_add(kernel_size)
        .is_none_or(|end| end > INITRD_OFFSET)
    {
        die(
            format_args!("{}: text_offset 0x{text_offset:x} too large", args.kernel),
            None,
        );
    }
    load(mem, &args.kernel, &mut kernel, text_offset, kernel_size);
    // What vmm.c's memmove() left below the kernel.
    ram.write(RAM_BASE, &vec![0; text_offset as usize])
        .unwrap_or_else(|_| die("zeroing", None));
    let dtb_off = ram_size - DTB_SPACE;
    let (mut dtb, dtb_size) = open_sized(&args.dtb, DTB_SPACE);
    load(mem, &args.dtb, &mut dtb, dtb_off, dtb_size);
    let mut initrd_size = 0;
    if let Some(path) = &args.initrd {
        let (mut f, size) = open_sized(path, dtb_off - INITRD_OFFSET);
        load(mem, path, &mut f, INITRD_OFFSET, size);
        initrd_size = size;
    }
    let mut coco = Coco::new(ram.clone(), Box::new(std::io::stdout()));
    coco.keep_loaded(0, text_offset + kernel_size);
    coco.keep_loaded(dtb_off, dtb_size);
    if args.initrd.is_some() {
        coco.keep_loaded(INITRD_OFFSET, initrd_size);
    }
    let slot = kvm_userspace_memory_region {
        slot: 0,
        flags: 0,
        guest_phys_addr: RAM_BASE,
        memory_size: ram_size,
        userspace_addr: ram.host_address(),
    };
    // SAFETY: the region is ram's mapping, which is never unmapped: `ram`
    // lives in the bus until the process exits.
    if let Err(e) = unsafe { vm.set_user_memory_region(slot) } {
        die("KVM_SET_USER_MEMORY_REGION", Some(&os(&e)));
    }

    let mut vcpus = Vec::new();
    for i in 0..args.vcpus {
        let v = vm
            .create_vcpu(i.into())
            .unwrap_or_else(|e| die(format_args!("KVM_CREATE_VCPU {i}"), Some(&os(&e))));
        let mut init = kvm_vcpu_init {
            target: KVM_ARM_TARGET_GENERIC_V8,
            ..Default::default()
        };
        init.features[0] = 1 << KVM_ARM_VCPU_PSCI_0_2;
        // The guest sees pointer authentication in its ID registers
        // whenever the CPU has it; without these features its key
        // registers trap as undefined.
        if vm.check_extension(Cap::ArmPtrAuthAddress) && vm.check_extension(Cap::ArmPtrAuthGeneric)
        {
            init.features[0] |=
                (1 << KVM_ARM_VCPU_PTRAUTH_ADDRESS) | (1 << KVM_ARM_VCPU_PTRAUTH_GENERIC);
        }
        // Secondary vCPUs wait for PSCI CPU_ON.
        if i != 0 {
            init.features[0] |= 1 << KVM_ARM_VCPU_POWER_OFF;
        }
        v.vcpu_init(&init)
            .unwrap_or_else(|e| die("KVM_ARM_VCPU_INIT", Some(&os(&e))));
        vcpus.push(v);
    }
    // The boot protocol: x0 = the device tree, pc = the kernel, MMU off.
    let pc = core_reg(offset_of!(kvm_regs, regs) + offset_of!(user_pt_regs, pc));
    let x0 = core_reg(offset_of!(kvm_regs, regs) + offset_of!(user_pt_regs, regs));
    for (reg, val) in [(pc, RAM_BASE + text_offset), (x0, RAM_BASE + dtb_off)] {
        vcpus[0]
            .set_one_reg(reg, &val.to_le_bytes())
            .unwrap_or_else(|e| die("KVM_SET_ONE_REG", Some(&os(&e))));
    }

    let mut gic = kvm_create_device {
        type_: kvm_device_type_KVM_DEV_TYPE_ARM_VGIC_V3,
        fd: 0,
        flags: 0,
    };
    let gic = vm
        .create_device(&mut gic)
        .unwrap_or_else(|e| die("KVM_CREATE_DEVICE(VGIC_V3)", Some(&os(&e))));
    let (dist, redist, nr_irqs) = (GIC_DIST, GIC_REDIST, 128u32);
    let addr_grp = KVM_DEV_ARM_VGIC_GRP_ADDR;
    let dist_ptr = std::ptr::addr_of!(dist).cast();
    set_attr(
        &gic,
        addr_grp,
        KVM_VGIC_V3_ADDR_TYPE_DIST.into(),
        dist_ptr,
        "vGIC distributor address",
    );
    let redist_ptr = std::ptr::addr_of!(redist).cast();
    set_attr(
        &gic,
        addr_grp,
        KVM_VGIC_V3_ADDR_TYPE_REDIST.into(),
        redist_ptr,
        "vGIC redistributor address",
    );
    let nr_ptr = std::ptr::addr_of!(nr_irqs).cast();
    set_attr(
        &gic,
        KVM_DEV_ARM_VGIC_GRP_NR_IRQS,
        0,
        nr_ptr,
        "vGIC number of interrupts",
    );
    let ctrl = KVM_DEV_ARM_VGIC_GRP_CTRL;
    set_attr(
        &gic,
        ctrl,
        KVM_DEV_ARM_VGIC_CTRL_INIT.into(),
        std::ptr::null(),
        "vGIC init",
    );

    let mut devices = Vec::new();
    for (i, spec) in args.devices.iter().enumerate() {
        let dev: Box<dyn Device> = match spec {
            DeviceSpec::Blk(path) => {
                let blk = Blk::open(path, i).unwrap_or_else(|e| die(path, Some(&e)));
                println!("coco: virtio-blk {i}: {}", blk.describe());
                Box::new(blk)
            }
            DeviceSpec::Rng => {
                Box::new(Rng::new().unwrap_or_else(|e| die("/dev/urandom", Some(&e))))
            }
        };
        let irq = Box::new(KvmSpi {
            vm: vm.clone(),
            spi: FIRST_SPI + i as u32,
        });
        let t = MmioTransport::new(i, dev, ram.clone(), irq);
        eprintln!(
            "ua-vmm: {} {i} at 0x{:x}, SPI {} (INTID {})",
            t.name(),
            t.base(),
            t.spi(),
            32 + t.spi()
        );
        devices.push(Mutex::new(t));
    }

    eprintln!(
        "ua-vmm: protected VM, {} vCPUs, {} MiB at 0x{RAM_BASE:x}, kernel {kernel_size} bytes, \
         initramfs {initrd_size} bytes, device tree at 0x{:x}",
        args.vcpus,
        ram_size >> 20,
        RAM_BASE + dtb_off
    );
    let bus = Arc::new(Bus { coco, devices });
    let mut vcpus = vcpus.into_iter().enumerate();
    let (_, boot) = vcpus.next().expect("one vCPU");
    for (i, v) in vcpus {
        let bus = bus.clone();
        std::thread::Builder::new()
            .name(format!("vcpu{i}"))
            .spawn(move || vcpu_loop(&bus, v, i as u32))
            .unwrap_or_else(|e| die("pthread_create", Some(&e)));
    }
    vcpu_loop(&bus, boot, 0)
}
