"""One fit or prediction per process at a time.

Training and inference touch state that belongs to the whole process: torch's global random
generator (a member's predictor is initialised from it after seeding it, and so is the shared
cell extractor), torch's thread count (set for every stage) and, in a drug screen's task, the
level of the ``scdeal`` logger. Two fits in two threads of one process (a Dask worker started
with several threads runs several tasks at once) would interleave those, and each one's
numbers would depend on what else ran beside it. Every public entry point that trains or
predicts holds :data:`PROCESS_LOCK` while it runs, so it is the sole user of that state: the
same seed gives the same numbers whatever the process runs beside it. Re-entrant, so an entry
point may call another (``fit`` predicts the cells for its reliability diagnostics).

Threads that a fit starts itself (its ensemble members) run under the lock their fit holds;
they never take it.
"""

from __future__ import annotations

import threading

#: Held by ``ScDEAL.fit``, ``pretrain``, ``predict`` and ``predict_file``, and by a drug
#: screen's task for the whole of its fit and prediction.
PROCESS_LOCK = threading.RLock()
