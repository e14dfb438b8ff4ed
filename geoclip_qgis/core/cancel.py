"""One cancel hook for every long loop in the engine.

Why: a job is cancelled from another thread (the worker's stdin reader, a GUI), but the time goes in loops deep
inside the engine: encoder batches, location-field tiles, photo batches. Each of those loops calls `check()`
once per step; the caller of a job wraps it in `cancel_scope(is_cancelled)`. Loops stay free of callbacks, and
a cancel lands within one step (well under a second on a CPU) wherever the job is.
"""

from __future__ import annotations

import contextlib
import threading
from typing import Callable, Iterator, Optional


class Cancelled(Exception):
    """Raised inside a job when its caller asked to cancel it; work already flushed is kept."""


_local = threading.local()


def check() -> None:
    """Raise Cancelled if the job running on this thread was cancelled; free when no scope is active."""
    fn: Optional[Callable[[], bool]] = getattr(_local, "is_cancelled", None)
    if fn is not None and fn():
        raise Cancelled()


@contextlib.contextmanager
def cancel_scope(is_cancelled: Callable[[], bool]) -> Iterator[None]:
    """Make `check()` on this thread consult `is_cancelled` for the duration of the block."""
    previous = getattr(_local, "is_cancelled", None)
    _local.is_cancelled = is_cancelled
    try:
        yield
    finally:
        _local.is_cancelled = previous
