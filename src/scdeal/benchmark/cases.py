"""Benchmark case files: which targets, drugs and label columns a benchmark runs on.

A case file is TOML with one ``[[case]]`` table per case::

    [[case]]
    name = "Gefitinib"                                  # unique; used in tables and file names
    drug = "Gefitinib"                                  # GDSC spelling (matched loosely)
    target = "scad/Target_expr_resp_z.Gefitinib_tp4k.tsv"
    label_key = "response"                              # column with the true labels
    gene_ids = "entrez"                                 # optional, default "auto"
    label_map = {sensitive = 1, resistant = 0}          # optional, default 0/1 or words

A relative ``target`` is looked up in the data directory given by ``data_dir`` (the
command's ``--data-dir``); without one, in each folder of ``SCDEAL_DATA_DIR`` in turn (the
first folder holding the file wins). An absolute path is used as it is.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import get_args

from ..data.genes import IdType
from ..errors import ScdealError

REQUIRED_KEYS = ("name", "drug", "target", "label_key")
OPTIONAL_KEYS = ("gene_ids", "label_map", "description")


@dataclass(frozen=True)
class BenchmarkCase:
    """One target dataset with true per-cell labels, and the drug to predict.

    Attributes
    ----------
    name
        Unique name of the case (a table column in the summary).
    drug
        Drug name, GDSC spelling or close to it.
    target
        Resolved path of the target file (any format :func:`scdeal.data.singlecell.read_target`
        reads; a text table carries the label column).
    label_key
        Column with the true labels: used only to score predictions, never to train.
    gene_ids
        Identifier type of the target's genes (``auto``, ``symbol``, ``entrez``, ...).
    label_map
        Label value -> 1 (sensitive) / 0 (resistant); ``None`` accepts 0/1 and the words.
    description
        Free text shown in the summary.

    Examples
    --------
    :func:`read_cases` makes them from a case file; by hand:

    >>> case = BenchmarkCase(name="PLX4720", drug="PLX4720", target=Path("plx.h5ad"),
    ...                      label_key="response", label_map={"parental": 1, "resistant": 0})
    >>> case.name, case.gene_ids, case.label_map["parental"]
    ('PLX4720', 'auto', 1)
    """

    name: str
    drug: str
    target: Path
    label_key: str
    gene_ids: str = "auto"
    label_map: dict[str, int] | None = field(default=None, hash=False, compare=False)
    description: str = ""


def read_cases(path: str | os.PathLike, *, data_dir: str | os.PathLike | None = None
               ) -> list[BenchmarkCase]:
    """Read and check a case file; every target path is resolved and must exist.

    Parameters
    ----------
    path
        The TOML case file.
    data_dir
        Folder that relative ``target`` paths are relative to. ``None``: search the folders of
        ``SCDEAL_DATA_DIR`` (``os.pathsep``-separated) and take the first that holds the file.

    Returns
    -------
    list of BenchmarkCase
        In file order.

    Raises
    ------
    ScdealError
        Missing or unreadable file, invalid TOML, no cases, a missing or unknown key, a
        duplicated name, an unknown ``gene_ids`` value, a bad ``label_map``, or a target file
        that cannot be found.

    Examples
    --------
    >>> from pathlib import Path
    >>> _ = Path("cells.csv").write_text("cell,TP53,EGFR,response\\nc1,0,3,1\\nc2,1,0,0\\n")
    >>> _ = Path("cases.toml").write_text(
    ...     '[[case]]\\nname = "tiny"\\ndrug = "Gefitinib"\\ntarget = "cells.csv"\\n'
    ...     'label_key = "response"\\ngene_ids = "symbol"\\n')
    >>> [(c.name, c.target.name, c.gene_ids) for c in read_cases("cases.toml", data_dir=".")]
    [('tiny', 'cells.csv', 'symbol')]
    """
    path = Path(path)
    if not path.is_file():
        raise ScdealError(f"case file not found: {path}; give a TOML file with [[case]] tables "
                          "(see benchmarks/cases.toml)")
    try:
        document = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ScdealError(f"{path} is not valid TOML: {exc}; fix the file") from exc
    unknown_top = sorted(set(document) - {"case"})
    if unknown_top:
        raise ScdealError(f"{path}: unknown top-level keys {unknown_top}; a case file holds only "
                          "[[case]] tables")
    entries = document.get("case")
    if not isinstance(entries, list) or not entries:
        raise ScdealError(f"{path} lists no cases; add [[case]] tables with "
                          f"{', '.join(REQUIRED_KEYS)}")
    data_dir = Path(data_dir).expanduser() if data_dir is not None else None
    if data_dir is not None and not data_dir.is_dir():
        raise ScdealError(f"data directory not found: {data_dir}; check --data-dir")
    cases: list[BenchmarkCase] = []
    for number, entry in enumerate(entries, start=1):
        cases.append(_parse_case(entry, number, path, data_dir))
    names = [c.name for c in cases]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ScdealError(f"{path}: case names must be unique; repeated: {', '.join(repeated)}")
    return cases


def _parse_case(entry: object, number: int, path: Path, data_dir: Path | None) -> BenchmarkCase:
    where = f"{path}, case {number}"
    if not isinstance(entry, dict):
        raise ScdealError(f"{where} is not a table; write each case as a [[case]] table")
    missing = [k for k in REQUIRED_KEYS if k not in entry]
    if missing:
        raise ScdealError(f"{where} lacks {', '.join(missing)}; every case needs "
                          f"{', '.join(REQUIRED_KEYS)}")
    unknown = sorted(set(entry) - set(REQUIRED_KEYS) - set(OPTIONAL_KEYS))
    if unknown:
        raise ScdealError(f"{where}: unknown keys {unknown}; allowed: "
                          f"{', '.join(REQUIRED_KEYS + OPTIONAL_KEYS)}")
    for key in (*REQUIRED_KEYS, "gene_ids", "description"):
        if key in entry and (not isinstance(entry[key], str) or not entry[key].strip()):
            raise ScdealError(f"{where}: {key} must be a non-empty string, got {entry[key]!r}")
    name = entry["name"].strip()
    where = f"{path}, case {name!r}"
    gene_ids = entry.get("gene_ids", "auto")
    if gene_ids not in get_args(IdType):
        raise ScdealError(f"{where}: gene_ids must be one of {', '.join(get_args(IdType))}, "
                          f"got {gene_ids!r}")
    label_map = entry.get("label_map")
    if label_map is not None:
        label_map = _parse_label_map(label_map, where)
    return BenchmarkCase(
        name=name, drug=entry["drug"].strip(), target=resolve_target(entry["target"], data_dir,
                                                                     where),
        label_key=entry["label_key"], gene_ids=gene_ids, label_map=label_map,
        description=entry.get("description", ""))


def _parse_label_map(value: object, where: str) -> dict[str, int]:
    if isinstance(value, str):
        from ..data.labels import parse_label_map

        return parse_label_map(value)
    if not isinstance(value, dict) or not value:
        raise ScdealError(f"{where}: label_map must be a table like "
                          "{sensitive = 1, resistant = 0}")
    out = {}
    for key, label in value.items():
        if isinstance(label, bool) or label not in (0, 1):
            raise ScdealError(f"{where}: label_map sends {key!r} to {label!r}; use 1 "
                              "(sensitive) or 0 (resistant)")
        out[str(key)] = int(label)
    return out


def resolve_target(target: str, data_dir: Path | None, where: str = "case") -> Path:
    """The existing file a case's ``target`` names (see :func:`read_cases` for the rules)."""
    given = Path(target).expanduser()
    if given.is_absolute():
        if not given.exists():
            raise ScdealError(f"{where}: target file not found: {given}")
        return given
    if data_dir is not None:
        candidate = data_dir / given
        if not candidate.exists():
            raise ScdealError(f"{where}: target file not found: {candidate}; check --data-dir "
                              "and the case's target path")
        return candidate
    folders = [Path(p).expanduser() for p in os.environ.get("SCDEAL_DATA_DIR", "").split(
        os.pathsep) if p]
    for folder in folders:
        if (folder / given).exists():
            return folder / given
    searched = ", ".join(str(f) for f in folders) or "none: SCDEAL_DATA_DIR is not set"
    raise ScdealError(f"{where}: target {target} not found in any SCDEAL_DATA_DIR folder "
                      f"({searched}); pass --data-dir DIR with the folder that holds it")
