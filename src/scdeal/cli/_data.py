"""``scdeal data``: inspect and export the data the model uses."""

from __future__ import annotations

import argparse
import json

from ..errors import ScdealError


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("data", help="GDSC labels, single-cell file summaries, paper datasets")
    data_sub = parser.add_subparsers(dest="data_command", metavar="DATA_COMMAND", required=True)

    gdsc = data_sub.add_parser(
        "gdsc", help="binarised GDSC response of one drug, one row per cell line",
        description="Write one row per GDSC cell line with its response and binary label "
                    "(1 = sensitive, 0 = resistant, empty = not screened).")
    gdsc.add_argument("--drug", required=True, help="drug name (GDSC spelling or close to it)")
    gdsc.add_argument("--release", choices=["auto", "GDSC1", "GDSC2"], default="auto",
                      help="screening release (auto: GDSC2 when it has the drug, else GDSC1)")
    gdsc.add_argument("--metric", choices=["auc", "ln_ic50"], default="auc")
    gdsc.add_argument("--method", choices=["waterfall", "median"], default="waterfall")
    gdsc.add_argument("--expression", help="official GDSC RMA expression table (instead of the "
                      "default PyPI source); needs --response")
    gdsc.add_argument("--response", action="append", metavar="RELEASE=FILE", default=[],
                      help="official fitted dose-response table, e.g. GDSC2=GDSC2_fitted.xlsx")
    gdsc.add_argument("--out", required=True, help="output CSV file")
    gdsc.set_defaults(func=_gdsc)

    info = data_sub.add_parser("info", help="summarise a single-cell file")
    info.add_argument("file")
    info.add_argument("--sep", help="column separator of a text file (default from extension)")
    info.add_argument("--orientation", choices=["cells-by-genes", "genes-by-cells"],
                      default="cells-by-genes")
    info.add_argument("--label-key", help="column of a text file holding labels (kept out of "
                      "the expression matrix)")
    info.add_argument("--json", action="store_true", help="print JSON instead of text")
    info.set_defaults(func=_info)

    try:
        from ._geo import register_geo
    except ModuleNotFoundError:  # pragma: no cover - paper datasets not installed
        return
    register_geo(data_sub)


def _gdsc(args: argparse.Namespace) -> int:
    from ..workflows import gdsc_labels

    responses = {}
    for item in args.response:
        release, sep, path = item.partition("=")
        if not sep:
            raise ScdealError(f"--response {item!r} must look like GDSC2=FILE")
        responses[release.strip()] = path.strip()
    result = gdsc_labels(args.drug, args.out, release=args.release, metric=args.metric,
                         method=args.method, expression=args.expression, responses=responses)
    binarized = result.binarization
    counts = binarized.counts
    print(f"{result.drug} ({result.release}, {args.metric}, {args.method} cut at "
          f"{binarized.cutoff:.4g}, {binarized.branch}): {counts['sensitive']} sensitive, "
          f"{counts['resistant']} resistant, {counts['missing']} not screened -> {args.out}")
    return 0


def _info(args: argparse.Namespace) -> int:
    from ..data import read_target, summarize_target

    adata = read_target(args.file, sep=args.sep, label_key=args.label_key,
                        orientation=args.orientation.replace("-", "_"))
    summary = summarize_target(adata)
    if args.json:
        print(json.dumps(summary, indent=2, default=str))
    else:
        for key, value in summary.items():
            print(f"{key}: {value}")
    return 0
