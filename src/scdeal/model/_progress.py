"""Training progress: tqdm bars on a terminal, one log line per finished stage otherwise."""

from __future__ import annotations

import logging
import sys

log = logging.getLogger("scdeal.model._model")  # where fit's other messages go


class _Progress:
    """Training progress, silent unless enabled: one tqdm bar per stage when stderr is a
    terminal, otherwise (a log file, a pipe) one log line per finished stage of each fit
    (:meth:`stage_done`, called where a stage ends, so that members training side by side in
    threads do not interleave per-epoch lines), and no carriage-return frames."""

    def __init__(self, enabled: bool, *, terminal: bool | None = None):
        self.enabled, self.bar, self.stage = enabled, None, None
        self.terminal = _stderr_is_terminal() if terminal is None else terminal
        self.done = self.total = 0

    def __call__(self, stage: str, epoch: int, epochs: int) -> None:
        if not self.enabled:
            return
        if stage != self.stage:
            self.close()
            self.stage, self.done, self.total = stage, 0, epochs
            if self.terminal:
                from tqdm.auto import tqdm

                self.bar = tqdm(total=epochs, desc=stage, unit="epoch", leave=False)
        self.done += 1
        if self.bar is not None:
            self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        self.stage = None

    def stage_done(self, who: str, history, epochs: int, seconds: float) -> None:
        """One line for a finished stage (not on a terminal, where the bars show it), e.g.
        ``member 3/5: bulk_predictor stopped at epoch 14 of 100 (kept 4), 0.6 s``."""
        if not self.enabled or self.terminal or history is None:
            return
        run = len(history.train_loss) - (1 if history.stage == "transfer" else 0)
        ended = "stopped at" if run < epochs else "ran to"
        log.info("%s: %s %s epoch %d of %d (kept %d), %.1f s", who, history.stage, ended,
                 run, epochs, history.best_epoch, seconds)


def _stderr_is_terminal() -> bool:
    return bool(getattr(sys.stderr, "isatty", None) and sys.stderr.isatty())
