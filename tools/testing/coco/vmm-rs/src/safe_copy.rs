// SPDX-License-Identifier: GPL-2.0
//! Copies to and from guest memory that survive a fault.
//!
//! In a pKVM protected VM the host can read and write only the pages the
//! guest shared: any other access through the VMM's own mapping of guest RAM
//! faults, and the host kernel delivers SIGSEGV (or SIGBUS). The C VMM
//! survived that with `sigsetjmp()`/`siglongjmp()`. Rust has no sound
//! equivalent: a long jump over Rust frames skips their destructors and is
//! undefined behaviour unless every frame skipped is a "plain old frame",
//! which the compiler does not let us check.
//!
//! The design here is the kernel's exception table instead. Every access to
//! guest memory that may fault is made by one leaf routine in assembly,
//! `ua_vmm_copy(dst, src, len)`, whose loads and stores all sit between two
//! labels. The SIGSEGV/SIGBUS handler compares the program counter of the
//! fault with that range: inside it, the handler moves the program counter
//! to the routine's fixup label, which returns the number of bytes not
//! copied; the routine then returns normally to its Rust caller. No Rust
//! frame is skipped or entered from the handler, the compiler sees an
//! ordinary `extern "C"` call, and the handler only reads and writes the
//! signal context (async-signal-safe). A fault anywhere else is not ours:
//! the handler restores the default action and returns, the instruction
//! faults again and the process dies as it would have without a handler.
//!
//! Sizes of 8, 4 and 2 bytes at naturally aligned addresses are copied with
//! one access each (single-copy atomic), which the virtqueue indices and the
//! check mailbox's fields rely on.

use std::sync::Once;

/// An access to guest memory faulted (the page is private to the guest).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fault;

#[cfg(target_arch = "aarch64")]
std::arch::global_asm!(
    ".text",
    ".p2align 4",
    ".globl ua_vmm_copy",
    ".type ua_vmm_copy, %function",
    // x0 = dst, x1 = src, x2 = len; returns (x0) the bytes not copied.
    "ua_vmm_copy:",
    ".globl ua_vmm_copy_insns_start",
    "ua_vmm_copy_insns_start:",
    ".Lua_w8:",
    "cmp x2, #8",
    "b.lo .Lua_w4",
    "ldr x3, [x1], #8",
    "str x3, [x0], #8",
    "sub x2, x2, #8",
    "b .Lua_w8",
    ".Lua_w4:",
    "cmp x2, #4",
    "b.lo .Lua_w2",
    "ldr w3, [x1], #4",
    "str w3, [x0], #4",
    "sub x2, x2, #4",
    ".Lua_w2:",
    "cmp x2, #2",
    "b.lo .Lua_w1",
    "ldrh w3, [x1], #2",
    "strh w3, [x0], #2",
    "sub x2, x2, #2",
    ".Lua_w1:",
    "cbz x2, .Lua_done",
    "ldrb w3, [x1], #1",
    "strb w3, [x0], #1",
    "sub x2, x2, #1",
    ".Lua_done:",
    ".globl ua_vmm_copy_insns_end",
    "ua_vmm_copy_insns_end:",
    "mov x0, #0",
    "ret",
    // A faulting load or store did not complete and did not update its
    // address register, and x2 still counts the bytes it was to copy.
    ".globl ua_vmm_copy_fixup",
    "ua_vmm_copy_fixup:",
    "mov x0, x2",
    "ret",
    ".size ua_vmm_copy, . - ua_vmm_copy",
);

// The same on x86_64, for the unit tests on the build machine.
#[cfg(target_arch = "x86_64")]
std::arch::global_asm!(
    ".text",
    ".p2align 4",
    ".globl ua_vmm_copy",
    ".type ua_vmm_copy, @function",
    // rdi = dst, rsi = src, rdx = len; returns (rax) the bytes not copied.
    "ua_vmm_copy:",
    ".globl ua_vmm_copy_insns_start",
    "ua_vmm_copy_insns_start:",
    ".Lua_w8:",
    "cmp rdx, 8",
    "jb .Lua_w4",
    "mov rax, qword ptr [rsi]",
    "mov qword ptr [rdi], rax",
    "add rsi, 8",
    "add rdi, 8",
    "sub rdx, 8",
    "jmp .Lua_w8",
    ".Lua_w4:",
    "cmp rdx, 4",
    "jb .Lua_w2",
    "mov eax, dword ptr [rsi]",
    "mov dword ptr [rdi], eax",
    "add rsi, 4",
    "add rdi, 4",
    "sub rdx, 4",
    ".Lua_w2:",
    "cmp rdx, 2",
    "jb .Lua_w1",
    "mov ax, word ptr [rsi]",
    "mov word ptr [rdi], ax",
    "add rsi, 2",
    "add rdi, 2",
    "sub rdx, 2",
    ".Lua_w1:",
    "test rdx, rdx",
    "jz .Lua_done",
    "mov al, byte ptr [rsi]",
    "mov byte ptr [rdi], al",
    "sub rdx, 1",
    ".Lua_done:",
    ".globl ua_vmm_copy_insns_end",
    "ua_vmm_copy_insns_end:",
    "xor eax, eax",
    "ret",
    ".globl ua_vmm_copy_fixup",
    "ua_vmm_copy_fixup:",
    "mov rax, rdx",
    "ret",
    ".size ua_vmm_copy, . - ua_vmm_copy",
);

extern "C" {
    fn ua_vmm_copy(dst: *mut u8, src: *const u8, len: usize) -> usize;
    // Labels, not functions: only their addresses are used.
    fn ua_vmm_copy_insns_start();
    fn ua_vmm_copy_insns_end();
    fn ua_vmm_copy_fixup();
}

/// The program counter in a signal context.
///
/// # Safety
///
/// `ctx` must be the third argument of an `SA_SIGINFO` signal handler.
#[cfg(target_arch = "aarch64")]
unsafe fn context_pc(ctx: *mut libc::c_void) -> *mut u64 {
    let uc = ctx.cast::<libc::ucontext_t>();
    // SAFETY: the kernel passed a valid ucontext_t (caller's contract); only
    // the address of the field is taken.
    unsafe { std::ptr::addr_of_mut!((*uc).uc_mcontext.pc).cast::<u64>() }
}

#[cfg(target_arch = "x86_64")]
unsafe fn context_pc(ctx: *mut libc::c_void) -> *mut u64 {
    let uc = ctx.cast::<libc::ucontext_t>();
    // SAFETY: as above; REG_RIP indexes the 23 general registers.
    unsafe { std::ptr::addr_of_mut!((*uc).uc_mcontext.gregs[libc::REG_RIP as usize]).cast::<u64>() }
}

extern "C" fn on_fault(sig: libc::c_int, _info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    let start = ua_vmm_copy_insns_start as *const () as usize as u64;
    let end = ua_vmm_copy_insns_end as *const () as usize as u64;
    // SAFETY: installed with SA_SIGINFO, so ctx is the interrupted context,
    // which the kernel restores when the handler returns.
    let pc = unsafe { context_pc(ctx) };
    // SAFETY: pc points into that context, live for the handler's duration.
    let at = unsafe { pc.read() };
    if (start..end).contains(&at) {
        // SAFETY: as above; the fixup is the routine's own recovery path.
        unsafe { pc.write(ua_vmm_copy_fixup as *const () as usize as u64) };
        return;
    }
    // Not a guest access: die of the signal as without a handler.
    // SAFETY: signal() is async-signal-safe; SIG_DFL is a valid action.
    unsafe { libc::signal(sig, libc::SIG_DFL) };
}

/// Installs the SIGSEGV and SIGBUS handler (once per process).
pub fn install() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        for sig in [libc::SIGSEGV, libc::SIGBUS] {
            // SAFETY: an all-zero sigaction is valid (empty mask, no flags);
            // the handler has the SA_SIGINFO signature and only touches the
            // signal context. SA_NODEFER: the handler blocks nothing, as in
            // the C VMM.
            let rc = unsafe {
                let mut sa: libc::sigaction = std::mem::zeroed();
                sa.sa_sigaction = on_fault as *const () as usize;
                sa.sa_flags = libc::SA_SIGINFO | libc::SA_NODEFER;
                libc::sigemptyset(&mut sa.sa_mask);
                libc::sigaction(sig, &sa, std::ptr::null_mut())
            };
            assert_eq!(rc, 0, "sigaction");
        }
    });
}

/// Copies `len` bytes from `src` to `dst`, either of which may be guest
/// memory that faults.
///
/// # Safety
///
/// Each of `src..src + len` and `dst..dst + len` must be either memory of
/// this process valid for that access and not otherwise borrowed, or part of
/// a mapping of guest RAM that stays mapped for the call (whose accesses may
/// fault); [`install`] must have been called.
pub unsafe fn copy(dst: *mut u8, src: *const u8, len: usize) -> Result<(), Fault> {
    // SAFETY: the caller's contract; a fault inside the routine is
    // recovered by the handler and reported as bytes left.
    let left = unsafe { ua_vmm_copy(dst, src, len) };
    if left == 0 {
        Ok(())
    } else {
        Err(Fault)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two pages, the second inaccessible, like a private guest page.
    struct Guarded {
        base: *mut u8,
    }

    impl Guarded {
        fn new() -> Self {
            // SAFETY: a fresh anonymous mapping, then a protection change
            // inside it.
            let base = unsafe {
                let p = libc::mmap(
                    std::ptr::null_mut(),
                    8192,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                    -1,
                    0,
                );
                assert_ne!(p, libc::MAP_FAILED);
                assert_eq!(
                    libc::mprotect(p.cast::<u8>().add(4096).cast(), 4096, libc::PROT_NONE),
                    0
                );
                p.cast::<u8>()
            };
            Guarded { base }
        }
    }

    impl Drop for Guarded {
        fn drop(&mut self) {
            // SAFETY: our own mapping.
            unsafe { libc::munmap(self.base.cast(), 8192) };
        }
    }

    #[test]
    fn copies_every_size_and_alignment() {
        install();
        let src: Vec<u8> = (0..64u8).collect();
        for off in 0..8 {
            for len in 0..40 {
                let mut dst = vec![0xffu8; 64];
                // SAFETY: both buffers are ours and large enough.
                unsafe { copy(dst.as_mut_ptr().add(off), src.as_ptr().add(off), len) }.unwrap();
                assert_eq!(&dst[off..off + len], &src[off..off + len]);
                assert!(dst[off + len..].iter().all(|&b| b == 0xff));
                assert!(dst[..off].iter().all(|&b| b == 0xff));
            }
        }
    }

    #[test]
    fn faults_are_reported_not_fatal() {
        install();
        let g = Guarded::new();
        let mut buf = [0u8; 64];
        // SAFETY: the first page is ours; the second faults, which copy()
        // recovers from.
        unsafe {
            copy(buf.as_mut_ptr(), g.base, 64).unwrap();
            assert_eq!(copy(buf.as_mut_ptr(), g.base.add(4096), 8), Err(Fault));
            assert_eq!(copy(g.base.add(4096), buf.as_ptr(), 1), Err(Fault));
            // Crossing into the guard page: the first page part is copied.
            std::ptr::write_bytes(g.base, 0x5a, 4096);
            assert_eq!(
                copy(buf.as_mut_ptr(), g.base.add(4096 - 13), 40),
                Err(Fault)
            );
            assert!(buf[..8].iter().all(|&b| b == 0x5a));
        }
        // And again: the handler stays installed.
        // SAFETY: as above.
        assert_eq!(
            unsafe { copy(buf.as_mut_ptr(), g.base.add(8000), 3) },
            Err(Fault)
        );
    }

    /// A load from `addr` that the compiler knows nothing about.
    fn load(addr: *const u8) {
        // SAFETY: an opaque load; the test wants it to fault.
        #[cfg(target_arch = "aarch64")]
        unsafe {
            std::arch::asm!("ldrb {0:w}, [{1}]", out(reg) _, in(reg) addr)
        };
        // SAFETY: as above.
        #[cfg(target_arch = "x86_64")]
        unsafe {
            std::arch::asm!("mov {0}, byte ptr [{1}]", out(reg_byte) _, in(reg) addr)
        };
    }

    #[test]
    fn other_faults_still_kill() {
        install();
        let g = Guarded::new();
        // SAFETY: the child only faults (or exits): no lock, no allocation.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            load(g.base);
            load(g.base.wrapping_add(4096));
            // SAFETY: _exit() ends the child at once.
            unsafe { libc::_exit(0) };
        }
        let mut status = 0;
        // SAFETY: our child; status is ours.
        assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
        assert!(libc::WIFSIGNALED(status), "status {status:#x}");
        assert_eq!(libc::WTERMSIG(status), libc::SIGSEGV);
    }
}
