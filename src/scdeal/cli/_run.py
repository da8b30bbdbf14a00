"""``scdeal run``: train on GDSC + a target file, predict it, write a run folder."""

from __future__ import annotations

import argparse
import logging

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
    from ..data import read_target

    return read_target(args.target, sep=args.sep, label_key=getattr(args, "label_key", None),
                       orientation=args.orientation.replace("-", "_"))


def label_map_from_args(args: argparse.Namespace):
    if not getattr(args, "label_map", None):
        return None
    from ..data import parse_label_map

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
    if getattr(args, "blocks", None) is not None:
        changes["joint_blocks"] = args.blocks
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
    from ..workflows import run

    result = run(args.target, args.drug, args.out, label_key=args.label_key,
                 label_map=label_map_from_args(args), labelled_key=args.labelled_key,
                 gene_ids=args.gene_ids, backed=args.backed, config=config_from_args(args),
                 cache=not args.no_cache, progress=not args.quiet, sep=args.sep,
                 orientation=args.orientation.replace("-", "_"))
    if result.backed_reason is not None:
        print(f"scdeal run: {result.backed_reason} (as --backed; --no-backed reads it whole)")
    _print_result(result.model, result.n_cells, result.info, args.out)
    return 0


def _print_result(model, n_obs: int, info: dict, out) -> None:
    from ..model import stack_line

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
