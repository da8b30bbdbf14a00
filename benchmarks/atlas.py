"""Atlas-scale benchmark (not a test): ``scdeal run --backed`` on 30,000, 300,000 and
1,000,000 simulated count cells x 2,000 genes, each in a fresh process: wall time, peak memory
(RSS of the process) and the time of each stage from ``run.json``. ``--mode plain`` runs the
command without the flag (as a user types it): the file's size then chooses how it is read
(``scdeal.data.backed.reads_backed``), recorded per run with the line the command printed.

The cells are SIMULATED (``scdeal.data.simulate``): Poisson counts on the 2,000 GDSC genes that
vary most over the lines, drawn from 24 real GDSC lines (12 sensitive, 12 resistant to
erlotinib), library sizes log-normal around 1,500 UMIs, written to ``.h5ad`` (CSR) a block
of cells at a time. Every run has an empty model cache. Results: benchmarks/atlas/results.json.

Usage (from the repository root):
    SCDEAL_DATA_DIR=../shared/data/pypi:../shared/data/gdsc_meta \\
        python benchmarks/atlas.py --sizes 30000 300000 1000000 --work /tmp/scdeal_atlas
    python benchmarks/atlas.py --mode plain --sizes 30000 300000 --repeats 2 \\
        --work /tmp/scdeal_atlas --out benchmarks/atlas_plain
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import time
from pathlib import Path

import numpy as np
from speed import child  # same folder: a snippet in a fresh process, with its peak memory

HERE = Path(__file__).resolve().parent
N_GENES, LINES_PER_CLASS, BLOCK = 2000, 12, 50_000


def simulate(path: Path, n_cells: int, seed: int = 0) -> dict:
    """Write ``n_cells`` simulated cells to ``path`` (.h5ad), a block at a time."""
    import anndata as ad
    import h5py
    import pandas as pd
    import scipy.sparse as sp
    from anndata.io import sparse_dataset, write_elem

    from scdeal.data import load_gdsc
    from scdeal.data.simulate import SimulationConfig, simulate_cells_from_lines

    rng = np.random.default_rng(seed)
    bulk = load_gdsc()
    labels = bulk.labels_for("Erlotinib")[0].labels.dropna().astype(int)
    held = [line for cls in (1, 0) for line in
            rng.choice(labels.index[labels == cls].to_numpy(), LINES_PER_CLASS, replace=False)]
    genes = bulk.expression.var().nlargest(N_GENES).index
    expression = bulk.expression.loc[held, genes]
    names, lines, nnz = [], [], 0
    for b, start in enumerate(range(0, n_cells, BLOCK)):
        n = min(BLOCK, n_cells - start)
        # One simulated line per block of cells, then the cells of the block shuffled.
        per_line = int(np.ceil(n / len(held)))
        cells = simulate_cells_from_lines(
            expression, labels.loc[held],
            SimulationConfig(cells_per_line=per_line, mean_library_size=1500,
                             library_size_sd=0.5, seed=seed + b))
        keep = np.sort(rng.permutation(cells.n_obs)[:n])
        X = sp.csr_matrix(cells.X[keep], dtype=np.float32)
        nnz += X.nnz
        lines += list(cells.obs["cell_line"].to_numpy()[keep])
        names += [f"cell{start + i:07d}" for i in range(n)]
        if start == 0:
            ad.AnnData(X, var=pd.DataFrame(index=genes.astype(str))).write_h5ad(path)
        else:
            with h5py.File(path, "a") as handle:
                sparse_dataset(handle["X"]).append(X)
    obs = pd.DataFrame({"cell_line": pd.Categorical(lines),
                        "sensitive": labels.reindex(lines).to_numpy()}, index=names)
    with h5py.File(path, "a") as handle:
        del handle["obs"]
        write_elem(handle, "obs", obs)
    return {"cells": n_cells, "genes": N_GENES, "nonzero_fraction": nnz / (n_cells * N_GENES),
            "file_mb": path.stat().st_size / 1e6}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[30_000, 300_000, 1_000_000])
    parser.add_argument("--work", type=Path, default=Path("/tmp/scdeal_atlas"))
    parser.add_argument("--out", type=Path, default=HERE / "atlas")
    parser.add_argument("--mode", choices=["backed", "plain"], default="backed",
                        help="backed: scdeal run --backed; plain: no flag, the size chooses")
    parser.add_argument("--repeats", type=int, default=1,
                        help="runs per size, the sizes in turn (medians and their ratio)")
    args = parser.parse_args()
    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    from scdeal._system import total_memory

    results = {"date": time.strftime("%Y-%m-%d %H:%M"), "mode": args.mode,
               "machine_memory_gb": total_memory() / 1e9, "runs": {}}
    cache = work / "cache"
    env = {**os.environ, "SCDEAL_CACHE_DIR": str(cache), "NUMBA_CACHE_DIR": str(work / "numba")}
    tables = {}
    for n in args.sizes:
        tables[n] = work / f"cells_{n}.h5ad"
        if not tables[n].is_file():  # simulated in a child: its memory is not the run's
            made = child(f"import sys; sys.path.insert(0, {str(HERE)!r})\n"
                         "from pathlib import Path\nfrom atlas import simulate\n"
                         f"RESULT = simulate(Path({str(tables[n])!r}), {n})\n", env=env)
            print("simulated", json.dumps(made), flush=True)
    # numba compiles the neighbour graph's kernels once per installation (its disk cache):
    # done here, untimed, so that no timed run pays it.
    child("import numpy as np, anndata as ad\nfrom scdeal.data.neighbors import neighbors\n"
          "neighbors(ad.AnnData(np.random.default_rng(0).random((300, 8), dtype='float32')),"
          " n_neighbors=15, use_rep='X')\n", env=env)
    for repeat in range(args.repeats):  # the sizes in turn, so that load drifts touch all
        for n in args.sizes:
            row = _run(tables[n], work / f"run_{n}", cache, env, args.mode)
            results["runs"].setdefault(str(n), []).append(row)
            print(n, repeat, json.dumps(row), flush=True)
    runs = results["runs"]
    if "30000" in runs and "300000" in runs:
        def median(n):
            return statistics.median(r["wall_s"] for r in runs[str(n)])

        results["median_wall_s"] = {n: median(n) for n in args.sizes}
        results["ratio_300k_to_30k"] = median(300000) / median(30000)
        results["ratio_per_repeat"] = [b["wall_s"] / a["wall_s"] for a, b in
                                       zip(runs["30000"], runs["300000"], strict=True)]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(results, indent=2))
    print(json.dumps({k: v for k, v in results.items() if k != "runs"}))


def _run(table: Path, out: Path, cache: Path, env: dict, mode: str) -> dict:
    """One ``scdeal run`` on ``table`` in a fresh process with an empty model cache."""
    shutil.rmtree(out, ignore_errors=True)
    shutil.rmtree(cache / "models", ignore_errors=True)
    argv = ["run", "--drug", "Erlotinib", "--target", str(table), "--gene-ids", "symbol",
            *(["--backed"] if mode == "backed" else []), "--out", str(out), "--quiet"]
    # The command's own lines (the notice of a file read in blocks) are kept.
    measured = child("import contextlib, io\nfrom scdeal.cli import main\n"
                     "printed = io.StringIO()\n"
                     "with contextlib.redirect_stdout(printed):\n"
                     f"    assert main({argv!r}) == 0\n"
                     "RESULT = {'printed': printed.getvalue().splitlines()}\n", env=env)
    run_json = json.loads((out / "run.json").read_text())
    import anndata as ad

    predictions = ad.read_h5ad(out / "predictions.h5ad", backed="r")
    try:
        return {**measured, "read_backed": bool(run_json.get("backed")),
                "timings_s": run_json["timings_s"],
                "n_cells_trained": run_json["training"]["n_target_cells"],
                "n_genes": run_json["training"]["n_target_genes"],
                "cells_predicted": int(predictions.obs["sens_preds"].notna().sum()),
                "cells_in_file": int(predictions.n_obs)}
    finally:
        predictions.file.close()


if __name__ == "__main__":
    main()
