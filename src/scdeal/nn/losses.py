"""Loss functions: kernel MMD for domain adaptation, a cluster-consistency term, cross-entropy.

Kernel convention: ``k(u, v) = exp(-||u - v||^2 / bw)``, so a bandwidth ``bw`` is in units of
squared distance (``bw = 2 sigma^2``). The original scDEAL used ONE kernel with sigma = 1000,
i.e. ``bw = 2e6``, and the biased estimate (method notes §6.3), which reduces to matching the
embedding means scaled by 1e-6; the defaults here use five kernels around the median heuristic
and the unbiased estimate. To reproduce the original, call
``mmd2_biased(x, y, bandwidths=torch.tensor([2e6]))`` on equal-size batches.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from scdeal.errors import ScdealError

__all__ = [
    "anchor_loss",
    "classification_loss",
    "cluster_consistency_loss",
    "gaussian_kernel_bandwidths",
    "median_bandwidth",
    "mmd2_biased",
    "mmd2_unbiased",
    "pairwise_sq_distances",
]


def _check_samples(x: Tensor, y: Tensor, *, min_rows: int) -> None:
    if x.dim() != 2 or y.dim() != 2:
        raise ScdealError(
            f"samples must be 2-D (n, d) but have shapes {tuple(x.shape)} and {tuple(y.shape)}; "
            "pass embedding matrices"
        )
    if x.shape[1] != y.shape[1]:
        raise ScdealError(
            f"samples have {x.shape[1]} and {y.shape[1]} features; both must live in the same "
            "embedding space"
        )
    if x.shape[0] < min_rows or y.shape[0] < min_rows:
        raise ScdealError(
            f"samples have {x.shape[0]} and {y.shape[0]} rows but each needs at least {min_rows}; "
            "use larger batches"
        )


def pairwise_sq_distances(a: Tensor, b: Tensor) -> Tensor:
    """Squared Euclidean distances ``D[i, j] = ||a_i - b_j||^2`` (differentiable everywhere).

    Uses ``|a|^2 + |b|^2 - 2 a.b`` clamped at 0, avoiding the square root of ``torch.cdist``
    whose gradient is undefined at zero distance.

    Examples
    --------
    >>> pairwise_sq_distances(torch.tensor([[0.0, 0.0]]), torch.tensor([[3.0, 4.0]]))
    tensor([[25.]])
    """
    sq = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * (a @ b.T)
    return sq.clamp_min(0.0)


def _pooled_sq_distances(x: Tensor, y: Tensor) -> Tensor:
    pooled = torch.cat([x, y], dim=0)
    d = pairwise_sq_distances(pooled, pooled)
    # The diagonal is exactly 0 by definition; remove round-off so k(u, u) = 1 exactly.
    off_diagonal = 1.0 - torch.eye(d.shape[0], dtype=d.dtype, device=d.device)
    return d * off_diagonal


def median_bandwidth(x: Tensor, y: Tensor) -> Tensor:
    """Median heuristic: median of off-diagonal pairwise squared distances of the pooled sample.

    The pooled sample is ``[x; y]``; each unordered pair is counted once (the same median as
    over all ordered pairs ``i != j``) and an even count averages the two middle values, as
    ``numpy.median`` does. The result is detached (no gradient flows through the bandwidth). If
    it is 0 (more than half the pairs coincide) the mean off-diagonal squared distance is used,
    and 1.0 if that is 0 too.

    Examples
    --------
    >>> median_bandwidth(torch.tensor([[0.0], [1.0]]), torch.tensor([[3.0]]))
    tensor(4.)
    """
    _check_samples(x, y, min_rows=1)
    with torch.no_grad():
        pooled = torch.cat([x.detach(), y.detach()], dim=0)
        n = pooled.shape[0]
        rows, cols = torch.triu_indices(n, n, offset=1, device=pooled.device)
        values = pairwise_sq_distances(pooled, pooled)[rows, cols]
        k = values.numel()
        # Two selections instead of a full sort (the same two middle values, 2x less time).
        low = torch.kthvalue(values, (k - 1) // 2 + 1).values
        high = low if k % 2 else torch.kthvalue(values, k // 2 + 1).values
        median = 0.5 * (low + high)
        tiny = torch.finfo(values.dtype).tiny
        # torch.where, not a Python branch, so no device sync is forced on GPU.
        fallback = torch.where(values.mean() > tiny, values.mean(), torch.ones_like(median))
        return torch.where(median > tiny, median, fallback)


def gaussian_kernel_bandwidths(
    x: Tensor,
    y: Tensor,
    *,
    n_kernels: int = 5,
    multiplier: float = 2.0,
    bandwidth: float | None = None,
) -> Tensor:
    """Bandwidths of a Gaussian multi-kernel, shape ``(n_kernels,)``, or ``(1,)`` if fixed.

    Without ``bandwidth``: ``median_bandwidth(x, y) * multiplier**k`` for ``k`` in the centred
    range ``-(n_kernels-1)/2 ... (n_kernels-1)/2`` (-2..2 for five kernels). With
    ``bandwidth``: that single fixed value (in squared-distance units, ``bw = 2 sigma^2``).

    Examples
    --------
    >>> x, y = torch.tensor([[0.0], [1.0]]), torch.tensor([[3.0]])
    >>> gaussian_kernel_bandwidths(x, y, n_kernels=3)
    tensor([2., 4., 8.])
    >>> gaussian_kernel_bandwidths(x, y, bandwidth=2e6)
    tensor([2000000.])
    """
    if bandwidth is not None:
        if not bandwidth > 0:
            raise ScdealError(f"bandwidth={bandwidth} is not positive; give a bandwidth > 0")
        return torch.tensor([float(bandwidth)], dtype=x.dtype, device=x.device)
    if n_kernels < 1:
        raise ScdealError(f"n_kernels={n_kernels} is below 1; use at least one kernel")
    if not multiplier > 0:
        raise ScdealError(f"multiplier={multiplier} is not positive; use e.g. 2.0")
    centre = median_bandwidth(x, y)
    exponents = torch.arange(n_kernels, dtype=centre.dtype, device=centre.device)
    exponents = exponents - (n_kernels - 1) / 2
    return centre * multiplier**exponents


def _kernel_matrix(
    x: Tensor, y: Tensor, bandwidths: Tensor | None, n_kernels: int, multiplier: float
) -> Tensor:
    """Mean over kernels of exp(-D / bw) on the pooled sample ``[x; y]``."""
    if bandwidths is None:
        bandwidths = gaussian_kernel_bandwidths(x, y, n_kernels=n_kernels, multiplier=multiplier)
    else:  # only user-given bandwidths are checked: the median ones are positive by construction
        bandwidths = torch.as_tensor(bandwidths, dtype=x.dtype, device=x.device).reshape(-1)
        if bandwidths.numel() == 0 or not bool((bandwidths > 0).all()):
            raise ScdealError(f"bandwidths {bandwidths.tolist()} must be non-empty and positive")
    d = _pooled_sq_distances(x, y)
    return torch.exp(-d[None, :, :] / bandwidths[:, None, None]).mean(dim=0)


def mmd2_unbiased(
    x: Tensor,
    y: Tensor,
    *,
    bandwidths: Tensor | None = None,
    n_kernels: int = 5,
    multiplier: float = 2.0,
) -> Tensor:
    r"""Unbiased (U-statistic) estimate of the squared MMD between samples ``x`` and ``y``.

    .. math:: \widehat{\mathrm{MMD}}^2_u = \frac{1}{m(m-1)} \sum_{i \ne j} k(x_i, x_j)
              + \frac{1}{n(n-1)} \sum_{i \ne j} k(y_i, y_j)
              - \frac{2}{mn} \sum_{i, j} k(x_i, y_j)

    with ``k`` the MEAN of Gaussian kernels ``exp(-||u - v||^2 / bw)`` over ``bandwidths`` (the
    mean, not the sum, keeps the value in [-1, 2] whatever the number of kernels, so the loss
    weight need not change with it). Without ``bandwidths`` they come from
    :func:`gaussian_kernel_bandwidths` (median heuristic, ``n_kernels`` x ``multiplier``). The
    estimate can be slightly negative when the distributions agree.

    Parameters
    ----------
    x, y
        Samples of shape ``(m, d)`` and ``(n, d)``; ``m != n`` is allowed, both must be >= 2.
    bandwidths
        Fixed bandwidths (squared-distance units), shape ``(k,)`` or scalar.

    Examples
    --------
    >>> torch.manual_seed(0)  # doctest: +ELLIPSIS
    <torch._C.Generator object at ...>
    >>> x, y = torch.randn(50, 3), torch.randn(40, 3) + 2
    >>> bool(mmd2_unbiased(x, y) > 0.1)
    True
    """
    _check_samples(x, y, min_rows=2)
    m, n = x.shape[0], y.shape[0]
    k = _kernel_matrix(x, y, bandwidths, n_kernels, multiplier)
    kxx, kyy, kxy = k[:m, :m], k[m:, m:], k[:m, m:]
    xx = (kxx.sum() - kxx.diagonal().sum()) / (m * (m - 1))
    yy = (kyy.sum() - kyy.diagonal().sum()) / (n * (n - 1))
    return xx + yy - 2.0 * kxy.mean()


def mmd2_biased(
    x: Tensor,
    y: Tensor,
    *,
    bandwidths: Tensor | None = None,
    n_kernels: int = 5,
    multiplier: float = 2.0,
) -> Tensor:
    r"""Biased (V-statistic, diagonal included) estimate of the squared MMD; always >= 0.

    .. math:: \widehat{\mathrm{MMD}}^2_b = \frac{1}{m^2} \sum_{i,j} k(x_i, x_j)
              + \frac{1}{n^2} \sum_{i,j} k(y_i, y_j) - \frac{2}{mn} \sum_{i,j} k(x_i, y_j)

    Same kernel and bandwidth conventions as :func:`mmd2_unbiased`; this is the estimator the
    original scDEAL used (with one kernel, ``bw = 2e6``).

    Examples
    --------
    >>> x = torch.zeros(3, 2)
    >>> float(mmd2_biased(x, x, bandwidths=torch.tensor([1.0])))
    0.0
    """
    _check_samples(x, y, min_rows=1)
    m = x.shape[0]
    k = _kernel_matrix(x, y, bandwidths, n_kernels, multiplier)
    return k[:m, :m].mean() + k[m:, m:].mean() - 2.0 * k[:m, m:].mean()


def anchor_loss(prob: Tensor, anchor: Tensor, eps: float = 1e-6) -> Tensor:
    r"""Mean Bernoulli KL divergence of ``prob`` from fixed ``anchor`` probabilities.

    .. math:: L = \frac{1}{n} \sum_i a_i \log\frac{a_i}{p_i}
              + (1 - a_i) \log\frac{1 - a_i}{1 - p_i}

    Used to keep the transferred predictions of the cells near the bulk-supervised,
    pre-transfer ones (a consistency term); 0 when ``prob == anchor``.

    Examples
    --------
    >>> anchor_loss(torch.tensor([0.3, 0.8]), torch.tensor([0.3, 0.8]))
    tensor(0.)
    >>> bool(anchor_loss(torch.tensor([0.9]), torch.tensor([0.1])) > 1)
    True
    """
    if prob.shape != anchor.shape:
        raise ScdealError(f"prob has shape {tuple(prob.shape)} and anchor "
                          f"{tuple(anchor.shape)}; they must match")
    p = prob.clamp(eps, 1 - eps)
    a = anchor.detach().clamp(eps, 1 - eps)
    return (a * (a.log() - p.log()) + (1 - a) * ((1 - a).log() - (1 - p).log())).mean()


def cluster_consistency_loss(prob: Tensor, clusters: Tensor) -> Tensor:
    r"""Within-cluster variance of the predicted sensitive probability (differentiable).

    .. math:: L = \sum_{c:\, n_c \ge 2} w_c \, \frac{1}{n_c} \sum_{i \in c} (p_i - \bar p_c)^2,
              \qquad w_c = \frac{n_c}{\sum_{c':\, n_{c'} \ge 2} n_{c'}},

    where the clusters are those present in the batch, ``n_c`` their sizes and
    :math:`\bar p_c` the mean probability in cluster ``c``. Equivalently, the mean squared
    deviation from the own-cluster mean over all cells in clusters of size >= 2. Singleton
    clusters carry no information and are skipped; if none is left the loss is 0 (still
    attached to the graph). It is 0 when the probability is constant within every cluster.
    Unlike the original's "mod new" term (method notes §6.5) it has a gradient.

    Parameters
    ----------
    prob
        Sensitive probabilities, shape ``(n,)``; or ``(n, n_drugs)`` (the joint model): the
        loss of each column, averaged over the columns.
    clusters
        Integer cluster labels, shape ``(n,)`` (e.g. Leiden clusters of the cells).

    Examples
    --------
    >>> p = torch.tensor([0.2, 0.4, 0.9, 0.9])
    >>> cluster_consistency_loss(p, torch.tensor([0, 0, 1, 1]))
    tensor(0.0050)
    >>> cluster_consistency_loss(torch.stack([p, 1 - p], 1), torch.tensor([0, 0, 1, 1]))
    tensor(0.0050)
    """
    if prob.dim() not in (1, 2) or clusters.dim() != 1 or clusters.shape[0] != prob.shape[0]:
        raise ScdealError(
            f"prob has shape {tuple(prob.shape)} and clusters {tuple(clusters.shape)}; clusters "
            "must be 1-D with one entry per cell (row of prob)"
        )
    if clusters.is_floating_point() or clusters.is_complex():
        raise ScdealError(f"clusters have dtype {clusters.dtype}; pass integer cluster labels")
    _, inverse, counts = torch.unique(clusters, return_inverse=True, return_counts=True)
    columns = prob if prob.dim() == 2 else prob[:, None]
    sums = torch.zeros((counts.shape[0], columns.shape[1]), dtype=prob.dtype, device=prob.device)
    sums = sums.index_add(0, inverse, columns)
    centre = sums / counts.to(prob.dtype)[:, None]
    in_group = (counts[inverse] >= 2).to(prob.dtype)
    squared = (columns - centre[inverse]).pow(2) * in_group[:, None]
    return squared.sum() / (in_group.sum().clamp_min(1.0) * columns.shape[1])


def classification_loss(logits: Tensor, y: Tensor, class_weight: Tensor | None = None) -> Tensor:
    """Cross-entropy of response logits ``(n, 2)`` against labels ``y`` in {0 resistant, 1 sensitive}.

    ``class_weight`` (shape ``(2,)``) re-weights the classes as in ``torch.nn.CrossEntropyLoss``
    (the weighted mean divides by the summed weights of the batch).

    Examples
    --------
    >>> classification_loss(torch.zeros(2, 2), torch.tensor([0, 1]))
    tensor(0.6931)
    """
    if logits.dim() != 2 or logits.shape[1] != 2:
        raise ScdealError(
            f"logits have shape {tuple(logits.shape)}; expected (n_cells, 2) from ResponsePredictor"
        )
    if y.dim() != 1 or y.shape[0] != logits.shape[0]:
        raise ScdealError(
            f"labels have shape {tuple(y.shape)} but logits have {logits.shape[0]} rows; pass one "
            "label per row"
        )
    if bool(((y != 0) & (y != 1)).any()):
        raise ScdealError(
            "labels contain values other than 0 and 1; encode resistant=0, sensitive=1"
        )
    if class_weight is not None:
        class_weight = torch.as_tensor(class_weight, dtype=logits.dtype, device=logits.device)
        if class_weight.shape != (2,) or not bool((class_weight >= 0).all()):
            raise ScdealError(
                f"class_weight {class_weight.tolist()} must be two non-negative numbers "
                "(resistant, sensitive)"
            )
    return F.cross_entropy(logits, y.long(), weight=class_weight)
