"""Progress of training: tqdm bars on a terminal only, one log line per stage otherwise."""

from __future__ import annotations

import logging

from scdeal.model._progress import _Progress


def _drive(progress: _Progress) -> None:
    for stage, epochs, done in (("bulk_extractor", 100, 3), ("transfer", 50, 2)):
        for epoch in range(done):
            progress(stage, epoch, epochs)
    progress.close()


def test_not_a_terminal_writes_one_line_per_stage_and_no_carriage_returns(caplog, capsys):
    with caplog.at_level(logging.INFO, logger="scdeal.model._model"):
        _drive(_Progress(True, terminal=False))
    assert [r.getMessage() for r in caplog.records] == [
        "bulk_extractor: 3 of at most 100 epochs", "transfer: 2 of at most 50 epochs"]
    captured = capsys.readouterr()
    assert "\r" not in captured.err + captured.out


def test_terminal_draws_bars_and_disabled_is_silent(caplog, capsys):
    with caplog.at_level(logging.INFO, logger="scdeal.model._model"):
        _drive(_Progress(True, terminal=True))
        bars = capsys.readouterr().err
        _drive(_Progress(False, terminal=True))
    assert "bulk_extractor" in bars and "transfer" in bars
    assert not caplog.records and capsys.readouterr().err == ""
