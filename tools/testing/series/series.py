#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Build the unmapped_alloc patch series against the pristine 7.2 tree.

Usage: series.py ROOT TREE OUT

ROOT is the component's repository, TREE a git work tree holding the
pristine kernel at the tag 'v7.2', OUT the directory for the patches. Each
patch is one concept; the tree after each one is the state the component's
files describe, cut down to the concepts applied so far:

- files of later concepts are absent;
- the KUnit suites (the 'tests.rs' file next to the code each one tests),
  their 'mod tests;' declarations and the 'testutil' module come with the
  KUnit patch;
- Kconfig and Kbuild keep only the options and lines of applied concepts.
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
    return text


CONFIGS = {
    'core': ['UNMAPPED_ALLOC'],
    'kunit': ['UNMAPPED_ALLOC_KUNIT_TEST'],
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


def rust_files():
    """The component's Rust files, relative to rust/, but the Rust API's."""
    out = []
    for d, _, files in os.walk(os.path.join(ROOT, 'rust')):
        for f in files:
            rel = os.path.relpath(os.path.join(d, f), os.path.join(ROOT, 'rust'))
            if f.endswith('.rs') and rel != 'kernel_api.rs':
                out.append(rel)
    return sorted(out)


def is_test(rel):
    """Whether a Rust file is a KUnit suite or the tests' utilities."""
    return os.path.basename(rel) == 'tests.rs' or rel == 'testutil.rs'


def component(applied):
    """Writes the component's files for the concepts in `applied`."""
    write(f'{COMP}/Kconfig', kconfig(applied))
    write(f'{COMP}/Kbuild', kbuild(applied))
    for f in ['helpers.c', 'trace.c', 'internal.h']:
        copy(f, f'{COMP}/{f}')
    copy('include/linux/unmapped_alloc.h', 'include/linux/unmapped_alloc.h')
    copy('include/trace/events/unmapped_alloc.h', 'include/trace/events/unmapped_alloc.h')
    tests = 'kunit' in applied
    for rel in rust_files():
        if is_test(rel):
            if tests:
                copy(f'rust/{rel}', f'{COMP}/rust/{rel}')
            continue
        text = read(f'rust/{rel}')
        write(f'{COMP}/rust/{rel}', text if tests else strip_tests(text))
    if tests:
        copy('coco_test.c', f'{COMP}/coco_test.c')
        copy('.kunitconfig', f'{COMP}/.kunitconfig')
        copy('tools/testing/coco/ua_coco.h', f'{COMP}/tools/testing/coco/ua_coco.h')
    if 'samples' in applied:
        for f in sorted(os.listdir(os.path.join(ROOT, 'samples'))):
            copy(f'samples/{f}', f'{COMP}/samples/{f}')
    if 'testing' in applied:
        copy('unmapped_alloc_torture.c', f'{COMP}/unmapped_alloc_torture.c')
        for f in sorted(os.listdir(os.path.join(ROOT, 'bench'))):
            copy(f'bench/{f}', f'{COMP}/bench/{f}')


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
    applied = []

    apply('0005-rust-helpers-add-preempt_disable-and-preempt_enable.patch')
    commit('01-preempt-helpers')

    applied.append('core')
    apply('0001-mm-hook-in-unmapped_alloc.patch')
    apply('0002-rust-bindings-add-unmapped_alloc-headers.patch')
    component(applied)
    maintainers()
    kernel_parameters()
    commit('02-core')

    applied.append('kunit')
    component(applied)
    commit('03-kunit')

    apply('0003-rust-add-unmapped_alloc-abstractions.patch')
    copy('rust/kernel_api.rs', 'rust/kernel/unmapped_alloc.rs')
    commit('04-rust-api')

    apply('0004-irqchip-gic-v3-its-allocate-shared-memory-from-unmapped_alloc.patch')
    commit('05-its')

    applied.append('samples')
    component(applied)
    commit('06-samples')

    applied.append('testing')
    component(applied)
    commit('07-torture-bench')

    apply('0006-docs-mm-add-unmapped_alloc.patch')
    copy('Documentation/unmapped_alloc.rst', 'Documentation/mm/unmapped_alloc.rst')
    commit('08-docs')

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
