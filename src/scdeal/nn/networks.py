"""The response head, the deployable model (extractor + head), its ensemble and the
probability that integrated gradients attribute. Output column order everywhere: 0 =
resistant, 1 = sensitive.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict

import torch
from torch import Tensor, nn

from scdeal._types import Activation
from scdeal.errors import ScdealError

from .modules import (
    _ACTIVATIONS,
    SENSITIVE,
    FeatureExtractor,
    PredictorConfig,
    _check_choice,
    _check_dims,
    _check_dropout,
    _check_matrix,
    _mlp_blocks,
)

__all__ = [
    "DrugResponseNet",
    "EnsembleNet",
    "ResponsePredictor",
    "SensitivityProbability",
    "class_probabilities",
    "sensitive_probability",
]


class ResponsePredictor(nn.Module):
    """MLP head from embeddings to drug-response logits.

    For each width in ``hidden_dims`` a block Linear -> [BatchNorm1d] -> activation -> Dropout,
    then Linear(-> 2). Column 0 = resistant, column 1 = sensitive; the probability of being
    sensitive is ``softmax(logits, dim=1)[:, 1]`` (see :func:`sensitive_probability`).

    Examples
    --------
    >>> head = ResponsePredictor(16, [8]).eval()
    >>> head(torch.randn(5, 16)).shape
    torch.Size([5, 2])
    """

    def __init__(
        self,
        latent_dim: int,
        hidden_dims: Sequence[int],
        dropout: float = 0.1,
        batch_norm: bool = True,
        activation: Activation = "relu",
    ) -> None:
        super().__init__()
        if latent_dim < 1:
            raise ScdealError(f"latent_dim={latent_dim} must be at least 1; check the latent size")
        hidden = _check_dims("predictor hidden_dims", hidden_dims, allow_empty=True)
        _check_choice("activation", activation, _ACTIVATIONS.keys())
        _check_dropout(dropout)
        self.config = PredictorConfig(
            latent_dim=int(latent_dim),
            hidden_dims=hidden,
            dropout=float(dropout),
            batch_norm=bool(batch_norm),
            activation=activation,
        )
        widths = (latent_dim, *hidden)
        self.hidden = _mlp_blocks(
            widths, dropout=dropout, batch_norm=batch_norm, activation=activation
        )
        self.out = nn.Linear(widths[-1], 2)

    @classmethod
    def from_config(cls, config: PredictorConfig) -> ResponsePredictor:
        """Build a head from a :class:`PredictorConfig`."""
        return cls(**asdict(config))

    def forward(self, z: Tensor) -> Tensor:
        """Logits of shape ``(n, 2)``: column 0 resistant, column 1 sensitive."""
        _check_matrix(z, self.config.latent_dim, "embedding matrix")
        return self.out(self.hidden(z))


def class_probabilities(logits: Tensor) -> Tensor:
    """Probabilities of both classes, ``softmax(logits, dim=1)`` of shape ``(n, 2)``: column
    0 resistant, 1 sensitive. The one place logits become probabilities.

    Examples
    --------
    >>> class_probabilities(torch.tensor([[0.0, 0.0], [0.0, 2.0]]))
    tensor([[0.5000, 0.5000],
            [0.1192, 0.8808]])
    """
    return torch.softmax(logits, dim=1)


def sensitive_probability(logits: Tensor) -> Tensor:
    """Probability of the sensitive class, ``softmax(logits, dim=1)[:, 1]`` (differentiable).

    Examples
    --------
    >>> sensitive_probability(torch.zeros(3, 2))
    tensor([0.5000, 0.5000, 0.5000])
    """
    if logits.dim() != 2 or logits.shape[1] != 2:
        raise ScdealError(
            f"logits have shape {tuple(logits.shape)}; expected (n_cells, 2) from ResponsePredictor"
        )
    return class_probabilities(logits)[:, SENSITIVE]


class _ResponseModel(nn.Module):
    """What every deployable network shares: logits from ``forward`` and
    :meth:`predict_proba` (``probability`` turns logits into P(sensitive))."""

    probability = staticmethod(sensitive_probability)

    def predict_proba(self, x: Tensor) -> Tensor:
        """Sensitive-class probability ``(n,)`` computed in eval mode without gradients.

        The module is switched to eval mode for the call and restored afterwards, so dropout and
        batch-statistics BatchNorm never make predictions stochastic. Use
        ``sensitive_probability(net(x))`` when a differentiable probability is needed.
        """
        was_training = self.training
        self.eval()
        try:
            with torch.no_grad():
                return self.probability(self(x))
        finally:
            self.train(was_training)


class DrugResponseNet(_ResponseModel):
    """Deployable model: genes -> extractor embedding -> response logits.

    The extractor's decoder is kept as a submodule (so the extractor stays whole) but is not
    used here and receives no gradient from :meth:`forward`.

    Examples
    --------
    >>> net = DrugResponseNet(FeatureExtractor(20, [16], 8), ResponsePredictor(8, [4]))
    >>> net.predict_proba(torch.randn(6, 20)).shape
    torch.Size([6])
    """

    def __init__(self, extractor: FeatureExtractor, predictor: ResponsePredictor) -> None:
        super().__init__()
        if extractor.latent_dim != predictor.config.latent_dim:
            raise ScdealError(
                f"extractor latent_dim={extractor.latent_dim} differs from predictor "
                f"latent_dim={predictor.config.latent_dim}; build both with the same latent size"
            )
        self.extractor = extractor
        self.predictor = predictor

    def embed(self, x: Tensor) -> Tensor:
        """Deterministic embedding of ``x`` (see :meth:`FeatureExtractor.encode`)."""
        return self.extractor.encode(x)

    def forward(self, x: Tensor) -> Tensor:
        """Response logits ``(n, 2)`` (no corruption or sampling, whatever the mode)."""
        return self.predictor(self.embed(x))


class SensitivityProbability(nn.Module):
    """``softmax(net(x))`` of shape ``(n, 2)``: the function integrated gradients attribute.

    The wrapper (and therefore the wrapped ``net``, which it shares) is put in eval mode when
    constructed, so attributions are deterministic; use ``target=1`` for sensitive and
    ``target=0`` for resistant in captum.

    Examples
    --------
    >>> net = DrugResponseNet(FeatureExtractor(20, [16], 8), ResponsePredictor(8, [4]))
    >>> probs = SensitivityProbability(net)(torch.randn(3, 20))
    >>> torch.allclose(probs.sum(dim=1), torch.ones(3))
    True
    """

    def __init__(self, net: DrugResponseNet) -> None:
        super().__init__()
        self.net = net
        self.eval()

    def forward(self, x: Tensor) -> Tensor:
        return class_probabilities(self.net(x))


class EnsembleNet(_ResponseModel):
    """Several :class:`DrugResponseNet` members acting as one: their softmax probabilities are
    averaged.

    ``forward`` returns the log of the averaged probabilities; they work as logits (softmax
    of them gives back the averaged probabilities), so :class:`SensitivityProbability` and
    :func:`sensitive_probability` apply unchanged. ``embed`` is the first member's embedding
    (members' latent spaces are not aligned with each other, so they are not averaged).

    Examples
    --------
    >>> nets = [DrugResponseNet(FeatureExtractor(20, [16], 8), ResponsePredictor(8, [4]))
    ...         for _ in range(3)]
    >>> ens = EnsembleNet(nets).eval()
    >>> x = torch.randn(5, 20)
    >>> mean = torch.stack([torch.softmax(n(x), 1) for n in nets]).mean(0)
    >>> torch.allclose(torch.softmax(ens(x), 1), mean, atol=1e-6)
    True
    """

    def __init__(self, members: Sequence[DrugResponseNet]) -> None:
        super().__init__()
        if not members:
            raise ScdealError("an ensemble needs at least one member network")
        self.members = nn.ModuleList(members)

    def embed(self, x: Tensor) -> Tensor:
        return self.members[0].embed(x)

    def forward(self, x: Tensor) -> Tensor:
        probs = torch.stack([class_probabilities(m(x)) for m in self.members]).mean(dim=0)
        return torch.log(probs.clamp_min(1e-12))
