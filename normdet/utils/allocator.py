"""glibc's malloc, told to keep freed memory for reuse: a CPU training step then takes no page
faults.

PyTorch's CPU tensors come from the C library's ``malloc``. glibc serves blocks from 128 KiB up
(a threshold that grows, to at most 32 MiB, as such blocks are freed) with fresh ``mmap`` pages
and gives them back to the kernel when they are freed, and it trims the free top of its heap.
Every training step frees its activations and allocates them again, so each step touches
thousands of new pages, and each first touch is a page fault the kernel serves by zeroing a page.
On the 2-core machine, SSDLite-mini at 2 images took 4,800 (BN) to 9,100 (DN-B) faults a step,
10-20 ms of system time (``docs/performance.md``, "CPU: the allocator").

:func:`keep_freed_memory` sets the two thresholds once (``mallopt``): blocks below 32 MiB (the
largest mmap threshold glibc accepts on 64-bit) come from the heap, and up to 1 GiB of free
memory at its top is kept. Freed memory is then reused, and a step takes no page faults after
the first. The process keeps its peak memory instead of returning it between steps; the peak grows
little (1.29 GB against 1.27 GB for a study run). No numbers change: only where the memory
comes from.

The tools call it first (``normdet.cli.run.run_tool``,
``normdet.openmmlab.engine.runner.build_runner``). It does nothing off glibc (macOS, musl) and when ``NORMDET_MALLOC=default``, which keeps glibc's own behaviour.
"""
import ctypes
import functools
import os
import sys

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's <malloc.h>
MMAP_THRESHOLD = 32 << 20  # glibc refuses more on 64-bit (HEAP_MAX_SIZE / 2)
TRIM_THRESHOLD = 1 << 30


@functools.cache
def keep_freed_memory() -> bool:
    """Set glibc's malloc to reuse freed memory rather than unmap and fault it in again; True if
    it was set (once per process; later calls return the first answer)."""
    if os.environ.get('NORMDET_MALLOC') == 'default' or not sys.platform.startswith('linux'):
        return False
    try:
        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    # the mmap threshold first: setting either one also fixes the other (no more growing)
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)
                and mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
