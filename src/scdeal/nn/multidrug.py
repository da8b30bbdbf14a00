"""Networks and loss of the joint multi-drug model: one shared trunk, one output per drug.

The joint model (:class:`scdeal.model.JointScDEAL`) shares the feature extractor and the
hidden layers of the response head between drugs; only the last layer has one output per drug
(the log-odds that a cell is sensitive to it). Each drug's loss sees only the bulk lines
labelled for it, class-balanced within the drug (:func:`masked_response_loss`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from scdeal._types import Activation
from scdeal.errors import ScdealError

from .modules import (
    _ACTIVATIONS,
    FeatureExtractor,
    _check_choice,
    _check_dims,
    _check_dropout,
    _check_matrix,
    _mlp_blocks,
)
from .networks import _ResponseModel

__all__ = ["JointDrugNet", "MultiDrugPredictor", "masked_response_loss"]


@dataclass(frozen=True)
class MultiDrugPredictorConfig:
    """Architecture of a :class:`MultiDrugPredictor`."""

    latent_dim: int
    hidden_dims: tuple[int, ...]
    n_drugs: int
    dropout: float = 0.1
    batch_norm: bool = True
    activation: Activation = "relu"


class MultiDrugPredictor(nn.Module):
    """MLP head from embeddings to one sensitivity logit per drug.

    The hidden blocks (Linear -> [BatchNorm1d] -> activation -> Dropout, as in
    :class:`~scdeal.nn.ResponsePredictor`) are shared by all drugs; ``Linear(-> n_drugs)``
    gives, per drug, the log-odds of sensitive (``sigmoid`` of it is P(sensitive)).

    Examples
    --------
    >>> head = MultiDrugPredictor(16, [8], n_drugs=3).eval()
    >>> head(torch.randn(5, 16)).shape
    torch.Size([5, 3])
    """

    def __init__(self, latent_dim: int, hidden_dims: Sequence[int], n_drugs: int,
                 dropout: float = 0.1, batch_norm: bool = True,
                 activation: Activation = "relu") -> None:
        super().__init__()
        if latent_dim < 1 or n_drugs < 1:
            raise ScdealError(f"latent_dim={latent_dim} and n_drugs={n_drugs} must both be at "
                              "least 1")
        hidden = _check_dims("predictor hidden_dims", hidden_dims, allow_empty=True)
        _check_choice("activation", activation, _ACTIVATIONS.keys())
        _check_dropout(dropout)
        self.config = MultiDrugPredictorConfig(int(latent_dim), hidden, int(n_drugs),
                                               float(dropout), bool(batch_norm), activation)
        widths = (latent_dim, *hidden)
        self.hidden = _mlp_blocks(widths, dropout=dropout, batch_norm=batch_norm,
                                  activation=activation)
        self.out = nn.Linear(widths[-1], n_drugs)

    def forward(self, z: Tensor) -> Tensor:
        """Logits of shape ``(n, n_drugs)``: per drug, log-odds of sensitive."""
        _check_matrix(z, self.config.latent_dim, "embedding matrix")
        return self.out(self.hidden(z))


class JointDrugNet(_ResponseModel):
    """Deployable joint model: genes -> extractor embedding -> one logit per drug.

    Examples
    --------
    >>> net = JointDrugNet(FeatureExtractor(20, [16], 8), MultiDrugPredictor(8, [4], 3))
    >>> net.predict_proba(torch.randn(6, 20)).shape
    torch.Size([6, 3])
    """

    def __init__(self, extractor: FeatureExtractor, predictor: MultiDrugPredictor) -> None:
        super().__init__()
        if extractor.latent_dim != predictor.config.latent_dim:
            raise ScdealError(
                f"extractor latent_dim={extractor.latent_dim} differs from predictor "
                f"latent_dim={predictor.config.latent_dim}; build both with the same latent size")
        self.extractor = extractor
        self.predictor = predictor

    def embed(self, x: Tensor) -> Tensor:
        return self.extractor.encode(x)

    # P(sensitive) per drug, (n, n_drugs), from predict_proba (eval mode, no gradients)
    probability = staticmethod(torch.sigmoid)

    def forward(self, x: Tensor) -> Tensor:
        """Logits ``(n, n_drugs)``."""
        return self.predictor(self.embed(x))


def masked_response_loss(logits: Tensor, y: Tensor, weight: Tensor) -> Tensor:
    r"""Binary cross-entropy per drug over the lines labelled for it, averaged over drugs.

    .. math:: L = \frac{1}{|D'|} \sum_{d \in D'}
              \frac{\sum_i w_{id}\, \mathrm{BCE}(z_{id}, y_{id})}{\sum_i w_{id}}

    where ``w`` is 0 for a line not labelled for drug ``d`` (or outside the split) and
    otherwise its class weight within the drug (e.g. ``n_d / (2 n_{d,c})``: each drug's two
    classes count equally), and :math:`D'` the drugs with any weight in the batch: every drug
    counts the same, whatever its number of labelled lines.

    Parameters
    ----------
    logits, y, weight
        ``(n, n_drugs)``: log-odds of sensitive, labels (1 sensitive, 0 resistant; any value
        where ``weight`` is 0) and weights (>= 0).

    Examples
    --------
    >>> z = torch.zeros(2, 2)
    >>> masked_response_loss(z, torch.tensor([[1., 0.], [0., 0.]]), torch.tensor([[1., 0.], [1., 0.]]))
    tensor(0.6931)
    """
    if logits.shape != y.shape or logits.shape != weight.shape or logits.dim() != 2:
        raise ScdealError(f"logits {tuple(logits.shape)}, labels {tuple(y.shape)} and weights "
                          f"{tuple(weight.shape)} must have the same 2-D shape (lines, drugs)")
    per_entry = F.binary_cross_entropy_with_logits(logits, y, reduction="none") * weight
    totals = weight.sum(0)
    present = totals > 0
    if not bool(present.any()):
        return logits.sum() * 0.0  # nothing labelled here: no gradient, still on the graph
    return (per_entry.sum(0)[present] / totals[present]).mean()
