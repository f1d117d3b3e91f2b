// SPDX-License-Identifier: GPL-2.0
//! The console and the host-side checks of `make test-coco`, as in the C
//! VMM of earlier rounds, with the same output lines (coco.sh parses them).
//!
//! Mailbox checks: when the guest prints "ua-coco: mailbox <gpa> seq <n>"
//! (coco/ua_coco.h), the vCPU that wrote the newline is stopped in its MMIO
//! exit; the VMM reads every range the guest listed through its own mapping
//! of guest memory, where pKVM lets it read only what the guest shared, and
//! writes back what it saw.
//!
//! Sweeps: before the guest starts, every page of its RAM holds a marker (or
//! what the VMM loaded there). When the guest prints "ua-coco: sweep <tag>
//! <i>/<n>" for i = 0 to n - 1, the VMM reads every page of guest RAM, a
//! part at a time, and counts those it can read with other contents: pages
//! the guest shared and wrote.

use crate::guest::GuestRam;
use std::fmt::Write as _;
use std::io::Write;
use std::sync::atomic::{fence, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// What every page of guest RAM held before the guest ran ("uavmmark").
pub const RAM_MARKER: u64 = 0x7561_766d_6d61_726b;

// coco/ua_coco.h
const UA_COCO_MAGIC: u64 = 0x6f_636f_632d_6175;
const UA_COCO_MAX_RANGES: usize = 120;
const EXPECT_SHARED: u32 = 1;
const READ_PATTERN: u32 = 1;
const READ_OTHER: u32 = 2;
const REFUSED: u32 = 3;
const OUTSIDE: u32 = 4;
const PLAIN_PAGE: u32 = 3;
const KIND_NAMES: [&str; 6] = [
    "kmalloc_decrypted objects",
    "alloc_decrypted_pages pages",
    "unmapped_alloc pages",
    "alloc_pages pages",
    "formerly shared pages, freed and drained",
    "dma_alloc_coherent buffers",
];
/// struct ua_coco_mailbox: magic, seq, nr, done, reserved[3], then the
/// ranges of 32 bytes (gpa, pattern, len, expect, kind, result).
const RANGE_SIZE: usize = 32;
const RANGES_AT: usize = 32;
const MAILBOX_SIZE: usize = RANGES_AT + UA_COCO_MAX_RANGES * RANGE_SIZE;
const DONE_AT: u64 = 16;
const RESULT_IN_RANGE: u64 = 28;
/// The console keeps this much of a line (the C VMM's line[4096]).
const LINE_MAX: usize = 4095;
const PAGE: u64 = 4096;
/// A sweep prints its first ranges of shared pages, each on a line: enough for a
/// check to see every range (coco-virtio.sh's has a few dozen at most).
const SHOWN_RANGES: u64 = 64;

fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}

fn le64(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}

/// What the VMM put in RAM before the guest ran (the rest is the marker).
struct Loaded {
    off: u64,
    copy: Vec<u8>,
}

/// A 4 KiB page of guest memory in a check, and whether it behaved as expected.
struct CheckedPage {
    pfn: u64,
    shared: bool,
    as_expected: bool,
}

struct Console {
    out: Box<dyn Write + Send>,
    line: Vec<u8>,
    checked: Vec<CheckedPage>,
}

#[derive(Default)]
struct Sweep {
    tag: String,
    next: u32,
    shared: u64,
    untouched: u64,
    private: u64,
    ranges: u64,
    before: u64,
    still: u64,
    start: u64,
    first_word: u64,
    in_range: bool,
    t0: Option<Instant>,
}

struct SweepState {
    sw: Sweep,
    /// One bit per page of guest RAM: read as shared by the last sweep.
    last_shared: Vec<u8>,
}

pub struct Coco {
    ram: Arc<GuestRam>,
    loaded: Vec<Loaded>,
    checks: AtomicU32,
    console: Mutex<Console>,
    sweep: Mutex<SweepState>,
}

/// A little of sscanf(), enough for the two lines the guest prints.
struct Scan<'a> {
    s: &'a [u8],
}

impl<'a> Scan<'a> {
    fn ws(&mut self) {
        while let [c, rest @ ..] = self.s {
            if !c.is_ascii_whitespace() {
                break;
            }
            self.s = rest;
        }
    }

    fn lit(&mut self, l: &str) -> Option<()> {
        self.s = self.s.strip_prefix(l.as_bytes())?;
        Some(())
    }

    fn digits(&mut self, radix: u32) -> Option<u64> {
        let n = self
            .s
            .iter()
            .take_while(|c| (**c as char).is_digit(radix))
            .count();
        if n == 0 {
            return None;
        }
        let v = self.s[..n].iter().fold(0u64, |v, c| {
            v.wrapping_mul(radix.into())
                .wrapping_add((*c as char).to_digit(radix).unwrap().into())
        });
        self.s = &self.s[n..];
        Some(v)
    }

    /// %llx
    fn hex(&mut self) -> Option<u64> {
        self.ws();
        if let Some(rest) = self
            .s
            .strip_prefix(b"0x")
            .or_else(|| self.s.strip_prefix(b"0X"))
        {
            if rest.first().is_some_and(u8::is_ascii_hexdigit) {
                self.s = rest;
            }
        }
        self.digits(16)
    }

    /// %u
    fn dec(&mut self) -> Option<u32> {
        self.ws();
        self.digits(10).map(|v| v as u32)
    }

    /// %31s
    fn word(&mut self, max: usize) -> Option<&'a [u8]> {
        self.ws();
        let n = self
            .s
            .iter()
            .take(max)
            .take_while(|c| !c.is_ascii_whitespace())
            .count();
        if n == 0 {
            return None;
        }
        let (w, rest) = self.s.split_at(n);
        self.s = rest;
        Some(w)
    }
}

fn find(hay: &[u8], needle: &str) -> Option<usize> {
    hay.windows(needle.len())
        .position(|w| w == needle.as_bytes())
}

/// "ua-coco: mailbox %llx seq %u"
fn parse_mailbox(s: &[u8]) -> Option<(u64, u32)> {
    let mut p = Scan { s };
    p.lit("ua-coco:")?;
    p.ws();
    p.lit("mailbox")?;
    let gpa = p.hex()?;
    p.ws();
    p.lit("seq")?;
    Some((gpa, p.dec()?))
}

/// "ua-coco: sweep %31s %u/%u"
fn parse_sweep(s: &[u8]) -> Option<(String, u32, u32)> {
    let mut p = Scan { s };
    p.lit("ua-coco:")?;
    p.ws();
    p.lit("sweep")?;
    let tag = String::from_utf8_lossy(p.word(31)?).into_owned();
    let part = p.dec()?;
    p.lit("/")?;
    Some((tag, part, p.dec()?))
}

impl Coco {
    pub fn new(ram: Arc<GuestRam>, out: Box<dyn Write + Send>) -> Self {
        Coco {
            ram,
            loaded: Vec::new(),
            checks: AtomicU32::new(0),
            console: Mutex::new(Console {
                out,
                line: Vec::new(),
                checked: Vec::new(),
            }),
            sweep: Mutex::new(SweepState {
                sw: Sweep::default(),
                last_shared: Vec::new(),
            }),
        }
    }

    /// Records what the VMM put at RAM offset `off` (before the guest runs).
    pub fn keep_loaded(&mut self, off: u64, size: u64) {
        let start = off & !(PAGE - 1);
        let end = (off + size + PAGE - 1) & !(PAGE - 1);
        let mut copy = vec![0u8; (end - start) as usize];
        // Before the guest runs every page is the VMM's: this cannot fault.
        self.ram
            .read(self.ram.base() + start, &mut copy)
            .expect("a copy of what was loaded");
        self.loaded.push(Loaded { off: start, copy });
    }

    /// The host checks made so far.
    pub fn checks(&self) -> u32 {
        self.checks.load(Ordering::Relaxed)
    }

    /// Read `len` bytes at `gpa` as a hostile host would (enum ua_coco_result).
    fn probe(&self, gpa: u64, len: u32, pattern: u64) -> u32 {
        let (base, size, len) = (self.ram.base(), self.ram.size(), u64::from(len));
        if gpa < base || len > size || gpa - base > size - len || len % 8 != 0 {
            return OUTSIDE;
        }
        let mut buf = [0u8; PAGE as usize];
        let mut all_pattern = true;
        let mut done = 0;
        while done < len {
            let n = (len - done).min(PAGE) as usize;
            if self.ram.read(gpa + done, &mut buf[..n]).is_err() {
                return REFUSED;
            }
            all_pattern &= buf[..n].chunks_exact(8).all(|w| le64(w, 0) == pattern);
            done += n as u64;
        }
        if all_pattern {
            READ_PATTERN
        } else {
            READ_OTHER
        }
    }

    /// Counts every page a range touches once, however many objects share it.
    fn check_pages(checked: &mut Vec<CheckedPage>, gpa: u64, len: u32, shared: bool, ok: bool) {
        for pfn in gpa >> 12..=(gpa + u64::from(len) - 1) >> 12 {
            let i = match checked
                .iter()
                .position(|c| c.pfn == pfn && c.shared == shared)
            {
                Some(i) => i,
                None if checked.len() == 4 * UA_COCO_MAX_RANGES => return,
                None => {
                    checked.push(CheckedPage {
                        pfn,
                        shared,
                        as_expected: true,
                    });
                    checked.len() - 1
                }
            };
            checked[i].as_expected &= ok;
        }
    }

    /// The guest asked for a check: its mailbox is at `gpa`.
    fn check(&self, con: &mut Console, gpa: u64, seq: u32) {
        let out = &mut con.out;
        // The mailbox itself must be shared, or the guest could not talk to us.
        let mut mb = [0u8; MAILBOX_SIZE];
        let res = self.probe(gpa, MAILBOX_SIZE as u32, 0);
        fence(Ordering::Acquire);
        // The guest can write the mailbox at any time: it is read once, into
        // a local copy, and only the copy is validated and used.
        if res == REFUSED || res == OUTSIDE || self.ram.read(gpa, &mut mb).is_err() {
            let _ = writeln!(
                out,
                "coco: check {seq}: the mailbox at 0x{gpa:x} is not readable"
            );
            return;
        }
        let (magic, mseq, nr) = (le64(&mb, 0), le32(&mb, 8), le32(&mb, 12));
        if magic != UA_COCO_MAGIC || mseq != seq || nr as usize > UA_COCO_MAX_RANGES {
            let _ = writeln!(
                out,
                "coco: check {seq}: bad mailbox (magic {magic:x} seq {mseq} nr {nr})"
            );
            return;
        }
        let mut readable = [0u32; KIND_NAMES.len()];
        let mut total = [0u32; KIND_NAMES.len()];
        for i in 0..nr as usize {
            let r = &mb[RANGES_AT + i * RANGE_SIZE..][..RANGE_SIZE];
            let (rgpa, pattern, len) = (le64(r, 0), le64(r, 8), le32(r, 16));
            let (expect, kind) = (le32(r, 20), le32(r, 24));
            let kind = if (kind as usize) < KIND_NAMES.len() {
                kind
            } else {
                PLAIN_PAGE
            } as usize;
            let res = self.probe(rgpa, len, pattern);
            let read = res == READ_PATTERN || res == READ_OTHER;
            let at = gpa + (RANGES_AT + i * RANGE_SIZE) as u64 + RESULT_IN_RANGE;
            // A mailbox made private meanwhile: the guest reads no result.
            let _ = self.ram.write(at, &res.to_le_bytes());
            total[kind] += 1;
            readable[kind] += u32::from(read);
            if res != OUTSIDE && len != 0 {
                let shared = expect == EXPECT_SHARED;
                let ok = if shared { res == READ_PATTERN } else { !read };
                Self::check_pages(&mut con.checked, rgpa, len, shared, ok);
            }
        }
        let (mut shared_ok, mut shared, mut private_read, mut private) = (0, 0, 0, 0);
        for c in con.checked.drain(..) {
            if c.shared {
                shared += 1;
                shared_ok += u32::from(c.as_expected);
            } else {
                private += 1;
                private_read += u32::from(!c.as_expected);
            }
        }
        let out = &mut con.out;
        for (i, name) in KIND_NAMES.iter().enumerate() {
            if total[i] != 0 {
                let _ = writeln!(
                    out,
                    "coco: check {seq}: host read {}/{} {name}",
                    readable[i], total[i]
                );
            }
        }
        let _ = writeln!(
            out,
            "coco: host read {shared_ok}/{shared} shared pages, {private_read}/{private} private pages"
        );
        let _ = out.flush();
        self.checks.fetch_add(1, Ordering::Relaxed);
        fence(Ordering::Release);
        let _ = self.ram.write(gpa + DONE_AT, &seq.to_le_bytes());
    }

    /// The page at RAM offset `off` still holds what it held before the guest ran.
    fn untouched(&self, page: &[u8], off: u64) -> bool {
        for l in &self.loaded {
            let at = off.wrapping_sub(l.off);
            if at < l.copy.len() as u64 {
                return page == &l.copy[at as usize..at as usize + PAGE as usize];
            }
        }
        page.chunks_exact(8).all(|w| le64(w, 0) == RAM_MARKER)
    }

    /// Ends the run of shared pages in progress, if any, at RAM offset `off`.
    fn end_range(&self, w: &mut Sweep, off: u64, out: &mut String) {
        if !w.in_range {
            return;
        }
        if w.ranges < SHOWN_RANGES {
            let _ = writeln!(
                out,
                "coco: sweep {}: shared 0x{:x}+{} pages, {:016x}",
                w.tag,
                self.ram.base() + w.start,
                (off - w.start) >> 12,
                w.first_word
            );
        }
        w.ranges += 1;
        w.in_range = false;
    }

    /// Sweeps the pages at RAM offsets `from` to `to` (excluded).
    fn sweep_range(&self, st: &mut SweepState, from: u64, to: u64, out: &mut String) {
        let mut page = [0u8; PAGE as usize];
        let w = &mut st.sw;
        for off in (from..to).step_by(PAGE as usize) {
            let pfn = (off / PAGE) as usize;
            let mut shared = false;
            if self.ram.read(self.ram.base() + off, &mut page).is_err() {
                w.private += 1;
            } else if self.untouched(&page, off) {
                w.untouched += 1;
            } else {
                shared = true;
            }
            if shared && !w.in_range {
                w.start = off;
                w.first_word = le64(&page, 0);
                w.in_range = true;
            } else if !shared {
                self.end_range(w, off, out);
            }
            w.shared += u64::from(shared);
            let bit = 1u8 << (pfn % 8);
            let was = st.last_shared[pfn / 8] & bit != 0;
            w.before += u64::from(was);
            w.still += u64::from(was && shared);
            if shared {
                st.last_shared[pfn / 8] |= bit;
            } else {
                st.last_shared[pfn / 8] &= !bit;
            }
        }
    }

    fn sweep_ram(&self, st: &mut SweepState, tag: &str, part: u32, parts: u32, out: &mut String) {
        let size = self.ram.size();
        let pages = size / PAGE;
        if st.last_shared.is_empty() {
            st.last_shared = vec![0; (pages / 8 + 1) as usize];
        }
        if parts == 0 || part >= parts || (part != 0 && (part != st.sw.next || tag != st.sw.tag)) {
            let _ = writeln!(out, "coco: sweep {tag}: part {part}/{parts} out of order");
            st.sw.next = 0;
            return;
        }
        if part == 0 {
            st.sw = Sweep {
                tag: tag.to_owned(),
                t0: Some(Instant::now()),
                ..Sweep::default()
            };
        }
        st.sw.next = part + 1;
        let (part, parts) = (u64::from(part), u64::from(parts));
        self.sweep_range(
            st,
            pages * part / parts * PAGE,
            pages * (part + 1) / parts * PAGE,
            out,
        );
        if part + 1 < parts {
            return;
        }
        let mut w = std::mem::take(&mut st.sw);
        self.end_range(&mut w, size, out);
        let ms = w.t0.map_or(0, |t| t.elapsed().as_millis());
        let _ = writeln!(
            out,
            "coco: sweep {tag}: {} shared pages in {} ranges, {} private, {} untouched",
            w.shared, w.ranges, w.private, w.untouched
        );
        let _ = writeln!(
            out,
            "coco: sweep {tag}: {} of {} last-sweep pages still shared, in {ms} ms",
            w.still, w.before
        );
        // w dropped: the next sweep starts from part 0 (next = 0).
    }

    /// A character the guest wrote to the console.
    pub fn putc(&self, c: u8) {
        let mut sweep = None;
        {
            let mut con = self.console.lock().unwrap();
            let _ = con.out.write_all(&[c]);
            if c == b'\n' {
                let _ = con.out.flush();
                let mut line = std::mem::take(&mut con.line);
                // The C VMM's line was a string: it ended at a NUL.
                if let Some(nul) = line.iter().position(|&b| b == 0) {
                    line.truncate(nul);
                }
                if let Some(m) = find(&line, "ua-coco: mailbox ") {
                    if let Some((gpa, seq)) = parse_mailbox(&line[m..]) {
                        self.check(&mut con, gpa, seq);
                    }
                }
                if let Some(m) = find(&line, "ua-coco: sweep ") {
                    sweep = parse_sweep(&line[m..]);
                }
                line.clear();
                con.line = line;
            } else if con.line.len() < LINE_MAX {
                con.line.push(c);
            }
        }
        // Only this vCPU waits for a sweep: the others can print meanwhile
        // (a vCPU stopped longer than the RCU stall timeout is a stall).
        if let Some((tag, part, parts)) = sweep {
            let mut text = String::new();
            {
                let mut st = self.sweep.lock().unwrap();
                self.sweep_ram(&mut st, &tag, part, parts, &mut text);
            }
            // On lines of their own, even if another vCPU is mid-line.
            let mut con = self.console.lock().unwrap();
            if !con.line.is_empty() {
                let _ = con.out.write_all(b"\n");
            }
            let _ = con.out.write_all(text.as_bytes());
            let _ = con.out.flush();
        }
    }

    /// Writes `text` on the console, on lines of its own.
    pub fn print(&self, text: &str) {
        let mut con = self.console.lock().unwrap();
        if !con.line.is_empty() {
            let _ = con.out.write_all(b"\n");
        }
        let _ = con.out.write_all(text.as_bytes());
        let _ = con.out.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: u64 = 0x4000_0000;

    #[derive(Clone, Default)]
    struct Out(Arc<Mutex<Vec<u8>>>);

    impl Write for Out {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Out {
        fn take(&self) -> String {
            String::from_utf8(std::mem::take(&mut *self.0.lock().unwrap())).unwrap()
        }
    }

    fn setup(mib: u64) -> (Arc<GuestRam>, Coco, Out) {
        let ram = Arc::new(GuestRam::new(BASE, mib << 20).unwrap());
        let marker: Vec<u8> = RAM_MARKER.to_le_bytes().repeat(512);
        for off in (0..mib << 20).step_by(4096) {
            ram.write(BASE + off, &marker).unwrap();
        }
        let out = Out::default();
        let coco = Coco::new(ram.clone(), Box::new(out.clone()));
        (ram, coco, out)
    }

    fn say(coco: &Coco, s: &str) {
        s.bytes().for_each(|c| coco.putc(c));
    }

    #[test]
    fn parses_like_sscanf() {
        assert_eq!(
            parse_mailbox(b"ua-coco: mailbox 4a3c1000 seq 3"),
            Some((0x4a3c_1000, 3))
        );
        assert_eq!(
            parse_mailbox(b"ua-coco: mailbox 0x10 seq  7 x"),
            Some((0x10, 7))
        );
        assert_eq!(parse_mailbox(b"ua-coco: mailbox zz seq 7"), None);
        assert_eq!(
            parse_sweep(b"ua-coco: sweep before-kexec 3/16"),
            Some(("before-kexec".into(), 3, 16))
        );
        assert_eq!(parse_sweep(b"ua-coco: sweep t 3 /16"), None);
        let long = format!("ua-coco: sweep {} 1/2", "x".repeat(40));
        assert_eq!(parse_sweep(long.as_bytes()), None);
    }

    #[test]
    fn mailbox_check_reads_shared_and_refuses_private() {
        let (ram, coco, out) = setup(4);
        let mb = BASE + 0x10000;
        let mut m = vec![0u8; MAILBOX_SIZE];
        m[0..8].copy_from_slice(&UA_COCO_MAGIC.to_le_bytes());
        m[8..12].copy_from_slice(&5u32.to_le_bytes());
        m[12..16].copy_from_slice(&3u32.to_le_bytes());
        // 0: a kmalloc_decrypted object with its pattern, shared.
        // 1: an unmapped page, private (refused).
        // 2: a shared page without the pattern.
        let ranges = [
            (BASE + 0x20000, 0x1111u64, 64u32, 1u32, 0u32),
            (BASE + 0x30000, 0, 4096, 2, 2),
            (BASE + 0x40000, 0x2222, 4096, 1, 1),
        ];
        for (i, r) in ranges.iter().enumerate() {
            let at = RANGES_AT + i * RANGE_SIZE;
            m[at..at + 8].copy_from_slice(&r.0.to_le_bytes());
            m[at + 8..at + 16].copy_from_slice(&r.1.to_le_bytes());
            m[at + 16..at + 20].copy_from_slice(&r.2.to_le_bytes());
            m[at + 20..at + 24].copy_from_slice(&r.3.to_le_bytes());
            m[at + 24..at + 28].copy_from_slice(&r.4.to_le_bytes());
        }
        ram.write(mb, &m).unwrap();
        ram.write(BASE + 0x20000, &0x1111u64.to_le_bytes().repeat(8))
            .unwrap();
        ram.make_private(BASE + 0x30000);
        say(&coco, &format!("[   1.0] ua-coco: mailbox {mb:x} seq 5\n"));
        let text = out.take();
        assert_eq!(
            text,
            format!(
                "[   1.0] ua-coco: mailbox {mb:x} seq 5\n\
                 coco: check 5: host read 1/1 kmalloc_decrypted objects\n\
                 coco: check 5: host read 1/1 alloc_decrypted_pages pages\n\
                 coco: check 5: host read 0/1 unmapped_alloc pages\n\
                 coco: host read 1/2 shared pages, 0/1 private pages\n"
            )
        );
        let mut b = [0u8; 4];
        ram.read(mb + DONE_AT, &mut b).unwrap();
        assert_eq!(u32::from_le_bytes(b), 5);
        for (i, want) in [READ_PATTERN, REFUSED, READ_OTHER].iter().enumerate() {
            ram.read(
                mb + (RANGES_AT + i * RANGE_SIZE) as u64 + RESULT_IN_RANGE,
                &mut b,
            )
            .unwrap();
            assert_eq!(u32::from_le_bytes(b), *want);
        }
        assert_eq!(coco.checks(), 1);
        // A private mailbox is reported, not fatal.
        ram.make_private(mb);
        say(&coco, &format!("ua-coco: mailbox {mb:x} seq 6\n"));
        assert!(out.take().ends_with(&format!(
            "coco: check 6: the mailbox at 0x{mb:x} is not readable\n"
        )));
    }

    #[test]
    fn sweeps_count_shared_private_untouched() {
        let (ram, mut coco, out) = setup(4);
        ram.write(BASE, b"kernel").unwrap();
        coco.keep_loaded(0, 6);
        // Shared and written: 2 pages at 0x100000, 1 at 0x200000.
        ram.write(BASE + 0x10_0000, &[7; 8192]).unwrap();
        ram.write(BASE + 0x20_0000, &[9; 8]).unwrap();
        ram.make_private(BASE + 0x30_0000);
        for i in 0..4 {
            say(&coco, &format!("ua-coco: sweep t1 {i}/4\n"));
        }
        let text = out.take();
        let lines: Vec<_> = text.lines().filter(|l| l.starts_with("coco:")).collect();
        assert_eq!(
            lines[0],
            "coco: sweep t1: shared 0x40100000+2 pages, 0707070707070707"
        );
        assert_eq!(
            lines[1],
            "coco: sweep t1: shared 0x40200000+1 pages, 0909090909090909"
        );
        assert_eq!(
            lines[2],
            "coco: sweep t1: 3 shared pages in 2 ranges, 1 private, 1020 untouched"
        );
        assert!(lines[3].starts_with("coco: sweep t1: 0 of 0 last-sweep pages still shared, in "));
        // The guest makes one page private again: 2 of 3 still shared.
        ram.make_private(BASE + 0x10_0000);
        say(&coco, "ua-coco: sweep t2 0/1\n");
        let text = out.take();
        assert!(text
            .contains("coco: sweep t2: 2 shared pages in 2 ranges, 2 private, 1020 untouched\n"));
        assert!(text.contains("coco: sweep t2: 2 of 3 last-sweep pages still shared"));
        say(&coco, "ua-coco: sweep t3 1/2\n");
        assert!(out
            .take()
            .contains("coco: sweep t3: part 1/2 out of order\n"));
    }
}
