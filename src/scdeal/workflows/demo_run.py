"""``scdeal demo`` as a function: the whole pipeline on real GDSC data, no user data needed.

Trains on GDSC cell lines for one drug while holding out some lines, simulates single cells
from the held-out lines (clearly marked as simulated), predicts them and scores the result.
"""

from __future__ import annotations

from pathlib import Path

from .run_folder import RunResult, run


def demo(drug: str = "Gefitinib", out: str | Path | None = "scdeal_demo", *,
         lines_per_class: int = 12, cells_per_line: int = 25, n_genes: int = 2000,
         seed: int = 0, cache: bool | str | Path = True, progress: bool = True,
         config=None) -> RunResult:
    """Train on real GDSC lines for ``drug`` with ``lines_per_class`` lines of each class held
    out, predict cells SIMULATED from the held-out lines (Poisson counts, library-size
    variation, dropout; :func:`scdeal.data.simulate.demo_target`), score them against the
    lines' labels (``obs['sensitive']``) and write the run folder ``out``.

    ``result.info['held_out_lines']`` names the held-out lines; the bulk test lines' metrics
    are in ``result.model.training['bulk_test_metrics']``.

    Examples
    --------
    >>> import scdeal
    >>> result = scdeal.workflows.demo(out=None, lines_per_class=3, cells_per_line=10,
    ...                                config=dict(n_models=1, pretrain_epochs=2,
    ...                                            predictor_epochs=2, transfer_epochs=2),
    ...                                cache=False, progress=False)  # doctest: +GDSC_DATA
    >>> result.n_cells, len(result.info["held_out_lines"])
    (60, 6)
    """
    from ..data import load_gdsc
    from ..data.simulate import demo_target
    from ..model import ScDealConfig

    bulk = load_gdsc()
    drug = bulk.resolve_drug(drug)
    target, held = demo_target(bulk, drug, lines_per_class=lines_per_class,
                               cells_per_line=cells_per_line, n_genes=n_genes, seed=seed)
    if config is None:
        config = ScDealConfig(seed=seed)
    held = [str(h) for h in held]
    result = run(target, drug, out, label_key="sensitive", gene_ids="symbol",
                 bulk=bulk.without_lines(held), config=config, cache=cache, progress=progress,
                 command="demo", extra={"held_out_lines": held, "simulated_target": True})
    result.info["held_out_lines"] = held
    result.info["n_training_lines"] = int(bulk.without_lines(held).expression.shape[0])
    return result
