"""Training progress: tqdm bars on a terminal, one log line per stage otherwise."""

from __future__ import annotations

import logging
import sys

log = logging.getLogger("scdeal.model._model")  # where fit's other messages go


class _Progress:
    """Training progress, silent unless enabled: one tqdm bar per stage when stderr is a
    terminal, otherwise (a log file, a pipe) one log line per finished stage, so that logs
    hold no carriage-return frames."""

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
        elif self.enabled and self.stage is not None and self.done:
            log.info("%s: %d of at most %d epochs", self.stage, self.done, self.total)
        self.stage = None


def _stderr_is_terminal() -> bool:
    return bool(getattr(sys.stderr, "isatty", None) and sys.stderr.isatty())
