"""``scdeal report``: one self-contained HTML page from a run folder."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "report", help="write a self-contained HTML report of a run or screen folder",
        description="Gather the metrics, tables and figures of a folder written by scdeal run, "
                    "explain, stability or screen into DIR/report.html (figures embedded).")
    parser.add_argument("dir", metavar="DIR", help="run (or stability) folder")
    parser.add_argument("--out", help="HTML file to write (default DIR/report.html)")
    parser.set_defaults(func=_report)


def _report(args: argparse.Namespace) -> int:
    import matplotlib

    matplotlib.use("Agg")
    from ..workflows import build_report

    path = build_report(args.dir, args.out)
    print(f"scdeal report: {path}")
    return 0
