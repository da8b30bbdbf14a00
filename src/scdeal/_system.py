"""Facts about the machine that several layers need."""

from __future__ import annotations

import os


def total_memory() -> int:
    """Bytes of memory this process may use: the machine's physical memory, or the limit of
    its control group (a container's) when that is lower.

    Examples
    --------
    >>> total_memory() > 2**20
    True
    """
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # not POSIX: assume a small laptop
        total = 8 * 2**30
    for limit_file in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            text = open(limit_file).read().strip()
        except OSError:
            continue
        if text.isdigit() and 0 < int(text) < total:
            total = int(text)
    return int(total)


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity where the OS tells it), at least 1.

    Examples
    --------
    >>> usable_cores() >= 1
    True
    """
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)
