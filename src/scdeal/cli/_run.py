"""``scdeal run``: train on GDSC + a target file, predict it, write a run folder."""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

from .._io import atomic_dir
from .._types import IdType, choices

log = logging.getLogger(__name__)

GENE_ID_CHOICES = list(choices(IdType))


def add_target_arguments(parser: argparse.ArgumentParser, *, labels: bool = True) -> None:
    """Options that say how to read a target file (shared by run, predict, benchmark...)."""
    parser.add_argument("--target", required=True,
                        help="single-cell file: .h5ad, 10x .h5 or folder, .csv/.tsv (cells as rows)")
    if labels:
        parser.add_argument("--label-key", help="obs column (or table column) with true labels; "
                            "used only to score the predictions")
        parser.add_argument("--label-map", help="how label values map to 1/0, e.g. "
                            "'sensitive=1,resistant=0' (default: 0/1 or sensitive/resistant)")
    parser.add_argument("--gene-ids", choices=GENE_ID_CHOICES, default="auto",
                        help="identifier type of the target's genes (default: detect)")
    parser.add_argument("--sep", help="column separator of a .txt table (default: tab or comma, "
                        "whichever its header line holds)")
    parser.add_argument("--orientation", choices=["cells-by-genes", "genes-by-cells"],
                        default="cells-by-genes", help="which axis of a text table holds cells")


def read_target_from_args(args: argparse.Namespace):
    from ..data.singlecell import read_target

    labelled_key = getattr(args, "labelled_key", None)
    label_key = getattr(args, "label_key", None)
    extra = [labelled_key] if labelled_key and labelled_key != label_key else []
    return read_target(args.target, sep=args.sep, label_key=label_key, obs_columns=extra,
                       orientation=args.orientation.replace("-", "_"))


SCORED_UNLABELLED = "cells not in --labelled-key"


def check_label_columns(args: argparse.Namespace) -> None:
    """--label-key scores, --labelled-key trains: the same column would leave nothing to
    score (every cell labelled in it trains the model)."""
    from ..errors import ScdealError

    if args.labelled_key and args.label_key == args.labelled_key:
        raise ScdealError(f"--label-key and --labelled-key both name {args.label_key!r}: every "
                          "cell labelled there trains the model, so none is left to score; "
                          "give --label-key a column with the labels of other cells, or drop it")


def label_map_from_args(args: argparse.Namespace):
    if not getattr(args, "label_map", None):
        return None
    from ..data.labels import parse_label_map

    return parse_label_map(args.label_map)


def config_from_args(args: argparse.Namespace):
    from ..model import ScDealConfig, preset

    if args.config and args.preset:
        from ..errors import ScdealError

        raise ScdealError("give either --config or --preset, not both")
    if args.config:
        config = ScDealConfig.from_file(args.config)
    else:
        config = preset(args.preset or "default")
    changes = {"device": args.device}
    if args.seed is not None:
        changes["seed"] = args.seed
    if getattr(args, "release", None) is not None:
        changes["release"] = args.release
    return config.replace(**changes)


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "run", help="train on GDSC and a target, predict every cell, write a run folder",
        description="Train scDEAL for one drug on GDSC cell lines and the target cells, "
                    "predict every cell, and write DIR/predictions.h5ad, DIR/model/, "
                    "DIR/run.json and (with --label-key) DIR/metrics.json.")
    parser.add_argument("--drug", required=True, help="drug name (GDSC spelling or close to it)")
    add_target_arguments(parser)
    parser.add_argument("--labelled-key", metavar="COL",
                        help="obs column (or table column) with the known response of a few "
                             "cells (values as for --label-map; empty = unknown): a classifier "
                             "trained on them is combined with the label-free transfer, the "
                             "more the more labels (scdeal.model.labelled). With --label-key, "
                             "only cells not labelled in COL are scored")
    parser.add_argument("--config", help="JSON or TOML file of configuration keys")
    parser.add_argument("--preset", help="named configuration, e.g. default, paper_GSE112274")
    parser.add_argument("--seed", type=int, help="random seed (default: the configuration's, 0)")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--out", required=True, help="output folder (replaced atomically)")
    parser.add_argument("--backed", action=argparse.BooleanOptionalAction, default=None,
                        help="for a large .h5ad: read it a block of cells at a time, train on "
                             "a random sample of at most max_training_cells cells (default "
                             "50,000), predict every cell block by block, and write "
                             "predictions.h5ad as a copy of the file with the predictions "
                             "added; memory then no longer grows with the number of cells. "
                             "Default: chosen by the file's size, backed when its matrix "
                             "would take more than 5%% of this machine's memory (one line "
                             "says so); --no-backed reads it whole")
    add_cache_argument(parser)
    parser.set_defaults(func=_run)


def add_cache_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--no-cache", action="store_true",
                        help="train the drug-independent extractors afresh and store nothing "
                             "(default: reuse them from the cache; see 'scdeal cache')")


def _run(args: argparse.Namespace) -> int:
    from ..model import ScDEAL

    if args.backed is None:  # chosen by the file's size
        from ..model.backed import reads_backed

        reason = reads_backed(args.target)
        if reason is not None:
            print(f"scdeal run: {reason} (as --backed; --no-backed reads it whole)")
        args.backed = reason is not None
    if args.backed:
        return _run_backed(args)
    check_label_columns(args)
    started = time.perf_counter()
    config = config_from_args(args)
    t0 = time.perf_counter()
    adata = read_target_from_args(args)
    label_map = label_map_from_args(args)
    if args.label_key and args.label_key in adata.obs:
        # Validate the labels before hours of training, not after.
        from ..data.labels import binary_labels

        binary_labels(adata.obs, args.label_key, label_map)
    known = None
    if args.labelled_key:
        from ..model.prepare import cell_labels

        known = cell_labels(adata.obs, args.labelled_key, label_map)
        if args.label_key:
            check_scorable(adata.obs, args.label_key, label_map, known)
    read_s = time.perf_counter() - t0
    model = ScDEAL(config, cache=not args.no_cache)
    model.fit(adata, args.drug, gene_ids=args.gene_ids, progress=not args.quiet,
              labelled=args.labelled_key, label_map=label_map)
    t0 = time.perf_counter()
    model.predict(adata, label_key=None if known is not None else args.label_key,
                  label_map=label_map)
    if known is not None and args.label_key:
        _score_unlabelled(adata, args.label_key, label_map, known)
    predict_s = time.perf_counter() - t0
    write_run(Path(args.out), model, adata, read_s=read_s, predict_s=predict_s,
              started=started, command="run")
    _print_result(model, adata.n_obs, adata.uns["scdeal"], args.out)
    return 0


def check_scorable(obs, label_key: str, label_map, known) -> None:
    """Before training: the cells left to score (labelled in ``label_key``, not in ``known``)
    must hold both classes."""
    from ..data.labels import binary_labels
    from ..errors import ScdealError

    y = binary_labels(obs, label_key, label_map)[known.reindex(obs.index).isna().to_numpy()]
    n_sens, n_res = int((y == 1).sum()), int((y == 0).sum())
    if min(n_sens, n_res) == 0:
        raise ScdealError(f"the cells not in --labelled-key have {n_sens} sensitive and {n_res} "
                          f"resistant labels in {label_key!r}: scoring needs both; label other "
                          "cells in --label-key, or drop it")


def _score_unlabelled(adata, label_key: str, label_map, known) -> None:
    """Metrics of ``adata``'s predictions against ``obs[label_key]`` on the cells NOT labelled
    in ``known`` (they trained the model), written into ``uns['scdeal']``."""
    from .._io import uns_safe

    info = json.loads(adata.uns["scdeal"]["summary_json"])
    info.update(unlabelled_metrics(adata.obs, label_key, label_map, known,
                                   adata.obs["sens_preds"].to_numpy("float32"),
                                   adata.obs["sens_preds_pret"].to_numpy("float32")))
    uns = uns_safe(info)
    uns["summary_json"] = json.dumps(info)
    adata.uns["scdeal"] = uns


def unlabelled_metrics(obs, label_key: str, label_map, known, p, p_pre) -> dict:
    """:func:`~scdeal.model.metrics.label_metrics` on the cells with no value in ``known`` (the
    training labels), with ``scored`` saying so: the cells that trained the model are never
    scored."""
    import numpy as np

    from ..model.metrics import label_metrics

    used = known.reindex(obs.index).notna().to_numpy()
    p, p_pre = np.where(used, np.nan, p), np.where(used, np.nan, p_pre)
    out = label_metrics(obs, label_key, label_map, p, p_pre)
    out["scored"] = SCORED_UNLABELLED
    return out


def _run_backed(args: argparse.Namespace) -> int:
    """``scdeal run --backed``: the same steps with the target read a block at a time."""
    from .._io import uns_safe
    from ..errors import ScdealError
    from ..model import ScDEAL
    from ..model.backed import annotate_copy, file_obs, read_rows
    from ..model.metrics import label_metrics
    from ..model.prepare import training_rows

    check_label_columns(args)
    started = time.perf_counter()
    config = config_from_args(args)
    t0 = time.perf_counter()
    obs = file_obs(args.target)
    n = len(obs)
    label_map = label_map_from_args(args)
    for key in (args.label_key, args.labelled_key):
        if key and key not in obs:
            raise ScdealError(f"{args.target} has no obs column {key!r}; its "
                              f"columns: {', '.join(map(str, obs.columns)) or 'none'}")
    known = keep = None
    if args.labelled_key:
        import numpy as np

        from ..model.prepare import cell_labels

        known = cell_labels(obs, args.labelled_key, label_map)
        keep = np.flatnonzero(known.notna().to_numpy())
        if args.label_key:
            check_scorable(obs, args.label_key, label_map, known)
    # The labelled cells are always in the training sample (the helper fit uses too).
    rows = training_rows(n, config.max_training_cells, config.seed, keep=keep)
    sample = read_rows(args.target, rows)
    if args.label_key:
        from ..data.labels import binary_labels

        binary_labels(sample.obs, args.label_key, label_map)
    read_s = time.perf_counter() - t0
    model = ScDEAL(config, cache=not args.no_cache)
    model.fit(sample, args.drug, gene_ids=args.gene_ids, progress=not args.quiet,
              labelled=args.labelled_key, label_map=label_map)
    if rows is not None:  # fit saw the sample only; it is a sample of the file
        model.training["training_sample"] = {"cells": len(rows), "of": n}
    del sample
    t0 = time.perf_counter()
    predicted = model.predict_file(args.target, embedding=True, pretransfer=True)
    for column in predicted.obs.columns:
        obs[column] = predicted.obs[column].to_numpy()
    info = model.summary()
    if args.label_key:
        p, p_pre = (obs[c].to_numpy("float32") for c in ("sens_preds", "sens_preds_pret"))
        if known is not None:
            info.update(unlabelled_metrics(obs, args.label_key, label_map, known, p, p_pre))
        else:
            info.update(label_metrics(obs, args.label_key, label_map, p, p_pre))
    uns = uns_safe(info)
    uns["summary_json"] = json.dumps(info)
    predict_s = time.perf_counter() - t0

    def write_predictions(path: Path) -> None:
        annotate_copy(args.target, path, obs=obs, obsm={"X_scdeal": predicted.obsm["X_scdeal"]},
                      uns={"scdeal": uns})

    write_run(Path(args.out), model, None, read_s=read_s, predict_s=predict_s, started=started,
              command="run", info=info, write_predictions=write_predictions,
              extra={"backed": True})
    _print_result(model, n, info, args.out)
    return 0


def _print_result(model, n_obs: int, info: dict, out) -> None:
    from ..model.labelled import stack_line

    print(f"scdeal run: {model.drug}, {n_obs} cells, {len(model.target_genes)} genes -> {out}")
    print_reliability(model)
    labelled = model.training.get("labelled_cells") or {}
    if "stack" in labelled:
        print(f"  labelled cells: {stack_line(labelled['stack'])}")
    if "metrics" in info:
        m = info["metrics"]
        scored = f" on {m['n_cells']} {info['scored']}" if "scored" in info else ""
        print(f"  AUROC {m['auroc']:.3f}  AP {m['ap']:.3f} (prevalence {m['prevalence']:.3f})  "
              f"F1 {m['f1']:.3f}  MCC {m['mcc']:.3f}{scored}")


def print_reliability(model) -> None:
    """One line on the fit's reliability. An unreliable fit's warning is not repeated here:
    ``fit`` and ``load`` have logged it already (to stderr, also under --quiet)."""
    rel = model.reliability or {}
    if rel.get("reliable") is False:
        return
    if rel.get("reliable") is True:
        print(f"  reliable: {rel['reason']}")
    else:
        print(f"  reliability: no verdict ({rel.get('reason', 'no diagnostics in this model')})")


def write_run(out: Path, model, adata, *, read_s: float, predict_s: float, started: float,
              command: str, extra: dict | None = None, info: dict | None = None,
              write_predictions=None) -> None:
    """Write predictions, model, run.json and metrics.json into ``out`` atomically.

    The predictions are ``adata`` (annotated by ``model.predict``), or whatever
    ``write_predictions(path)`` writes, with ``info`` the prediction summary."""
    if info is None:
        info = json.loads(adata.uns["scdeal"]["summary_json"])
    timings = {"read_target": read_s, **model.training.get("timings_s", {}),
               "predict": predict_s}
    with atomic_dir(out) as tmp:
        model.save(tmp / "model")
        if write_predictions is not None:
            write_predictions(tmp / "predictions.h5ad")
        else:
            adata.write_h5ad(tmp / "predictions.h5ad")
        run = {"command": command, **(extra or {}), "drug": model.drug,
               "config": info["config"], "versions": info["versions"],
               "reliability": info.get("reliability"),
               "training": {k: v for k, v in info["training"].items() if k != "history"},
               "timings_s": {**timings, "total": time.perf_counter() - started}}
        (tmp / "run.json").write_text(json.dumps(run, indent=2))
        if "metrics" in info:
            metrics = {**info["metrics"], "before_transfer": info["metrics_before_transfer"],
                       "label_key": info["label_key"]}
            if "scored" in info:  # cells labelled for training are not scored
                metrics["scored"] = info["scored"]
            (tmp / "metrics.json").write_text(json.dumps(metrics, indent=2))
