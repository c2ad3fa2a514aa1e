"""Keeping a long-running process's memory flat: the C heap (ONNX Runtime's arenas: backends/onnx_options.py).

An 8-hour soak grew RSS by steps that never came back (docs/reliability.md, "Soak"): nothing Python-side grew; the
memory was C heap that glibc had freed but kept. Two things cause it here:
- glibc gives each thread that allocates concurrently its own arena (up to 8 per core); the ASR, ONNX Runtime and
  SQLite threads each fragment theirs, and memory freed inside an arena is not returned to the system until the top
  of that arena is free. `limit_arenas()` caps them; `release_free_memory()` (glibc's malloc_trim) hands the free
  pages back after each turn.
- ONNX Runtime's CPU arena grows to the largest tensor a session has ever seen and never shrinks: sessions fed
  variable-length inputs run without it (`assistant.backends.onnx_options`).
Both are no-ops where glibc is not the C library (musl, macOS).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import logging

log = logging.getLogger(__name__)

M_ARENA_MAX = -8  # glibc's mallopt parameter number (malloc.h)
ARENAS = 2
"""C heap arenas: 2 is the usual cap for a threaded server (fewer arenas, less kept; contention is negligible with
one turn at a time)."""


@functools.cache
def _libc():
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name or "libc.so.6")
        libc.malloc_trim.argtypes = [ctypes.c_size_t]
        libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
        return libc
    except (OSError, AttributeError):  # not glibc: nothing to tune
        return None


def limit_arenas(arenas: int = ARENAS) -> bool:
    """Cap glibc's malloc arenas; call before the model runtimes start their threads. False when not glibc."""
    libc = _libc()
    return bool(libc is not None and libc.mallopt(M_ARENA_MAX, arenas))


def release_free_memory() -> bool:
    """Return the C heap's free pages to the system (glibc `malloc_trim(0)`: a few ms, after a turn, not during)."""
    libc = _libc()
    return bool(libc is not None and libc.malloc_trim(0))
