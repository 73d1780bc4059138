"""Memory the process no longer uses goes back to the system.

A burst of passes (start-up, many clusters created at once) leaves freed memory inside glibc's heaps:
Python releases its own small-object arenas, but glibc keeps the pages of freed large blocks (JSON
the API server answered, TLS buffers) mapped. `malloc_trim(0)` hands every whole free page back;
the scheduler calls it once the queue has been quiet for a while (`Scheduler(on_idle=...)`).
Elsewhere (musl, macOS) it does nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

_trim: Callable[[int], Any] | None = None
_looked_up = False


def release_freed_memory() -> None:
    global _trim, _looked_up
    if not _looked_up:
        _looked_up = True
        try:
            import ctypes

            function = ctypes.CDLL(None).malloc_trim
            function.argtypes = [ctypes.c_size_t]
            function.restype = ctypes.c_int
            _trim = function
        except (OSError, AttributeError):
            _trim = None
    if _trim is not None:
        _trim(0)
