"""Speed and memory benchmark (not a test). Writes benchmarks/speed_results.json and prints a
markdown summary that benchmarks/README.md quotes.

Measures, with fixed seeds and medians over repeats:
1. ``scdeal run`` on each real SCAD case: wall time per stage (from run.json) and peak RSS of
   the whole process (each run in a fresh subprocess);
2. chunked prediction of synthetic targets (10k, 100k, 1M cells x 2,000 genes, sparse counts)
   read from backed .h5ad files: cells per second and peak RSS of the predicting process;
3. training time per epoch of the stages that see the target cells, for 1k, 10k, 100k cells;
4. ``fast``: cold and warm ``scdeal run`` against an earlier commit (default 13e464e, the
   version before the drug-independent cache) in the same script run: per case and repeat,
   in turn, (a) the earlier commit, (b) this version with an empty scdeal cache ("cold"),
   (c) this version on the same cells with another drug, the cache filled by (b) ("warm").
   Whole-process wall times (interpreter start to exit). numba's on-disk cache of UMAP's
   kernels is filled once before (a compile that happens once per installation); the first
   repeat also times a cold run with an empty numba cache ("cold, first run after install").

Usage (from the repository root; needs the GDSC wheel, e.g. SCDEAL_DATA_DIR=../shared/data/pypi):
    python benchmarks/speed.py --data-dir ../shared/data --work /tmp/scdeal_speed [--quick]
    python benchmarks/speed.py --data-dir ../shared/data --parts fast,run --repeats 2
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
CASES = {"Gefitinib": "Gefitinib", "Afatinib": "Afatinib", "PLX4720": "PLX4720"}
N_GENES = 2000

# A child process that runs a snippet and reports its own peak RSS (MB) as the last line.
CHILD = """
import json, resource, sys, time
t0 = time.perf_counter()
exec(compile(sys.argv[1], "<bench>", "exec"))
print(json.dumps({"wall_s": time.perf_counter() - t0,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  **globals().get("RESULT", {})}))
"""


def child(code: str, *args: str, env: dict | None = None) -> dict:
    proc = subprocess.run([sys.executable, "-c", CHILD, code, *args], capture_output=True,
                          text=True, env=env or {**os.environ})
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-3000:])
    return json.loads(proc.stdout.strip().splitlines()[-1])


def timed_run(args: list[str], env: dict) -> float:
    """Whole-process wall time of ``python -m scdeal ARGS`` (must succeed)."""
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "scdeal", *args], capture_output=True,
                          text=True, env=env)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-3000:])
    return wall


# Per case: the case's drug (cold run) and another drug on the same cells (warm run).
OTHER_DRUG = {"Gefitinib": "Erlotinib", "Afatinib": "Gefitinib", "PLX4720": "Dabrafenib"}


def bench_fast(data_dir: Path, work: Path, repeats: int, baseline: str) -> dict:
    import shutil

    base_src = work / f"src_{baseline}"
    if not base_src.is_dir():
        base_src.mkdir(parents=True)
        archive = subprocess.run(["git", "-C", str(HERE.parent), "archive", baseline, "src"],
                                 capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", str(base_src)], input=archive, check=True)
    env = {**os.environ, "NUMBA_CACHE_DIR": str(work / "numba")}
    base_env = {**env, "PYTHONPATH": str(base_src / "src")}
    # Fill numba's cache of UMAP's kernels (once per installation in normal use).
    child("from scdeal.data.neighbors import neighbors\n"
          "import numpy as np, anndata as ad\n"
          "a = ad.AnnData(np.zeros((30, 1), np.float32))\n"
          "a.obsm['e'] = np.random.default_rng(0).normal(size=(30, 3))\n"
          "neighbors(a, use_rep='e', n_neighbors=5)\n")
    out = {"baseline": baseline}
    for case, drug in CASES.items():
        target = str(data_dir / "scad" / f"Target_expr_resp_z.{case}_tp4k.tsv")

        def args(d, run_dir, target=target):
            return ["run", "--drug", d, "--target", target, "--gene-ids", "entrez", "--seed",
                    "0", "--out", str(run_dir), "--quiet"]

        rows = []
        # One cache folder: the GDSC files unpacked there once serve every run; only the
        # stored models are removed between runs.
        cache = work / "cache"
        models = cache / "models"
        run_env = {**env, "SCDEAL_CACHE_DIR": str(cache)}
        for r in range(repeats):
            shutil.rmtree(models, ignore_errors=True)
            row = {"baseline": timed_run(args(drug, work / "fast_base"),
                                         {**base_env, "SCDEAL_CACHE_DIR": str(cache)})}
            shutil.rmtree(models, ignore_errors=True)
            row["cold"] = timed_run(args(drug, work / "fast_cold"), run_env)
            row["warm_other_drug"] = timed_run(args(OTHER_DRUG[case], work / "fast_warm"),
                                               run_env)
            run = json.loads((work / "fast_warm" / "run.json").read_text())
            assert run["training"]["cache"] == {"bulk_extractor": "hit",
                                                "target_extractor": "hit"}, run["training"]
            if r == 0:
                jit = work / "numba_empty"
                shutil.rmtree(jit, ignore_errors=True)
                shutil.rmtree(models, ignore_errors=True)
                row["cold_first_run_after_install"] = timed_run(
                    args(drug, work / "fast_cold"), {**run_env, "NUMBA_CACHE_DIR": str(jit)})
            rows.append(row)
            print(f"fast {case} repeat {r}: " + ", ".join(f"{k} {v:.1f} s" for k, v in row.items()),
                  flush=True)
        med = {k: statistics.median(row[k] for row in rows if k in row) for k in rows[0]}
        med["cold_ratio"] = med["cold"] / med["baseline"]
        med["warm_ratio"] = med["warm_other_drug"] / med["baseline"]
        med["warm_drug"] = OTHER_DRUG[case]
        med["repeats"] = rows
        out[case] = med
        print(f"fast {case}: baseline {med['baseline']:.1f} s, cold {med['cold']:.1f} s "
              f"({med['cold_ratio']:.2f}x), warm {med['warm_other_drug']:.1f} s "
              f"({med['warm_ratio']:.2f}x)", flush=True)
    return out


def machine() -> dict:
    mem_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1e9
    import torch

    return {"cores": os.cpu_count(), "memory_gb": round(mem_gb, 1),
            "cpu": platform.processor() or platform.machine(), "python": platform.python_version(),
            "torch": torch.__version__, "torch_threads": torch.get_num_threads()}


def bench_runs(data_dir: Path, work: Path, repeats: int) -> dict:
    """Cold runs: the stored pre-training is removed before each (see ``fast`` for warm)."""
    import shutil

    out = {}
    cache = work / "cache"
    for case, drug in CASES.items():
        target = data_dir / "scad" / f"Target_expr_resp_z.{case}_tp4k.tsv"
        rows = []
        for r in range(repeats):
            run_dir = work / f"run_{case}_{r}"
            code = ("from scdeal.cli import main\n"
                    f"rc = main(['run', '--drug', {drug!r}, '--target', {str(target)!r}, "
                    f"'--label-key', 'response', '--gene-ids', 'entrez', '--seed', '0', "
                    f"'--out', {str(run_dir)!r}, '--quiet'])\n"
                    "assert rc == 0\n")
            shutil.rmtree(cache / "models", ignore_errors=True)
            res = child(code, env={**os.environ, "SCDEAL_CACHE_DIR": str(cache)})
            timings = json.loads((run_dir / "run.json").read_text())["timings_s"]
            rows.append({**timings, "process_wall_s": res["wall_s"],
                         "peak_rss_mb": res["peak_rss_mb"]})
        keys = rows[0].keys()
        out[case] = {k: statistics.median(r[k] for r in rows) for k in keys}
        print(f"run {case}: total {out[case]['total']:.1f} s, peak {out[case]['peak_rss_mb']:.0f} MB",
              flush=True)
    return out


TRAIN_MODEL = """
import numpy as np, pandas as pd, sys
from scdeal.data import load_gdsc
from scdeal.data.simulate import SimulationConfig, simulate_cells_from_lines
from scdeal.model import ScDEAL, ScDealConfig
bulk = load_gdsc()
genes = list(bulk.expression.columns[:{n_genes}])
small = bulk.expression[genes]
small = small.sub(small.mean(1), axis=0).div(small.std(1), axis=0)
labels = bulk.labels_for("Gefitinib")[0].labels.dropna().astype(int)
lines = labels.index[:40]
target = simulate_cells_from_lines(small.loc[lines], labels.loc[lines], SimulationConfig(cells_per_line=25))
model = ScDEAL(ScDealConfig(seed=0))
model.fit(target, "Gefitinib", bulk=bulk, gene_ids="symbol")
model.save(sys.argv[2], overwrite=True)
pd.Series(genes).to_csv(sys.argv[3], index=False, header=False)
"""

WRITE_TARGET = """
import numpy as np, pandas as pd, scipy.sparse as sp, anndata as ad, h5py, sys
from anndata.io import sparse_dataset, write_elem
n, path = int(sys.argv[2]), sys.argv[3]
genes = pd.read_csv(sys.argv[4], header=None)[0].tolist()
rng = np.random.default_rng(0)
rates = rng.gamma(0.3, 2.0, size=len(genes))
def block(m):
    lib = rng.lognormal(np.log(600), 0.3, size=m)
    p = rates / rates.sum()
    counts = rng.poisson(lib[:, None] * p[None, :]).astype(np.float32)
    return sp.csr_matrix(counts)
step = 50000
first = block(min(step, n))
with h5py.File(path, "w") as f:
    write_elem(f, "X", first)
    write_elem(f, "obs", pd.DataFrame(index=[f"c{i}" for i in range(n)]))
    write_elem(f, "var", pd.DataFrame(index=genes))
    X = sparse_dataset(f["X"])
    done = first.shape[0]
    while done < n:
        m = min(step, n - done)
        X.append(block(m))
        done += m
    f.attrs["encoding-type"] = "anndata"
    f.attrs["encoding-version"] = "0.1.0"
RESULT = {"nnz_per_cell": float(first.nnz / first.shape[0])}
"""

PREDICT = """
import sys, time
from scdeal.model import ScDEAL
model = ScDEAL.load(sys.argv[2])
t = time.perf_counter()
out = model.predict_file(sys.argv[3], chunk_size=int(sys.argv[4]))
RESULT = {"predict_s": time.perf_counter() - t, "n_cells": out.n_obs,
          "cells_per_s": out.n_obs / (time.perf_counter() - t)}
"""

EPOCH_TIME = """
import json, sys
import numpy as np
from scdeal.data import load_gdsc
from scdeal.data.simulate import SimulationConfig, simulate_cells_from_lines
from scdeal.model import ScDEAL, ScDealConfig
n_cells = int(sys.argv[2])
bulk = load_gdsc()
labels = bulk.labels_for("Gefitinib")[0].labels.dropna().astype(int)
lines = labels.index[:40]
cfg = SimulationConfig(cells_per_line=max(1, n_cells // len(lines)))
# 2,000 genes, as in the prediction benchmark: all ~17,000 shared genes for 100k cells would
# be a dense 6.8 GB matrix before any copy, more than a laptop should be asked for.
genes = list(bulk.expression.columns[:{n_genes}])
target = simulate_cells_from_lines(bulk.expression.loc[lines, genes], labels.loc[lines], cfg)
epochs = 3
model = ScDEAL(ScDealConfig(seed=0, n_models=1, pretrain_epochs=epochs, predictor_epochs=epochs,
                            transfer_epochs=epochs, patience=1000))
model.fit(target, "Gefitinib", bulk=bulk, gene_ids="symbol")
t = model.training["timings_s"]
RESULT = {"n_cells": target.n_obs, "n_genes": len(model.target_genes),
          "target_extractor_s_per_epoch": t["target_extractor"] / epochs,
          "transfer_s_per_epoch": t["transfer"] / (epochs + 1),
          "clustering_s": t.get("clusters", 0.0)}
"""


def bench_predict(work: Path, sizes: list[int], repeats: int, chunk: int) -> dict:
    model_dir, genes = work / "speed_model", work / "genes.txt"
    child(TRAIN_MODEL.replace("{n_genes}", str(N_GENES)), str(model_dir), str(genes))
    out = {}
    for n in sizes:
        path = work / f"synthetic_{n}.h5ad"
        if not path.exists():
            info = child(WRITE_TARGET, str(n), str(path), str(genes))
            print(f"wrote {path} ({path.stat().st_size / 1e6:.0f} MB, "
                  f"{info['nnz_per_cell']:.0f} non-zeros per cell)", flush=True)
        rows = [child(PREDICT, str(model_dir), str(path), str(chunk)) for _ in range(repeats)]
        out[str(n)] = {k: statistics.median(r[k] for r in rows)
                       for k in ("predict_s", "cells_per_s", "peak_rss_mb", "wall_s")}
        out[str(n)]["file_mb"] = path.stat().st_size / 1e6
        print(f"predict {n}: {out[str(n)]['cells_per_s']:.0f} cells/s, "
              f"peak {out[str(n)]['peak_rss_mb']:.0f} MB", flush=True)
    return out


def bench_epochs(sizes: list[int], repeats: int) -> dict:
    out = {}
    for n in sizes:
        rows = [child(EPOCH_TIME.replace("{n_genes}", str(N_GENES)), str(n))
                for _ in range(repeats)]
        out[str(n)] = {k: statistics.median(r[k] for r in rows) for k in rows[0]}
        print(f"epochs {n}: transfer {out[str(n)]['transfer_s_per_epoch']:.2f} s/epoch, "
              f"target extractor {out[str(n)]['target_extractor_s_per_epoch']:.2f} s/epoch",
              flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, required=True, help="folder with scad/")
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "scdeal_speed")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="small sizes, 1 repeat (smoke run)")
    parser.add_argument("--out", type=Path, default=HERE / "speed_results.json")
    parser.add_argument("--baseline", default="13e464e",
                        help="commit the 'fast' part compares with (default: 13e464e)")
    parser.add_argument("--parts", default="run,predict,epochs,fast",
                        help="comma-separated parts to (re)run; the others are kept from --out")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    repeats = 1 if args.quick else args.repeats
    predict_sizes = [10_000] if args.quick else [10_000, 100_000, 1_000_000]
    epoch_sizes = [1_000] if args.quick else [1_000, 10_000, 100_000]
    parts = {
        "run": lambda: bench_runs(args.data_dir, args.work, repeats),
        "predict": lambda: bench_predict(args.work, predict_sizes, repeats, chunk=20_000),
        "epochs": lambda: bench_epochs(epoch_sizes, repeats),
        "fast": lambda: bench_fast(args.data_dir, args.work, repeats, args.baseline),
    }
    wanted = [p.strip() for p in args.parts.split(",") if p.strip()]
    unknown = set(wanted) - set(parts)
    if unknown:
        parser.error(f"unknown parts {sorted(unknown)}; choose from {', '.join(parts)}")
    results = json.loads(args.out.read_text()) if args.out.exists() else {}
    for name in wanted:  # each part is saved as soon as it is done
        results.update({"machine": machine(), "repeats": repeats,
                        "dates": {**results.get("dates", {}), name: time.strftime("%Y-%m-%d")},
                        name: parts[name]()})
        tmp = args.out.with_suffix(".tmp")
        tmp.write_text(json.dumps(results, indent=2))
        tmp.replace(args.out)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
