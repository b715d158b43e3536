"""Process memory: give freed tensor memory back to the system promptly.

glibc raises its mmap threshold as large blocks are freed (up to 32 MiB), after which the
tens-of-MiB tensors a 1080p frame or a level of latents makes come from the heap, where a
free leaves the pages in the process: a 1080p decode's RSS climbed to 1.61 GB over its coding
passes, 1.26 GB with a fixed 1 MiB threshold (decoding the latents alone, in a fresh process,
peaked at 0.64 GB). Fixing the threshold makes such blocks mmapped, returned on free. A process entry point
(the CLI, a server worker, a GOP worker) calls `return_freed_memory()` once; elsewhere
(not glibc) it does nothing.

Why 12 MiB and not lower: every mapped block is zero-filled page by page when touched, and
at 1 MiB the training step's tensors at 320x180 (up to ~11 MB) were all mapped: the bundled
clip's 60 s `grid` encode made 165 steps instead of 286 (sys time 47 s of 124) and decoded
at 34 instead of 51 frames/s. At 12 MiB those stay on the heap (as fast as glibc's own
threshold) while a 1080p frame's blocks are still returned: a 20-frame 1080p GOP decoded
in 26.6 s at 867 MB peak RSS (1 MiB: 32.3 s, 815 MB; glibc's dynamic threshold: 24.7 s,
1013 MB), and a 12-frame 1080p GOP encoded at 2.32 GB peak.
"""
from __future__ import annotations

import ctypes
import ctypes.util

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 12 << 20  # blocks from 12 MiB up are mapped on their own
TRIM_THRESHOLD = 64 << 20  # heap tops above this are given back


def return_freed_memory() -> bool:
    """Set glibc's thresholds; True if they were set."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
