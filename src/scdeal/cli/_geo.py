"""``scdeal data geo``: list the paper's six single-cell datasets or build one as an .h5ad."""

from __future__ import annotations

import argparse

from ..errors import ScdealError

_DESCRIPTION = """\
The six drug-treated single-cell datasets of the scDEAL paper, labelled per cell
(obs['sensitive']: 1 sensitive, 0 resistant). Files come from GEO (downloaded once, cached,
checksums recorded) or from a folder you filled yourself (--from DIR).

examples:
  scdeal data geo --list
  scdeal data geo GSE117872 --subset HN120 --out GSE117872_HN120.h5ad
  scdeal data geo GSE110894 --from ~/downloads/GSE110894 --out GSE110894.h5ad
"""


def register_geo(data_subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``geo`` sub-command to the ``scdeal data`` group; returns its parser."""
    geo = data_subparsers.add_parser(
        "geo", help="the paper's six single-cell datasets (GEO) as labelled .h5ad",
        description=_DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    geo.add_argument("accession", nargs="?",
                     help="GEO accession (GSE117872 needs --subset) or registry key, e.g. "
                          "GSE117872_HN120")
    geo.add_argument("--list", action="store_true", help="print one row per dataset and exit")
    geo.add_argument("--subset", help="subset of a series: HN120 or HN137 for GSE117872")
    geo.add_argument("--from", dest="from_dir", metavar="DIR",
                     help="read the GEO files from this folder instead of downloading them")
    geo.add_argument("--cache-dir", metavar="DIR",
                     help="download folder (default: the scdeal cache, SCDEAL_CACHE_DIR)")
    geo.add_argument("--out", metavar="FILE.h5ad", help="output AnnData file")
    holiday = geo.add_mutually_exclusive_group()
    holiday.add_argument("--keep-holiday", dest="exclude_holiday", action="store_false",
                         help="GSE117872: keep drug-holiday cells, labelled sensitive and "
                              "flagged in obs['holiday'] (default)")
    holiday.add_argument("--drop-holiday", dest="exclude_holiday", action="store_true",
                         help="GSE117872: drop drug-holiday cells, as the paper's evaluation did")
    empty = geo.add_mutually_exclusive_group()
    empty.add_argument("--keep-empty", dest="exclude_empty", action="store_false",
                       help="GSE110894: keep EMPTY wells (flagged in obs['empty_well'])")
    empty.add_argument("--drop-empty", dest="exclude_empty", action="store_true",
                       help="GSE110894: drop EMPTY wells (default)")
    geo.add_argument("--by-position", action="store_true",
                     help="GSE140440/GSE149383: assign metadata rows to cells in matrix order "
                          "(the original's way; only for a metadata file without cell ids)")
    geo.add_argument("--keep-mouse-ids", action="store_true",
                     help="GSE110894: keep mouse Ensembl ids instead of mapping them to human "
                          "symbols")
    geo.set_defaults(func=_geo, exclude_holiday=False, exclude_empty=True)
    return geo


def _print_list() -> None:
    from ..datasets import list_datasets

    table = list_datasets()[["key", "accession", "subset", "drug", "species", "n_cells_paper",
                             "gene_id_type", "files", "preset"]]
    print(table.rename(columns={"n_cells_paper": "cells"}).to_string(index=False))


def _geo(args: argparse.Namespace) -> int:
    if args.list:
        _print_list()
        return 0
    if not args.accession:
        raise ScdealError("give a GEO accession (e.g. GSE112274) or --list")
    if not args.out:
        raise ScdealError("give --out FILE.h5ad")
    from ..datasets import (
        PROVENANCE_KEY,
        fetch_dataset,
        get_dataset,
        load_dataset,
        write_dataset,
    )

    ds = get_dataset(args.accession, subset=args.subset)
    if not args.out.endswith(".h5ad"):
        raise ScdealError(f"--out {args.out} must end with .h5ad")
    folder = fetch_dataset(ds.key, from_dir=args.from_dir, cache_dir=args.cache_dir)
    adata = load_dataset(ds.key, folder, exclude_holiday=args.exclude_holiday,
                         exclude_empty=args.exclude_empty, by_position=args.by_position,
                         map_mouse_genes=not args.keep_mouse_ids)
    write_dataset(adata, args.out)
    info = adata.uns[PROVENANCE_KEY]
    extra = []
    if info["n_holiday"]:
        extra.append(f"{info['n_holiday']} holiday cells "
                     f"{'dropped' if args.exclude_holiday else 'kept, flagged'}")
    if info["n_empty_wells"]:
        extra.append(f"{info['n_empty_wells']} EMPTY wells "
                     f"{'dropped' if args.exclude_empty else 'kept, flagged'}")
    if info["gene_mapping"]:
        extra.append(f"{100 * info['gene_mapping']['mapping_rate']:.1f}% of mouse genes "
                     "mapped to human symbols")
    detail = f"; {'; '.join(extra)}" if extra else ""
    print(f"{ds.key} ({ds.drug}): {adata.n_obs} cells ({info['n_sensitive']} sensitive, "
          f"{info['n_resistant']} resistant{detail}) x {adata.n_vars} genes -> {args.out}")
    return 0
