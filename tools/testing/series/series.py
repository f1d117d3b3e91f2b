#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Build the unmapped_alloc patch series against the pristine 7.2 tree.

Usage: series.py ROOT TREE OUT

ROOT is the component's repository, TREE a git work tree holding the
pristine kernel at the tag 'v7.2', OUT the directory for the patches. Each
patch is one concept (CONCEPTS); the tree after each one is the state the
component's files describe, cut down to the concepts applied so far:

- every file of the component belongs to one concept (FILES, or the rules in
  concept_of()) and is absent until that concept's patch;
- lines of a file that belong to a later concept (CUTS: the function calls,
  declarations and registrations one concept adds to another's files) are
  cut until that concept's patch; each cut must match exactly once, so a
  change to the code that moves them fails here rather than slipping into
  the series;
- the crate root of the first patch, which has only the direct map layer,
  is layer-root.rs;
- Kconfig and Kbuild keep only the options and objects of applied concepts.
"""

import os
import re
import shutil
import subprocess
import sys

ROOT, TREE, OUT = sys.argv[1:4]
COMP = 'mm/unmapped_alloc'
SOB = 'Signed-off-by: unmapped_alloc developers <unmapped_alloc@localhost>'


def git(*args, **kw):
    return subprocess.run(['git', '-C', TREE, *args], check=True,
                          stdout=subprocess.PIPE, text=True, **kw).stdout


def read(path):
    with open(os.path.join(ROOT, path)) as f:
        return f.read()


def write(path, text):
    dst = os.path.join(TREE, path)
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    with open(dst, 'w') as f:
        f.write(text)


def copy(src, dst):
    os.makedirs(os.path.dirname(os.path.join(TREE, dst)), exist_ok=True)
    shutil.copy(os.path.join(ROOT, src), os.path.join(TREE, dst))


def apply(patch):
    with open(os.path.join(ROOT, 'patches', patch)) as f:
        subprocess.run(['patch', '-d', TREE, '-p1', '--quiet', '--forward'],
                       stdin=f, check=True)


def strip_tests(text):
    """The Rust file without the declarations of its KUnit suite and testutil."""
    for m in ['tests', 'testutil']:
        text = text.replace(f'#[cfg(CONFIG_UNMAPPED_ALLOC_KUNIT_TEST)]\nmod {m};\n', '')
    return text.replace('#[cfg(CONFIG_UNMAPPED_ALLOC_KUNIT_TEST)]\npub(crate) mod testing;\n', '')


# The concepts, in the order of their patches.
CONCEPTS = ['layer', 'pages', 'caches', 'observability', 'kunit', 'rust-api', 'samples',
            'testing']

# The concept of each file of the component not covered by concept_of()'s rules.
FILES = {
    'layer': ['helpers.c', 'internal.h', 'include/linux/unmapped_alloc.h',
              'rust/unmapped_alloc.rs', 'rust/sys.rs', 'rust/sys/frames.rs',
              'rust/sys/lock.rs', 'detectors.c', 'rust/sys/detectors.rs', 'rust/mutant.rs'],
    'pages': ['register.c', 'rust/sys/register.rs', 'rust/backend.rs', 'rust/buddy.rs',
              'rust/pernode.rs', 'rust/sorted.rs', 'rust/stats.rs', 'rust/pages.rs',
              'rust/pages/pool.rs', 'rust/pages/convert.rs', 'rust/pages/reserve.rs',
              'rust/pages/maintenance.rs', 'rust/c_api.rs'],
    'caches': ['rust/slab.rs', 'rust/sys/percpu.rs', 'rust/sys/handle.rs',
               'rust/c_api/objects.rs'],
    'observability': ['trace.c', 'include/trace/events/unmapped_alloc.h',
                      'rust/sys/trace.rs', 'rust/debugfs.rs', 'rust/debugfs/text.rs'],
    'kunit': ['coco_test.c', 'caught_test.c', 'conversions.c', 'conversions.h', '.kunitconfig',
              'tools/testing/coco/ua_coco.h',
              'rust/testutil.rs', 'rust/sys/testing.rs'],
    'testing': ['unmapped_alloc_torture.c'],
}


def concept_of(rel):
    """The concept a file of the component (relative to ROOT) belongs to."""
    if os.path.basename(rel) == 'tests.rs':
        return 'kunit'
    if rel.startswith('samples/'):
        return 'samples'
    if rel.startswith('bench/'):
        return 'testing'
    for c, files in FILES.items():
        if rel in files:
            return c
    sys.exit(f'series.py: {rel}: no concept; add it to FILES')


# What one concept adds to the files of earlier ones: (concept, file in the
# tree, text, the text before that concept's patch).
CUTS = [
    # The page allocator registers with the kernel; the shrinker, the shutdown
    # hook and the torture test call the C API it adds.
    ('pages', 'rust/sys.rs', 'mod register;\n', ''),
    ('pages', 'rust/sys.rs', """#[cfg(CONFIG_UNMAPPED_ALLOC_KUNIT_TEST)]
pub(crate) use register::hibernation_check;
pub(crate) use register::{
    register_pm_notifier, register_shrinker, register_shutdown_hook, system_dfl, write_out,
    Published,
};
""", ''),
    ('pages', 'internal.h', """
/* In register.c. */
int ua_register_shrinker(void);
int ua_register_shutdown_hook(void);
int ua_register_pm_notifier(void);
int ua_hibernation_check(void);

/* Defined in Rust, called by the shrinker and the shutdown hook. */
unsigned long unmapped_alloc_reclaimable(void);
unsigned long unmapped_alloc_shrink(unsigned long nr_to_scan);
void unmapped_alloc_unshare_all(void);

/* Defined in Rust for the torture test (CONFIG_UNMAPPED_ALLOC_TORTURE). */
long ua_torture_host_write(u64 seed);
long ua_torture_model_shared_pages(void);
""", ''),
    ('pages', 'Kbuild', ' register.o', ''),
    ('pages', 'include/linux/unmapped_alloc.h', '@@pages-api', ''),
    # The object caches: their C API, handles and place in init and the counters.
    ('caches', 'include/linux/unmapped_alloc.h', '@@caches-api', ''),
    ('caches', 'register.c', '@@caches-exports', ''),
    ('caches', 'rust/sys.rs', 'mod handle;\n', ''),
    ('caches', 'rust/sys.rs', 'mod percpu;\n', ''),
    ('caches', 'rust/sys.rs',
     'pub(crate) use percpu::{on_this_cpu, CpuLocal, PerCpu, PreemptOff, ThisCpu};\n', ''),
    ('caches', 'rust/sys.rs',
     'pub(crate) use handle::{c_name, into_handle, take_cache, with_cache};\n', ''),
    ('caches', 'rust/unmapped_alloc.rs', 'mod slab;\n', ''),
    ('caches', 'rust/unmapped_alloc.rs', 'use slab::KmallocDecrypted;\n', ''),
    ('caches', 'rust/unmapped_alloc.rs', """
/// The system-wide `kmalloc-decrypted-*` caches, on [`DECRYPTED`].
static KMALLOC: Published<KmallocDecrypted> = Published::new();
""", ''),
    ('caches', 'rust/unmapped_alloc.rs', """
/// The system-wide kmalloc-decrypted caches, once initialised.
fn kmalloc() -> Result<&'static KmallocDecrypted> {
    KMALLOC.get().ok_or(ENODEV)
}
""", ''),
    ('caches', 'rust/unmapped_alloc.rs', """        if !KMALLOC.publish(KmallocDecrypted::new(decrypted)?)? {
            return Err(EBUSY);
        }
""", ''),
    ('caches', 'rust/c_api.rs', """//! [`objects`] has the decrypted object caches'.
""", ''),
    ('caches', 'rust/c_api.rs', """
pub mod objects;
""", ''),
    ('caches', 'rust/c_api.rs', """    let atomic =
        u.stats.atomic_failures.get() + d.stats.atomic_failures.get() + objects::atomic_failures();
""", """    let atomic = u.stats.atomic_failures.get() + d.stats.atomic_failures.get();
"""),
    ('caches', 'rust/c_api.rs', '    objects::shrink();\n', ''),
    ('caches', 'rust/pages.rs', '        new_mutex, Arc, Mutex, MutexGuard,\n', '        new_mutex, Arc, Mutex,\n'),
    ('caches', 'rust/pages/maintenance.rs', '    /// Whether [`Self::shut_down`] was called.\n    pub(crate) fn is_shut_down(&self) -> bool {\n        self.shut_down.load(Relaxed)\n    }\n\n', ''),
    ('caches', 'rust/pages.rs', "    /// The handles of the C API's dedicated caches on this instance, so that a\n    /// shut-down can close them (see `c_api::objects`).\n    #[pin]\n    dedicated: Mutex<KVec<usize>>,\n", ''),
    ('caches', 'rust/pages.rs', '                dedicated <- new_mutex!(KVec::new()),\n', ''),
    ('caches', 'rust/pages.rs', "    /// The handles of the dedicated caches on this instance, locked: a handle is added\n    /// when its cache is made and removed before the cache is destroyed.\n    pub(crate) fn dedicated(&self) -> MutexGuard<'_, KVec<usize>> {\n        self.dedicated.lock()\n    }\n\n", ''),
    ('caches', 'rust/c_api.rs', """    // The caches first: shut the decrypted pages down (waiting for conversions in
    // flight), then take the CPUs' slabs away from every cache on them, so that no
    // object is handed out of a block converted back below.
    if let Ok(d) = decrypted() {
        d.shut_down();
        objects::close_all();
    }
""", ''),
    # debugfs and trace events: the files, the events and where they fire.
    # The Rust API in the kernel crate, which the crate root's documentation names.
    ('rust-api', 'rust/unmapped_alloc.rs',
     "//!   in C, `kernel::unmapped_alloc::UnmappedPages` in Rust (see `kernel_api.rs`).\n",
     '//!   in C.\n'),
    ('observability', 'Kbuild', ' trace.o', ''),
    ('observability', 'rust/bindings/bindings_helper.h',
     '#include <trace/events/unmapped_alloc.h>\n', ''),
    ('observability', 'internal.h', """
/* A probe on unmapped_alloc_pages that counts hits, for the KUnit suite. */
int ua_trace_probe_register(void);
int ua_trace_probe_unregister(void);
int ua_trace_probe_hits(void);
""", ''),
    ('observability', 'rust/sys.rs', 'pub(crate) mod trace;\n', ''),
    ('observability', 'rust/unmapped_alloc.rs', 'mod debugfs;\n', ''),
    # Until the debugfs files come, the accessors and records the page
    # allocator keeps for them (and, before the caches, for the caches) are
    # unused.
    ('observability', 'rust/unmapped_alloc.rs', '\nmod backend;\n', '''
// The debugfs files (and, until they come, the object caches) use accessors and
// records of the page allocator that nothing else does: they come with later patches.
#![expect(dead_code)]

mod backend;
'''),
    ('observability', 'rust/unmapped_alloc.rs', """struct UnmappedAllocModule {
    _debugfs: debugfs::Files,
}
""", 'struct UnmappedAllocModule;\n'),
    ('observability', 'rust/unmapped_alloc.rs', """        let files = debugfs::create(debugfs::Globals {
            unmapped,
            decrypted,
            kmalloc: kmalloc()?,
        })?;
""", ''),
    ('observability', 'rust/unmapped_alloc.rs', 'Ok(Self { _debugfs: files })', 'Ok(Self)'),
    ('observability', 'rust/pages.rs', """    /// The kind's number in trace events.
    fn trace_id(&self) -> i32 {
        match self {
            Kind::Unmapped => 0,
            Kind::Decrypted(_) => 1,
        }
    }
""", ''),
    ('observability', 'rust/pages.rs', '''            Some(pfn) => {
                self.stats.allocs.at(order).inc();
                if !crate::mutant::is(crate::mutant::Mutant::NoTracepoint) {
                    sys::trace::pages(self.kind.trace_id(), pfn.number(), order, gfp);
                }
            }
''', '            Some(_) => self.stats.allocs.at(order).inc(),\n'),
    # The blocks file: the pool's listing and the frames' physical addresses.
    ('observability', 'rust/pages.rs', '''    /// Every block the instance holds, node by node in address order: each node's list
    /// copied under its lock, in memory allocated before the lock is taken (so that the
    /// caller may sleep or allocate while it looks at them).
    pub(crate) fn blocks(&self) -> Result<KVec<BlockInfo>> {
        let mut out = KVec::new();
        for (nid, pool) in self.nodes.iter().enumerate() {
            loop {
                // Room for the list as it is now, and a few blocks taken meanwhile.
                let n = pool.lock().blocks.len();
                out.reserve(n + 4, GFP_KERNEL)?;
                let pool = pool.lock();
                if out.capacity() - out.len() < pool.blocks.len() {
                    continue;
                }
                for b in pool.blocks.iter() {
                    let buddy = &b.buddy;
                    let info = BlockInfo {
                        nid: nid as i32,
                        pfn: b.block.pfn(),
                        order: b.block.order(),
                        used: buddy.nr_pages() - buddy.nr_free() - buddy.nr_dirty(),
                        free: buddy.nr_free(),
                        dirty: buddy.nr_dirty(),
                        state: if b.leaked {
                            BlockState::Leaked
                        } else if b.converted_back {
                            BlockState::ConvertedBack
                        } else {
                            BlockState::InService
                        },
                    };
                    // Cannot fail: the room was checked under the lock.
                    out.push_within_capacity(info).map_err(|_| ENOMEM)?;
                }
                break;
            }
        }
        Ok(out)
    }

''', ''),
    ('observability', 'rust/pages.rs', '''/// What [`PageAllocator::blocks`] shows of a block.
pub(crate) struct BlockInfo {
    /// The node whose pool holds it.
    pub(crate) nid: i32,
    /// Its first frame.
    pub(crate) pfn: Pfn,
    /// It is 2^`order` pages.
    pub(crate) order: u32,
    /// Pages handed out.
    pub(crate) used: usize,
    /// Pages free and clean.
    pub(crate) free: usize,
    /// Pages freed and waiting to be scrubbed.
    pub(crate) dirty: usize,
    /// Whether it is still in service.
    pub(crate) state: BlockState,
}

/// The service state of a block.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum BlockState {
    /// Allocated from, released when free.
    InService,
    /// Its state became unknown while in use: never released.
    Leaked,
    /// Made private again in place while in use: never used or released again.
    ConvertedBack,
}

impl BlockState {
    /// The word the `blocks` file shows.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::InService => "in_service",
            Self::Leaked => "leaked",
            Self::ConvertedBack => "converted_back",
        }
    }
}

''', ''),
    ('observability', 'rust/sys/frames.rs', '''    /// Physical address of the frame.
    pub(crate) fn phys(self) -> u64 {
        (self.0 as u64) << kernel::page::PAGE_SHIFT
    }

''', ''),
    ('observability', 'rust/pages.rs',
     '                sys::trace::free_pages(self.kind.trace_id(), pfn.number(), order);\n', ''),
    ('observability', 'rust/pages/convert.rs', """        sys::trace::block_convert(
            self.kind.trace_id(),
            block.pfn().number(),
            block.order(),
            converted.err().map_or(0, |e| e.to_errno()),
        );
""", ''),
    ('observability', 'rust/pages/convert.rs', """        sys::trace::block_release(
            self.kind.trace_id(),
            block.pfn().number(),
            block.order(),
            if ok { 0 } else { EIO.to_errno() },
        );
""", ''),
    ('observability', 'rust/slab.rs', """            sys::trace::kmalloc(addr, size, c.size(), gfp);
""", ''),
    ('observability', 'rust/slab.rs', """        sys::trace::kmalloc(pfn.virt(), size, PAGE_SIZE << order, gfp);
""", ''),
    ('observability', 'rust/slab.rs', 'Ok(()) => sys::trace::kfree(addr),', 'Ok(()) => {}'),
]

CONFIGS = {
    'layer': ['UNMAPPED_ALLOC'],
    'kunit': ['UNMAPPED_ALLOC_KUNIT_TEST', 'UNMAPPED_ALLOC_COUNT_CONVERSIONS'],
    'samples': ['UNMAPPED_ALLOC_SAMPLES'],
    'testing': ['UNMAPPED_ALLOC_BENCH', 'UNMAPPED_ALLOC_TORTURE'],
}


def kconfig(applied):
    text = read('Kconfig')
    blocks = re.split(r'\n(?=config )', text)
    keep = {c for a in applied for c in CONFIGS.get(a, [])}
    out = [blocks[0]]
    for b in blocks[1:]:
        name = b.split()[1]
        if name in keep:
            out.append(b)
    return '\n'.join(out).rstrip('\n') + '\n'


def kbuild(applied):
    keep = {c for a in applied for c in CONFIGS.get(a, [])}
    out = []
    skip = False
    for line in read('Kbuild').split('\n'):
        cfgs = re.findall(r'CONFIG_(\w+)', line)
        if line.startswith('#') and 'pKVM' in line and 'UNMAPPED_ALLOC_KUNIT_TEST' not in keep:
            continue
        if line.startswith('ifdef') or line.startswith('endif'):
            if line.startswith('ifdef'):
                skip = 'UNMAPPED_ALLOC_KUNIT_TEST' not in keep
            else:
                s, skip = skip, False
                if s:
                    continue
            if skip:
                continue
            out.append(line)
            continue
        if skip:
            continue
        if any(c.startswith('UNMAPPED_ALLOC') and c not in keep for c in cfgs):
            continue
        out.append(line)
    return '\n'.join(out)


# Where a region named '@@name' in CUTS starts, and the texts that may end it
# (the first one found; what a later cut removed may be gone).
REGIONS = {
    '@@pages-api': ('/**\n * unmapped_alloc_node() -',
                    ['/**\n * kmalloc_decrypted() -', '#endif /* _LINUX_UNMAPPED_ALLOC_H */']),
    '@@caches-api': ('/**\n * kmalloc_decrypted() -', ['#endif /* _LINUX_UNMAPPED_ALLOC_H */']),
    '@@caches-exports': ('\n/* The decrypted object caches. */\n', [None]),
}


def region(text, name):
    start, ends = REGIONS[name]
    a = text.find(start)
    if a < 0:
        return start
    for e in ends:
        b = len(text) if e is None else text.find(e, a)
        if b >= 0:
            return text[a:b]
    sys.exit(f'series.py: the end of {name} is missing')


def cut(path, text, applied):
    """`text` of `path` without what concepts not in `applied` add to it."""
    for concept, p, old, new in reversed(CUTS):
        if p != path or concept in applied:
            continue
        if old.startswith('@@'):
            old = region(text, old)
        if text.count(old) != 1:
            sys.exit(f'series.py: {path}: the cut of {concept} matches '
                     f'{text.count(old)} times:\n{old}')
        text = text.replace(old, new)
    return text


def component_files():
    """Every file of the component that the series adds, relative to ROOT."""
    out = {f for files in FILES.values() for f in files}
    for top in ['rust', 'samples', 'bench']:
        for d, _, files in os.walk(os.path.join(ROOT, top)):
            for f in files:
                out.add(os.path.relpath(os.path.join(d, f), ROOT))
    # The Rust API goes into the kernel crate with its own patch.
    out.discard('rust/kernel_api.rs')
    return sorted(out)


def destination(rel):
    """Where a file of the component goes in the tree."""
    return rel if rel.startswith('include/') else f'{COMP}/{rel}'


# Files of the tree that the hook patches change and that CUTS cut, as the
# patches left them.
TREE_FILES = {'rust/bindings/bindings_helper.h': None}


def component(applied):
    """Writes the component's files for the concepts in `applied`."""
    write(f'{COMP}/Kconfig', kconfig(applied))
    write(f'{COMP}/Kbuild', cut('Kbuild', kbuild(applied), applied))
    for rel in component_files():
        if concept_of(rel) not in applied:
            continue
        if rel == 'rust/unmapped_alloc.rs' and applied == ['layer']:
            write(destination(rel), read('tools/testing/series/layer-root.rs'))
            continue
        text = read(rel)
        if rel.endswith('.rs') and 'kunit' not in applied:
            text = strip_tests(text)
        write(destination(rel), cut(rel, text, applied))
    for path, text in TREE_FILES.items():
        if text is None:
            with open(os.path.join(TREE, path)) as f:
                text = TREE_FILES[path] = f.read()
        write(path, cut(path, text, applied))


MAINTAINERS_ENTRY = '''UNMAPPED_ALLOC (ALLOCATOR FOR UNMAPPED AND DECRYPTED MEMORY)
M:	unmapped_alloc developers <unmapped_alloc@localhost>
L:	linux-mm@kvack.org
L:	rust-for-linux@vger.kernel.org
S:	Maintained
F:	Documentation/mm/unmapped_alloc.rst
F:	include/linux/unmapped_alloc.h
F:	include/trace/events/unmapped_alloc.h
F:	mm/unmapped_alloc/
F:	rust/kernel/unmapped_alloc.rs

'''


def maintainers():
    """Adds the entry where it sorts among the section titles."""
    path = os.path.join(TREE, 'MAINTAINERS')
    with open(path) as f:
        text = f.read()
    title = MAINTAINERS_ENTRY.split('\n')[0]
    start = text.index('\nMaintainers List')
    for m in re.finditer(r'^([A-Z0-9][^:\n][^\n]*)\n[A-Z]:\t', text[start:], re.M):
        if m.group(1) > title:
            pos = start + m.start()
            break
    else:
        pos = len(text)
    with open(path, 'w') as f:
        f.write(text[:pos] + MAINTAINERS_ENTRY + text[pos:])


def kernel_parameters():
    """fail_unmapped_alloc= joins the fault injection parameters."""
    path = os.path.join(TREE, 'Documentation/admin-guide/kernel-parameters.txt')
    with open(path) as f:
        text = f.read()
    old = '\tfail_skb_realloc=\n'
    assert old in text
    with open(path, 'w') as f:
        f.write(text.replace(old, old + '\tfail_unmapped_alloc=\n', 1))


def message(name):
    text = read(f'tools/testing/series/{name}.txt')
    return text.rstrip('\n') + '\n\n' + SOB + '\n'


def commit(name):
    git('add', '-A', '-f')
    subprocess.run(['git', '-C', TREE, 'commit', '-q', '-F', '-'],
                   input=message(name), text=True, check=True,
                   env={**os.environ, 'GIT_AUTHOR_NAME': 'unmapped_alloc developers',
                        'GIT_AUTHOR_EMAIL': 'unmapped_alloc@localhost',
                        'GIT_COMMITTER_NAME': 'unmapped_alloc developers',
                        'GIT_COMMITTER_EMAIL': 'unmapped_alloc@localhost',
                        'GIT_AUTHOR_DATE': '2026-11-23T12:00:00Z',
                        'GIT_COMMITTER_DATE': '2026-11-23T12:00:00Z'})


def main():
    git('checkout', '-q', '-f', '-B', 'series', 'v7.2')
    git('clean', '-q', '-fdx')

    apply('0005-rust-helpers-add-preempt_disable-and-preempt_enable.patch')
    commit('01-preempt-helpers')

    apply('0008-rust-print-tell-KMSAN-what-pA-wrote.patch')
    commit('01-kmsan-print')

    applied = ['layer']
    apply('0001-mm-hook-in-unmapped_alloc.patch')
    apply('0002-rust-bindings-add-unmapped_alloc-headers.patch')
    copy('rust_helpers.c', 'rust/helpers/unmapped_alloc.c')
    component(applied)
    maintainers()
    kernel_parameters()
    commit('02-layer')

    for concept, name in [('pages', '03-pages'), ('caches', '04-caches'),
                          ('observability', '05-debugfs-trace'), ('kunit', '06-kunit')]:
        applied.append(concept)
        component(applied)
        commit(name)

    applied.append('rust-api')
    apply('0003-rust-add-unmapped_alloc-abstractions.patch')
    copy('rust/kernel_api.rs', 'rust/kernel/unmapped_alloc.rs')
    component(applied)
    commit('07-rust-api')

    apply('0004-irqchip-gic-v3-its-allocate-shared-memory-from-unmapped_alloc.patch')
    commit('08-its')

    apply('0007-mm-secretmem-take-folios-from-unmapped_alloc.patch')
    commit('08-secretmem')

    apply('0009-dma-direct-take-memory-shared-with-the-host-from-unmapped_alloc.patch')
    commit('08-dma')

    applied.append('samples')
    component(applied)
    commit('09-samples')

    applied.append('testing')
    component(applied)
    commit('10-torture-bench')

    apply('0006-docs-mm-add-unmapped_alloc.patch')
    copy('Documentation/unmapped_alloc.rst', 'Documentation/mm/unmapped_alloc.rst')
    commit('11-docs')

    shutil.rmtree(OUT, ignore_errors=True)
    os.makedirs(OUT)
    git('format-patch', '-q', '--cover-letter', '--no-signature', '-o', OUT, 'v7.2..series')
    cover = [f for f in os.listdir(OUT) if f.startswith('0000-')][0]
    path = os.path.join(OUT, cover)
    with open(path) as f:
        text = f.read()
    body = read('tools/testing/series/00-cover.txt')
    subject, _, rest = body.partition('\n\n')
    text = text.replace('*** SUBJECT HERE ***', subject.strip())
    text = text.replace('*** BLURB HERE ***', rest.rstrip('\n') + '\n\n' + SOB)
    with open(path, 'w') as f:
        f.write(text)


main()
