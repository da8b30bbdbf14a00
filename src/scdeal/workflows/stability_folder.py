"""``scdeal stability`` as a function: :func:`scdeal.tl.stability_test` and its folder of
tables and figure."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pandas as pd
from anndata import AnnData

from .._io import atomic_dir
from ..errors import ScdealError


def stability(target: str | Path | AnnData, drug: str, label_key: str | None,
              out: str | Path | None = None, *, config=None, label_map: dict | None = None,
              repeats: int = 10, first_seed: int = 1, fraction: float = 0.8,
              gene_ids: str = "auto", gene_scores: bool = True, progress: bool = False,
              sep: str | None = None, orientation: str = "cells_by_genes", bulk=None):
    """Retrain and score on ``repeats`` stratified subsamples (:func:`scdeal.tl.stability_test`)
    and write ``out``: ``stability_runs.csv``, ``stability_summary.csv`` (mean, sd per
    metric), ``subsamples.csv``, ``stability.json`` and ``figures/stability_boxplot.png|pdf``.

    Returns the :class:`scdeal.tl.StabilityResult`.

    Examples
    --------
    >>> import scdeal
    >>> from scdeal.data.simulate import demo_target
    >>> bulk = scdeal.data.load_gdsc()                                         # doctest: +GDSC_DATA
    >>> adata, held = demo_target(bulk, "Gefitinib", lines_per_class=3, cells_per_line=10)
    >>> tiny = dict(n_models=1, pretrain_epochs=2, predictor_epochs=2, transfer_epochs=2)
    >>> result = scdeal.workflows.stability(adata, "Gefitinib", "sensitive", "stab", repeats=2,
    ...                                     config=tiny, gene_ids="symbol", gene_scores=False,
    ...                                     bulk=bulk.without_lines(held))
    >>> len(result.runs), sorted(p.name for p in Path("stab").iterdir())[:2]
    (2, ['figures', 'stability.json'])
    """
    from .. import pl
    from ..model import ScDEAL
    from ..tl import stability_test

    if not label_key:
        raise ScdealError("the stability test scores predictions against true labels; give "
                          "--label-key")
    started = time.perf_counter()
    config = ScDEAL(config).config
    source = "AnnData" if isinstance(target, AnnData) else str(target)
    if not isinstance(target, AnnData):
        from ..data.singlecell import read_target

        target = read_target(target, sep=sep, label_key=label_key, orientation=orientation)
    result = stability_test(target, drug, label_key, config=config, label_map=label_map,
                            repeats=repeats, first_seed=first_seed, fraction=fraction,
                            gene_ids=gene_ids, gene_scores=gene_scores, progress=progress,
                            bulk=bulk)
    if out is None:
        return result
    subsamples = pd.DataFrame([(seed, cell) for seed, cells in result.subsamples.items()
                               for cell in cells], columns=["seed", "cell"])
    with atomic_dir(Path(out)) as tmp:
        result.runs.to_csv(tmp / "stability_runs.csv", index=False)
        result.summary.to_csv(tmp / "stability_summary.csv", index=False)
        subsamples.to_csv(tmp / "subsamples.csv", index=False)
        import matplotlib.pyplot as plt

        ax = pl.stability_boxplot(result.runs, show=False)
        pl.save_figure(ax, tmp / "figures", "stability_boxplot")
        plt.close(ax.figure)  # written to files; not left open for a notebook to show
        info = {"command": "stability", "drug": drug, "target": source,
                "label_key": label_key, "repeats": repeats, "first_seed": first_seed,
                "fraction": fraction, "config": config.to_dict(),
                "seconds": time.perf_counter() - started,
                "summary": result.summary.to_dict(orient="records")}
        (tmp / "stability.json").write_text(json.dumps(info, indent=2, default=str))
    return result
