"""Development benchmark of many drugs that needs no single-cell labels.

For each drug and seed: hold out ``--lines-per-class`` GDSC cell lines of each class, simulate
single cells from them (Poisson counts, library sizes, dropout and a per-gene platform bias:
SIMULATED cells, see :mod:`scdeal.data.simulate`), train scDEAL on the remaining lines and the
cells, and keep every member's P(sensitive) of every cell, before and after the transfer. The
cells carry their line's GDSC label, which is used ONLY to score; the label-free reliability
diagnostics (:mod:`scdeal.model.reliability`) are computed from the members' predictions and
the bulk test split, and the two are compared to see how often directions flip and whether the
rule catches them.

Drugs: ``--drugs`` of the GDSC2 drugs with at least 2 x lines-per-class + 10 labelled lines
per class, drawn with a
fixed seed (``--drug-seed``) before anything was run; nothing about them was chosen on results.

Each fit is written as one ``.npz`` (atomically) under ``OUT/fits/``; a rerun skips finished
fits, so an interrupted run resumes. ``--summarise`` (also run at the end) turns the fits into
``OUT/rows.csv``: one row per fit with AUROC (ensemble, per member, before transfer) and the
diagnostics.

``--cases FILE --data-dir DIR`` runs the same record on real labelled cases instead (e.g.
``benchmarks/cases.toml``: the default configuration, replicate s with configuration seed
5 s, as ``scdeal benchmark`` does), so the rule can be checked on real cells and on the
members as single models.

    python benchmarks/dev_drugs.py --out benchmarks/dev_drugs --drugs 30 --seeds 2 --jobs 2
    python benchmarks/dev_drugs.py --out benchmarks/dev_drugs_joint --drugs 30 --seeds 2 --joint
    python benchmarks/dev_drugs.py --out benchmarks/dev_shared --cases benchmarks/cases.toml \
        --data-dir ../shared/data --seeds 5 --jobs 2
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import numpy as np
import pandas as pd


def choose_drugs(bulk, n: int, seed: int, min_per_class: int) -> list[str]:
    eligible = []
    for drug in bulk.drugs("GDSC2"):
        try:
            labels = bulk.labels_for(drug, release="GDSC2")[0].labels.dropna()
        except Exception:  # noqa: BLE001 - a drug the waterfall cannot label
            continue
        if min((labels == 1).sum(), (labels == 0).sum()) >= min_per_class:
            eligible.append(drug)
    rng = np.random.default_rng(seed)
    return sorted(rng.choice(eligible, size=min(n, len(eligible)), replace=False).tolist())


def fit_key(drug: str, seed: int) -> str:
    safe = "".join(c if c.isalnum() else "_" for c in drug)
    return f"{safe}__s{seed}"


_BULK = None


def _bulk():
    global _BULK
    if _BULK is None:
        import logging

        from scdeal.data import load_gdsc

        logging.getLogger("scdeal").setLevel(logging.ERROR)
        _BULK = load_gdsc()
    return _BULK


def run_fit(drug: str, seed: int, args: dict, path: Path) -> str:
    """One drug x seed: hold out lines, simulate cells, fit, store members' predictions."""
    from scdeal.data.simulate import SimulationConfig, simulate_cells_from_lines
    from scdeal.model import ScDEAL, ScDealConfig

    started = time.perf_counter()
    bulk = _bulk()
    labels = bulk.labels_for(drug, release="GDSC2")[0].labels.dropna().astype(int)
    rng = np.random.default_rng([seed, 7])
    held = []
    for cls in (1, 0):
        lines = np.sort(labels.index[labels == cls].to_numpy())
        held += list(rng.choice(lines, args["lines_per_class"], replace=False))
    genes = bulk.expression.var().nlargest(args["n_genes"]).index
    target = simulate_cells_from_lines(
        bulk.expression.loc[held, genes], labels.loc[held],
        SimulationConfig(cells_per_line=args["cells_per_line"], gene_bias_sd=args["gene_bias_sd"],
                         seed=seed))
    overrides = dict(args["overrides"])
    n_models = int(overrides.get("n_models", ScDealConfig().n_models))
    # member_threads=1: the fits already run in parallel processes (same numbers either way).
    config = ScDealConfig(**{"member_threads": 1, **overrides, "seed": seed * n_models,
                             "release": "GDSC2"})
    block = None
    if args.get("joint_drugs"):
        # A joint screen of every development drug (scdeal.model.ScreenModel): the drugs in
        # joint_blocks blocks of similar GDSC response; this drug's block is fitted (the
        # blocks are independent fits), a JointScDEAL, or the per-drug ScDEAL when alone.
        from scdeal.model import ScreenModel

        block = next(b for b in ScreenModel(config).plan(args["joint_drugs"],
                                                          bulk.without_lines(held))
                     if bulk.resolve_drug(drug) in b)
    if block is not None and len(block) > 1:
        from scdeal.model import JointScDEAL

        model = JointScDEAL(config).fit(target, block, bulk=bulk.without_lines(held),
                                        gene_ids="symbol")
        column = model.drugs.index(bulk.resolve_drug(drug))
        X, names = model.target_matrix(target)
        post, pre, _ = model._predict_members(X)
        post, pre = post[:, :, column], pre[:, :, column]
        bulk_metrics = [{"auroc": row[column]}
                        for row in model.training["bulk_test_auroc_per_model"]]
        reliability = model.reliability[model.drugs[column]]
    else:
        model = ScDEAL(config).fit(target, drug, bulk=bulk.without_lines(held),
                                   gene_ids="symbol")
        X, names = model.target_matrix(target)
        post, pre, _ = model._predict_members(X)
        bulk_metrics = model.training["bulk_test_metrics_per_model"]
        reliability = model.reliability
    y = target.obs.loc[names, "sensitive"].astype(int).to_numpy()
    meta = {"drug": drug, "seed": seed, "model_seed": config.seed, "overrides": overrides,
            "joint": bool(args.get("joint_drugs")), "block": block,
            "bulk_test_metrics_per_model": bulk_metrics,
            "reliability": reliability,
            "wall_s": time.perf_counter() - started, **{k: v for k, v in args.items()
                                                         if k not in ("overrides", "joint_drugs")}}
    tmp = path.with_suffix(".tmp.npz")
    np.savez_compressed(tmp, post=post.astype(np.float32), pre=pre.astype(np.float32), y=y,
                        lines=target.obs.loc[names, "cell_line"].astype(str).to_numpy(),
                        meta=json.dumps(meta))
    os.replace(tmp, path)
    return f"{drug} seed {seed}: {meta['wall_s']:.0f} s"


def run_case_fit(case, seed: int, args: dict, path: Path) -> str:
    """One real case x seed: fit on the expression alone, store members' predictions."""
    from scdeal.benchmark.runner import load_case, model_seed
    from scdeal.model import ScDEAL, ScDealConfig

    started = time.perf_counter()
    item = load_case(case)
    config = ScDealConfig(**{"member_threads": 1, **args["overrides"]})
    config = config.replace(seed=model_seed(seed, config))
    bulk = _bulk()
    model = ScDEAL(config).fit(item.features.copy(), bulk.resolve_drug(case.drug), bulk=bulk,
                               gene_ids=case.gene_ids)
    X, names = model.target_matrix(item.features)
    post, pre, _ = model._predict_members(X)
    labels = item.labels.reindex(names).to_numpy()
    keep = ~np.isnan(labels)
    meta = {"drug": case.name, "seed": seed, "model_seed": config.seed,
            "overrides": args["overrides"],
            "bulk_test_metrics_per_model": model.training["bulk_test_metrics_per_model"],
            "reliability": model.reliability, "wall_s": time.perf_counter() - started}
    tmp = path.with_suffix(".tmp.npz")
    np.savez_compressed(tmp, post=post[:, keep].astype(np.float32),
                        pre=pre[:, keep].astype(np.float32), y=labels[keep].astype(int),
                        lines=np.array([]), meta=json.dumps(meta))
    os.replace(tmp, path)
    return f"{case.name} seed {seed}: {meta['wall_s']:.0f} s"


def summarise(out: Path) -> pd.DataFrame:
    from sklearn.metrics import roc_auc_score

    from scdeal.model.reliability import reliability_diagnostics

    rows = []
    for path in sorted((out / "fits").glob("*.npz")):
        if path.name.endswith(".tmp.npz"):
            continue
        with np.load(path, allow_pickle=False) as npz:
            post, pre, y = npz["post"], npz["pre"], npz["y"]
            meta = json.loads(str(npz["meta"]))
        bulk_auroc = [m["auroc"] for m in meta["bulk_test_metrics_per_model"]]
        # The diagnostics of the cells scored (for real cases: the labelled ones).
        diag = reliability_diagnostics(post, pre, bulk_auroc)
        row = {"drug": meta["drug"], "seed": meta["seed"], "n_cells": len(y),
               "auroc": roc_auc_score(y, post.mean(0)),
               "auroc_pretransfer": roc_auc_score(y, pre.mean(0)),
               "member_auroc_min": min(roc_auc_score(y, p) for p in post),
               "member_auroc_max": max(roc_auc_score(y, p) for p in post),
               "wall_s": meta["wall_s"], "block_size": len(meta.get("block") or [meta["drug"]])}
        row.update({k: v for k, v in diag.items() if not isinstance(v, dict | list)})
        rows.append(row)
    table = pd.DataFrame(rows)
    table.to_csv(out / "rows.csv", index=False, float_format="%.4f")
    return table


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--drugs", type=int, default=30)
    parser.add_argument("--drug-seed", type=int, default=2026)
    parser.add_argument("--seeds", type=int, default=2)
    # 20 lines a class: the cells' AUROC is then an AUROC over 40 lines, not a handful
    parser.add_argument("--lines-per-class", type=int, default=20)
    parser.add_argument("--cells-per-line", type=int, default=8)
    parser.add_argument("--n-genes", type=int, default=1500)
    parser.add_argument("--gene-bias-sd", type=float, default=0.5)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=JSON",
                        help="a ScDealConfig override, e.g. --set n_models=9")
    parser.add_argument("--joint", action="store_true",
                        help="score each drug's output of a joint screen of all the drugs "
                             "(scdeal.model.ScreenModel: joint_blocks blocks, this drug's "
                             "block fitted) instead of its own per-drug fit")
    parser.add_argument("--cases", type=Path, help="real labelled cases (TOML) instead of drugs")
    parser.add_argument("--data-dir", type=Path, help="folder the case file's targets are in")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--summarise", action="store_true", help="only rebuild rows.csv")
    args = parser.parse_args(argv)
    (args.out / "fits").mkdir(parents=True, exist_ok=True)
    if not args.summarise:
        overrides = {k: json.loads(v) for k, v in (s.split("=", 1) for s in args.set)}
        params = {"lines_per_class": args.lines_per_class, "cells_per_line": args.cells_per_line,
                  "n_genes": args.n_genes, "gene_bias_sd": args.gene_bias_sd,
                  "overrides": overrides}
        if args.cases:
            from scdeal.benchmark import read_cases

            units = {c.name: c for c in read_cases(args.cases, data_dir=args.data_dir)}
            worker = run_case_fit
        else:
            # enough lines to hold out and still train on 10+ per class after the split
            units = {d: d for d in choose_drugs(_bulk(), args.drugs, args.drug_seed,
                                                2 * args.lines_per_class + 10)}
            (args.out / "drugs.txt").write_text("\n".join(units) + "\n")
            worker = run_fit
            if args.joint:
                params["joint_drugs"] = list(units)
        todo = [(name, s) for s in range(args.seeds) for name in units
                if not (args.out / "fits" / f"{fit_key(name, s)}.npz").exists()]
        print(f"{len(todo)} fits to run ({len(units)} x {args.seeds} seeds)", flush=True)
        import multiprocessing

        from scdeal.benchmark.runner import _exit_with_parent  # workers end with this script

        with ProcessPoolExecutor(args.jobs, mp_context=multiprocessing.get_context("spawn"),
                                 initializer=_exit_with_parent) as ex:
            futures = [ex.submit(worker, units[name], s, params,
                                 args.out / "fits" / f"{fit_key(name, s)}.npz")
                       for name, s in todo]
            for i, fut in enumerate(as_completed(futures), 1):
                try:
                    print(f"[{i}/{len(todo)}] {fut.result()}", flush=True)
                except Exception as exc:  # noqa: BLE001 - report and go on
                    print(f"[{i}/{len(todo)}] failed: {type(exc).__name__}: {exc}", flush=True)
    table = summarise(args.out)
    print(table.describe().T.to_string(), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
