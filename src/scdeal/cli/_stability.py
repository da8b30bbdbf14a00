"""``scdeal stability``: retrain on stratified 80% subsamples with different seeds."""

from __future__ import annotations

import argparse

from ._run import add_target_arguments, config_from_args, label_map_from_args


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "stability", help="stability test: retrain on stratified subsamples with new seeds",
        description="For seeds S..S+N-1: draw a stratified subsample of the labelled cells "
                    "without replacement, train scDEAL with that seed on it, and score its "
                    "predictions on the subsample (labels serve only to stratify and score). "
                    "Writes stability_runs.csv, stability_summary.csv (mean, sd per metric), "
                    "subsamples.csv, stability.json and figures/stability_boxplot.png|pdf.")
    parser.add_argument("--drug", required=True, help="drug name (GDSC spelling or close to it)")
    add_target_arguments(parser)
    parser.add_argument("--repeats", type=int, default=10, help="number of repeats (default 10)")
    parser.add_argument("--first-seed", type=int, default=1, help="seed of the first repeat "
                        "(default 1; the paper's 1..10)")
    parser.add_argument("--fraction", type=float, default=0.8,
                        help="share of the cells in each subsample (default 0.8)")
    parser.add_argument("--config", help="JSON or TOML file of configuration keys")
    parser.add_argument("--preset", help="named configuration, e.g. default")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--no-gene-scores", action="store_true",
                        help="skip the per-repeat gene-score correlations")
    parser.add_argument("--out", required=True, help="output folder (replaced atomically)")
    parser.set_defaults(func=_stability, seed=None)


def _stability(args: argparse.Namespace) -> int:
    import matplotlib

    matplotlib.use("Agg")  # a command writes figures to files; a library call leaves the backend
    from ..workflows import stability

    result = stability(args.target, args.drug, args.label_key, args.out,
                       config=config_from_args(args), label_map=label_map_from_args(args),
                       repeats=args.repeats, first_seed=args.first_seed,
                       fraction=args.fraction, gene_ids=args.gene_ids,
                       gene_scores=not args.no_gene_scores, progress=not args.quiet,
                       sep=args.sep, orientation=args.orientation.replace("-", "_"))
    print(f"scdeal stability: {args.drug}, {args.repeats} repeats of {args.fraction:.0%} "
          f"stratified subsamples -> {args.out}")
    summary = result.summary.set_index("metric")
    for metric in ("auroc", "ap", "f1", "mcc"):
        if metric in summary.index:
            row = summary.loc[metric]
            print(f"  {metric}: {row['mean']:.3f} +/- {row['sd']:.3f}")
    return 0
