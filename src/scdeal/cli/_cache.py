"""``scdeal cache info|clear``: the stored drug-independent pre-training (see
:mod:`scdeal.model.cache`)."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "cache", help="show or clear the stored pre-trained extractors",
        description="Fits store the drug-independent stages (the bulk extractor, pre-trained on "
                    "every GDSC line without labels; the cell extractor and the cells' "
                    "clusters) in the cache folder (SCDEAL_CACHE_DIR, else the platform's user "
                    "cache) and reuse them for other drugs on the same cells. 'info' lists "
                    "what is stored and its size; 'clear' removes it (downloaded data "
                    "stays). The entries are kept under a size limit (default 2GB; set "
                    "SCDEAL_CACHE_MAX_SIZE, e.g. 500MB, or 0 for none): the least recently "
                    "used go first.")
    parser.add_argument("action", choices=["info", "clear"])
    parser.add_argument("--cache-dir", metavar="DIR",
                        help="cache folder (default: SCDEAL_CACHE_DIR or the user cache)")
    parser.set_defaults(func=_cache)


def _cache(args: argparse.Namespace) -> int:
    from ..model import ModelCache

    store = ModelCache(args.cache_dir)
    if args.action == "clear":
        n = store.clear()
        print(f"scdeal cache: removed {n} entr{'y' if n == 1 else 'ies'} from {store.root}")
        return 0
    info = store.info()
    print(f"scdeal cache: {store.root}")
    limit = (f"limit {info['max_bytes'] / 1e6:.0f} MB" if info["max_bytes"] else "no limit")
    print(f"  {info['entries']} entr{'y' if info['entries'] == 1 else 'ies'}, "
          f"{info['bytes'] / 1e6:.1f} MB ({limit}; SCDEAL_CACHE_MAX_SIZE sets it)")
    for stage, n in sorted(info["stages"].items()):
        print(f"  {stage}: {n}")
    return 0
