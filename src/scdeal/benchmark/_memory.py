"""Peak memory of a block of code, sampled from the process's resident set size (RSS).

``resource.getrusage`` only knows the peak over the whole process life, so a later, smaller
step would inherit an earlier step's peak. Instead a background thread reads the current RSS
(``/proc/self/statm``) every few milliseconds while the block runs. RSS counts everything the
process holds: numpy and torch buffers, Python objects and the threads of BLAS/OpenMP/joblib.
The block's figure is its peak minus the RSS when it began: memory held from before (the
loaded GDSC data, imported libraries) is not charged to it. Before each block freed memory is
handed back to the system (``gc.collect`` and glibc's ``malloc_trim``) so that memory cached
by the allocator from earlier blocks does not hide this block's needs. Spikes shorter than the
sampling interval can be missed. Where ``/proc`` does not exist (macOS, Windows) the figures
are NaN.
"""

from __future__ import annotations

import ctypes
import gc
import os
import threading
from pathlib import Path

_STATM = Path("/proc/self/statm")
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def current_rss_mb() -> float:
    """Resident memory of this process now, in MiB (NaN where it cannot be read)."""
    try:
        pages = int(_STATM.read_text().split()[1])
    except (OSError, ValueError, IndexError):
        return float("nan")
    return pages * _PAGE / 2**20


def release_free_memory() -> None:
    """Collect garbage and return the allocator's free pages to the system (glibc only)."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


class PeakMemory:
    """Context manager measuring the peak RSS of the process while its block runs.

    Attributes
    ----------
    start_mb
        RSS when the block began.
    peak_mb
        Highest RSS seen during the block.
    increase_mb
        ``peak_mb - start_mb``: what the block needed beyond what was already held.

    All three are set when the block ends.

    Examples
    --------
    Not run here: the sampling thread can miss a short peak on a busy machine.

    >>> import numpy as np
    >>> with PeakMemory() as mem:           # doctest: +SKIP
    ...     block = np.ones((4096, 4096))   # 128 MiB
    >>> mem.increase_mb > 100               # doctest: +SKIP
    True
    """

    def __init__(self, interval_s: float = 0.005):
        self.interval_s = interval_s
        self.start_mb = self.peak_mb = float("nan")
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _sample(self) -> None:
        while not self._stop.wait(self.interval_s):
            rss = current_rss_mb()
            if rss > self.peak_mb:
                self.peak_mb = rss

    def __enter__(self) -> PeakMemory:
        release_free_memory()
        self.start_mb = self.peak_mb = current_rss_mb()
        if self.start_mb == self.start_mb:  # not NaN: sampling works here
            self._stop.clear()
            self._thread = threading.Thread(target=self._sample, name="peak-memory",
                                            daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self.peak_mb = max(self.peak_mb, current_rss_mb())

    @property
    def increase_mb(self) -> float:
        return self.peak_mb - self.start_mb
