"""Progress of training: tqdm bars on a terminal only, one log line per finished stage of
each fit otherwise."""

from __future__ import annotations

import logging

from scdeal.model._progress import _Progress


def _drive(progress: _Progress) -> None:
    for stage, epochs, done in (("bulk_extractor", 100, 3), ("transfer", 50, 2)):
        for epoch in range(done):
            progress(stage, epoch, epochs)
    progress.close()


def test_not_a_terminal_writes_one_line_per_finished_stage_and_no_carriage_returns(caplog,
                                                                                   capsys):
    from scdeal.model._training import StageHistory

    progress = _Progress(True, terminal=False)
    with caplog.at_level(logging.INFO, logger="scdeal.model._model"):
        _drive(progress)  # epochs: no line (members in threads would interleave them)
        history = StageHistory("bulk_predictor", train_loss=[0.7] * 14, best_epoch=4)
        progress.stage_done("member 3/5", history, 100, 0.61)
        transfer = StageHistory("transfer", train_loss=[float("nan")] + [0.5] * 50,
                                best_epoch=0)
        progress.stage_done("member 3/5", transfer, 50, 2.0)
    assert [r.getMessage() for r in caplog.records] == [
        "member 3/5: bulk_predictor stopped at epoch 14 of 100 (kept 4), 0.6 s",
        "member 3/5: transfer ran to epoch 50 of 50 (kept 0), 2.0 s"]
    captured = capsys.readouterr()
    assert "\r" not in captured.err + captured.out


def test_a_fit_logs_one_line_per_stage_of_each_member(target_cells, bulk, caplog):
    from scdeal import ScDEAL

    tiny = dict(hidden_dims=(16,), latent_dim=4, predictor_dims=(4,), pretrain_epochs=2,
                predictor_epochs=2, transfer_epochs=2, n_models=3, member_threads=2)
    with caplog.at_level(logging.INFO, logger="scdeal"):
        ScDEAL(tiny, cache=False).fit(target_cells, "Gefitinib", bulk=bulk, gene_ids="entrez",
                                      progress=True)
    lines = [r.getMessage() for r in caplog.records if " epoch " in r.getMessage()]
    members = [line for line in lines if line.startswith("member ")]
    # predictor, cell extractor and transfer of each of 3 members; the shared extractors
    # (bulk, and cells for the clusters)
    assert len(members) == 9 and sorted(set(lines) - set(members)) == [
        line for line in sorted(lines) if line.startswith("shared: ")]
    assert [line.split(" ran")[0].split(" stopped")[0] for line in sorted(lines)
            if line.startswith("shared: ")] == ["shared: bulk_extractor",
                                                "shared: target_extractor"]
    for i in (1, 2, 3):
        assert sum(line.startswith(f"member {i}/3: ") for line in members) == 3


def test_terminal_draws_bars_and_disabled_is_silent(caplog, capsys):
    with caplog.at_level(logging.INFO, logger="scdeal.model._model"):
        _drive(_Progress(True, terminal=True))
        bars = capsys.readouterr().err
        _drive(_Progress(False, terminal=True))
    assert "bulk_extractor" in bars and "transfer" in bars
    assert not caplog.records and capsys.readouterr().err == ""
