"""Keep glibc's large blocks in the process: big tensors stop paying for fresh, zeroed pages every step.

glibc serves every allocation above its mmap threshold (dynamic, at most 32 MiB) with a fresh mmap,
and returns it to the kernel on free; the next step's tensor of the same size is then page-faulted
and zeroed again. The triplet tensors of 3B-TC at width 256 (33,600 x 256 floats, 34 MB per batch
of 32 cells) sit above that bound, so each of their passes cost about twice its memory traffic:
`optiscale bench train` measured 3B-TC h256 at 16 graphs/s without this setting and 26 with it
(2 threads; the 2B models, whose tensors stay under the bound, are unchanged). The same advice is
given for PyTorch on CPU with jemalloc or tcmalloc; this needs no extra library.

The cost: memory freed by the process is kept for reuse rather than returned to the system, so the
resident size stays at its peak (the bench's `peak_rss_mb` is the figure to watch). Set
OPTISCALE_MALLOC=system to keep glibc's defaults.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
import sys

M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4  # <malloc.h>


@functools.cache
def tune_malloc() -> str:
    """Serve large blocks from the heap and never trim it (glibc only, once per process); says what was done."""
    if os.environ.get("OPTISCALE_MALLOC", "").lower() == "system":
        return "system defaults (OPTISCALE_MALLOC=system)"
    if not sys.platform.startswith("linux"):
        return f"system defaults (not glibc: {sys.platform})"
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.gnu_get_libc_version.restype = ctypes.c_char_p
        version = libc.gnu_get_libc_version().decode()
        ok = libc.mallopt(M_MMAP_MAX, 0) == 1 and libc.mallopt(M_TRIM_THRESHOLD, 2**31 - 1) == 1
    except (OSError, AttributeError):  # musl and others: no gnu_get_libc_version / mallopt
        return "system defaults (not glibc)"
    return f"glibc {version}: mmap off, trim threshold 2 GiB" if ok else "mallopt refused"
