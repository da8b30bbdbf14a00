"""Feature extractors (AE / DAE / VAE) and what every network shares (configurations, blocks,
checks); the response head and the deployable models are in :mod:`scdeal.nn.networks`.

All inputs are per-gene standardised expression (z-scores), so decoders end with a plain
``Linear`` (no sigmoid). Compared with the original scDEAL code (method notes §4, §5.3, §5.4,
§12) these modules deliberately differ:

* every hidden block has a non-linearity (the original AE/DAE was affine);
* the DAE reconstructs the CLEAN input from a corrupted copy (the original masked its own target
  in place, so it never learned to denoise);
* the VAE embeds with the mean ``mu`` and never samples outside training;
* the head returns logits for a softmax (the original put two sigmoids under cross-entropy);
* :meth:`DrugResponseNet.predict_proba` and :class:`SensitivityProbability` run in eval mode,
  so predictions and attributions are deterministic (the original predicted in train mode).

Output column order everywhere: 0 = resistant, 1 = sensitive.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, fields
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from scdeal._types import Activation, ExtractorKind, NoiseKind, choices
from scdeal.errors import ScdealError

__all__ = [
    "RESISTANT",
    "SENSITIVE",
    "Activation",
    "ExtractorConfig",
    "ExtractorKind",
    "ExtractorLossTerms",
    "ExtractorOutput",
    "FeatureExtractor",
    "SeededDropout",
    "use_generator",
    "NoiseKind",
    "PredictorConfig",
    "config_for",
]

RESISTANT = 0
SENSITIVE = 1

_ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "leaky_relu": nn.LeakyReLU,  # negative slope 0.01, as in the original VAE
    "elu": nn.ELU,
    "gelu": nn.GELU,
}


@dataclass(frozen=True)
class ExtractorConfig:
    """Architecture of a :class:`FeatureExtractor` (enough to rebuild it from a checkpoint).

    Examples
    --------
    >>> fe = FeatureExtractor(20, [8], 4, kind="dae")
    >>> fe.config
    ExtractorConfig(n_genes=20, hidden_dims=(8,), latent_dim=4, kind='dae', dropout=0.1, batch_norm=True, activation='relu', noise='mask', noise_rate=0.2)
    >>> FeatureExtractor.from_config(fe.config).latent_dim
    4
    """

    n_genes: int
    hidden_dims: tuple[int, ...]
    latent_dim: int
    kind: ExtractorKind = "ae"
    dropout: float = 0.1
    batch_norm: bool = True
    activation: Activation = "relu"
    noise: NoiseKind = "mask"
    noise_rate: float = 0.2


@dataclass(frozen=True)
class PredictorConfig:
    """Architecture of a :class:`ResponsePredictor`.

    Examples
    --------
    >>> from scdeal.nn import ResponsePredictor
    >>> config = PredictorConfig(latent_dim=4, hidden_dims=(8,))
    >>> head = ResponsePredictor.from_config(config).eval()
    >>> head(torch.zeros(3, 4)).shape          # resistant and sensitive logits per cell
    torch.Size([3, 2])
    """

    latent_dim: int
    hidden_dims: tuple[int, ...]
    dropout: float = 0.1
    batch_norm: bool = True
    activation: Activation = "relu"


class ExtractorOutput(NamedTuple):
    """What :meth:`FeatureExtractor.forward` returns.

    ``recon`` is the reconstruction, ``z`` the code fed to the decoder (a sample for a VAE in
    training mode, otherwise deterministic); ``mu`` and ``logvar`` are ``None`` unless VAE.

    Examples
    --------
    >>> out = FeatureExtractor(10, [8], 4).eval()(torch.randn(5, 10))
    >>> out.recon.shape, out.z.shape, out.mu is None
    (torch.Size([5, 10]), torch.Size([5, 4]), True)
    """

    recon: Tensor
    z: Tensor
    mu: Tensor | None = None
    logvar: Tensor | None = None


def config_for(config_type: type, options: object, **given) -> ExtractorConfig | PredictorConfig:
    """An :class:`ExtractorConfig` or :class:`PredictorConfig` taking each field from
    ``given`` or else from the same-named attribute of ``options`` (e.g. a model's
    configuration), so the argument lists are written once, in the dataclasses.

    Examples
    --------
    >>> from types import SimpleNamespace
    >>> opts = SimpleNamespace(hidden_dims=(8,), latent_dim=4, dropout=0.0, batch_norm=False,
    ...                        activation="elu")
    >>> config_for(PredictorConfig, opts)
    PredictorConfig(latent_dim=4, hidden_dims=(8,), dropout=0.0, batch_norm=False, activation='elu')
    """
    names = [f.name for f in fields(config_type)]
    return config_type(**{n: given[n] if n in given else getattr(options, n) for n in names})


class ExtractorLossTerms(NamedTuple):
    """The two parts of the extractor loss; ``kl`` is 0 unless VAE (see :meth:`FeatureExtractor.loss`).

    Examples
    --------
    >>> fe = FeatureExtractor(10, [8], 4, kind="ae")
    >>> x = torch.randn(16, 10)
    >>> terms = fe.loss_terms(x, fe(x))
    >>> terms.reconstruction.item() > 0, terms.kl.item()
    (True, 0.0)
    """

    reconstruction: Tensor
    kl: Tensor


def _check_dims(name: str, dims: Sequence[int], *, allow_empty: bool) -> tuple[int, ...]:
    dims = tuple(int(d) for d in dims)
    if not dims and not allow_empty:
        raise ScdealError(f"{name} is empty; give at least one layer width")
    if any(d < 1 for d in dims):
        raise ScdealError(f"{name}={list(dims)} has a width below 1; use positive layer widths")
    return dims


def _check_choice(name: str, value: str, choices) -> None:
    if value not in choices:
        raise ScdealError(f"{name}={value!r} is not supported; use one of {sorted(choices)}")


def _check_dropout(dropout: float) -> None:
    if not 0.0 <= dropout < 1.0:
        raise ScdealError(f"dropout={dropout} is outside [0, 1); use a rate such as 0.1")


class SeededDropout(nn.Dropout):
    """``nn.Dropout`` that draws its mask from ``self.generator`` when one is set (see
    :func:`use_generator`), so that networks trained side by side in threads each have their
    own reproducible stream; with none set it is ``nn.Dropout``.

    Examples
    --------
    >>> drop = SeededDropout(0.5)
    >>> x = torch.ones(2, 6)
    >>> def masked(seed):
    ...     drop.generator = torch.Generator().manual_seed(seed)
    ...     return drop(x)
    >>> bool(torch.equal(masked(0), masked(0))), sorted(masked(0).unique().tolist())
    (True, [0.0, 2.0])
    """

    generator: torch.Generator | None = None

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.p == 0 or self.generator is None:
            return super().forward(x)
        keep = torch.rand(x.shape, generator=self.generator, device=x.device,
                          dtype=x.dtype) >= self.p
        return x * keep / (1.0 - self.p)


@contextlib.contextmanager
def use_generator(modules: Sequence[nn.Module], generator: torch.Generator) -> Iterator[None]:
    """Draw the dropout masks, DAE corruption and VAE samples of ``modules`` from
    ``generator`` inside the block (torch's global RNG again afterwards).

    Examples
    --------
    >>> fe = FeatureExtractor(6, [4], 2, kind="dae", dropout=0.5)
    >>> x = torch.ones(3, 6)
    >>> def draw(seed):
    ...     with use_generator([fe], torch.Generator().manual_seed(seed)):
    ...         return fe(x).z
    >>> bool(torch.equal(draw(1), draw(1))), fe.generator is None
    (True, True)
    """
    owners = [m for module in modules for m in module.modules()
              if isinstance(m, SeededDropout | FeatureExtractor)]
    for m in owners:
        m.generator = generator
    try:
        yield
    finally:
        for m in owners:
            m.generator = None


def _mlp_blocks(
    widths: Sequence[int], *, dropout: float, batch_norm: bool, activation: str
) -> nn.Sequential:
    """Linear -> [BatchNorm1d] -> activation -> Dropout for each consecutive pair of widths."""
    layers: list[nn.Module] = []
    for n_in, n_out in zip(widths[:-1], widths[1:], strict=True):
        layers.append(nn.Linear(n_in, n_out))
        if batch_norm:
            layers.append(nn.BatchNorm1d(n_out))
        layers.append(_ACTIVATIONS[activation]())
        if dropout > 0:
            layers.append(SeededDropout(dropout))
    return nn.Sequential(*layers)


def _check_matrix(x: Tensor, n_features: int, what: str) -> None:
    if x.dim() != 2 or x.shape[1] != n_features:
        raise ScdealError(
            f"{what} has shape {tuple(x.shape)} but the model expects (n_cells, {n_features}); "
            "align the features to the ones the model was built with"
        )


class FeatureExtractor(nn.Module):
    """Autoencoder feature extractor: plain (``"ae"``), denoising (``"dae"``) or variational (``"vae"``).

    Encoder: for each width in ``hidden_dims`` a block Linear -> [BatchNorm1d] -> activation ->
    Dropout, then a latent head Linear(h_last -> latent_dim) (two heads, ``mu`` and ``logvar``,
    for a VAE). The decoder mirrors it: Linear(latent -> h_last) -> [BN] -> act -> Dropout ... ->
    Linear(h_1 -> n_genes), with no output non-linearity because inputs are z-scores.

    Parameters
    ----------
    n_genes
        Number of input genes.
    hidden_dims
        Widths of the encoder's hidden blocks, first to last (may be empty).
    latent_dim
        Width of the embedding.
    kind
        ``"ae"``, ``"dae"`` (corrupts its input in training mode, reconstructs the clean one) or
        ``"vae"``.
    dropout, batch_norm, activation
        Hidden-block options (dropout rate, whether to use BatchNorm1d, non-linearity).
    noise, noise_rate
        DAE corruption: ``"mask"`` zeroes a Bernoulli(``noise_rate``) fraction of entries (0 is
        the gene mean for z-scores); ``"gaussian"`` adds N(0, ``noise_rate**2``) noise.

    Examples
    --------
    >>> fe = FeatureExtractor(100, [64, 32], 16, kind="vae").eval()
    >>> fe.encode(torch.randn(8, 100)).shape
    torch.Size([8, 16])
    """

    # Source of DAE corruption and VAE samples when set (use_generator); else torch's RNG.
    generator: torch.Generator | None = None

    def __init__(
        self,
        n_genes: int,
        hidden_dims: Sequence[int],
        latent_dim: int,
        *,
        kind: ExtractorKind = "ae",
        dropout: float = 0.1,
        batch_norm: bool = True,
        activation: Activation = "relu",
        noise: NoiseKind = "mask",
        noise_rate: float = 0.2,
    ) -> None:
        super().__init__()
        if n_genes < 1 or latent_dim < 1:
            raise ScdealError(
                f"n_genes={n_genes} and latent_dim={latent_dim} must both be at least 1; "
                "check the input matrix and the latent size"
            )
        hidden = _check_dims("hidden_dims", hidden_dims, allow_empty=True)
        _check_choice("kind", kind, choices(ExtractorKind))
        _check_choice("activation", activation, _ACTIVATIONS.keys())
        _check_choice("noise", noise, {"mask", "gaussian"})
        _check_dropout(dropout)
        if noise == "mask" and not 0.0 <= noise_rate < 1.0:
            raise ScdealError(
                f"noise_rate={noise_rate} is outside [0, 1) for masking; use e.g. 0.2"
            )
        if noise == "gaussian" and noise_rate < 0:
            raise ScdealError(
                f"noise_rate={noise_rate} is negative; give a noise standard deviation >= 0"
            )
        self.config = ExtractorConfig(
            n_genes=int(n_genes),
            hidden_dims=hidden,
            latent_dim=int(latent_dim),
            kind=kind,
            dropout=float(dropout),
            batch_norm=bool(batch_norm),
            activation=activation,
            noise=noise,
            noise_rate=float(noise_rate),
        )
        block = {"dropout": dropout, "batch_norm": batch_norm, "activation": activation}
        enc_widths = (n_genes, *hidden)
        self.encoder = _mlp_blocks(enc_widths, **block)
        h_last = enc_widths[-1]
        if kind == "vae":
            self.fc_mu = nn.Linear(h_last, latent_dim)
            self.fc_logvar = nn.Linear(h_last, latent_dim)
        else:
            self.latent = nn.Linear(h_last, latent_dim)
        if hidden:
            self.decoder_hidden = _mlp_blocks((latent_dim, *hidden[::-1]), **block)
            self.decoder_out = nn.Linear(hidden[0], n_genes)
        else:
            self.decoder_hidden = nn.Sequential()
            self.decoder_out = nn.Linear(latent_dim, n_genes)

    @classmethod
    def from_config(cls, config: ExtractorConfig) -> FeatureExtractor:
        """Build an extractor from an :class:`ExtractorConfig` (e.g. read from a checkpoint)."""
        return cls(**asdict(config))

    @property
    def kind(self) -> ExtractorKind:
        return self.config.kind

    @property
    def n_genes(self) -> int:
        return self.config.n_genes

    @property
    def latent_dim(self) -> int:
        return self.config.latent_dim

    def _heads(self, x: Tensor) -> tuple[Tensor, Tensor | None]:
        _check_matrix(x, self.n_genes, "expression matrix")
        h = self.encoder(x)
        if self.kind == "vae":
            return self.fc_mu(h), self.fc_logvar(h)
        return self.latent(h), None

    def encode(self, x: Tensor) -> Tensor:
        """Deterministic embedding: the latent code (AE/DAE) or the mean ``mu`` (VAE).

        Never corrupts or samples. Dropout and BatchNorm follow the module's mode, so call
        ``.eval()`` for reproducible embeddings.
        """
        return self._heads(x)[0]

    def decode(self, z: Tensor) -> Tensor:
        """Reconstruct (standardised) expression from latent codes."""
        _check_matrix(z, self.latent_dim, "latent matrix")
        return self.decoder_out(self.decoder_hidden(z))

    def corrupt(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Return a corrupted COPY of ``x`` (DAE only); ``x`` itself is never modified.

        ``"mask"`` sets each entry to 0 with probability ``noise_rate``; ``"gaussian"`` adds
        independent N(0, ``noise_rate**2``) noise. ``generator`` (on ``x``'s device) makes the
        corruption reproducible; otherwise torch's global RNG is used.

        Examples
        --------
        >>> fe = FeatureExtractor(4, [3], 2, kind="dae", noise_rate=0.5)
        >>> x = torch.ones(2, 4)
        >>> fe.corrupt(x).shape, bool((x == 1).all())
        (torch.Size([2, 4]), True)
        """
        if self.kind != "dae":
            raise ScdealError(
                f"corrupt() is only defined for kind='dae' but this extractor is {self.kind!r}; "
                "build the extractor with kind='dae'"
            )
        rate = self.config.noise_rate
        if generator is None:
            generator = self.generator
        if self.config.noise == "mask":
            keep = torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype) >= rate
            # The entries of masked_fill(~keep, 0) (up to the sign of a zero), in about half
            # the time of masked_fill on the CPU.
            return x * keep
        noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        return x + rate * noise

    def forward(self, x: Tensor) -> ExtractorOutput:
        """Encode and reconstruct ``x``.

        In training mode a DAE encodes a corrupted copy of ``x`` and a VAE decodes a
        reparameterised sample z = mu + eps * exp(logvar / 2); in eval mode neither happens.
        """
        inputs = self.corrupt(x) if (self.training and self.kind == "dae") else x
        code, logvar = self._heads(inputs)
        if self.kind != "vae":
            return ExtractorOutput(recon=self.decode(code), z=code)
        mu = code
        if self.training:
            eps = torch.randn(mu.shape, generator=self.generator, device=mu.device,
                              dtype=mu.dtype)
            z = mu + eps * torch.exp(0.5 * logvar)
        else:
            z = mu
        return ExtractorOutput(recon=self.decode(z), z=z, mu=mu, logvar=logvar)

    def loss_terms(self, x: Tensor, out: ExtractorOutput) -> ExtractorLossTerms:
        """Reconstruction MSE against the clean ``x`` and the per-gene-scaled KL (0 unless VAE).

        See :meth:`loss` for the scaling.
        """
        if out.recon.shape != x.shape:
            raise ScdealError(
                f"reconstruction shape {tuple(out.recon.shape)} differs from input shape "
                f"{tuple(x.shape)}; pass the same (clean) batch that was given to forward()"
            )
        reconstruction = F.mse_loss(out.recon, x, reduction="mean")
        if self.kind != "vae" or out.mu is None or out.logvar is None:
            return ExtractorLossTerms(reconstruction, reconstruction.new_zeros(()))
        kl_per_cell = -0.5 * torch.sum(1 + out.logvar - out.mu.pow(2) - out.logvar.exp(), dim=1)
        return ExtractorLossTerms(reconstruction, kl_per_cell.mean() / self.n_genes)

    def loss(self, x: Tensor, out: ExtractorOutput, kl_weight: float = 1.0) -> Tensor:
        r"""Training loss of the extractor: MSE(recon, clean x) + ``kl_weight`` * KL / n_genes.

        The reconstruction term is the mean squared error over cells and genes, always against
        the CLEAN input (for a DAE pass the uncorrupted batch that was given to ``forward``).
        For a VAE the KL term is

        .. math:: \mathrm{KL} = \frac{1}{n G} \sum_{i=1}^{n} -\tfrac12 \sum_{l}
                  (1 + \log\sigma^2_{il} - \mu_{il}^2 - \sigma^2_{il}),

        i.e. the per-cell KL(q(z|x) || N(0, I)) summed over latent dimensions, averaged over
        cells and divided by the number of genes G. With ``kl_weight=1`` the total equals
        ``-ELBO / (n G)`` for a Gaussian decoder of variance 1/2 (per-cell summed squared error
        plus per-cell KL, both divided by G), so "MSE + KL" as in the paper is a proper
        (beta = 1) VAE whose two terms are on the same per-gene scale. Without the 1/G the KL
        of a 500-dim latent would swamp a per-entry MSE near 1.

        Examples
        --------
        >>> fe = FeatureExtractor(10, [8], 4, kind="vae")
        >>> x = torch.randn(16, 10)
        >>> fe.loss(x, fe(x)).dim()
        0
        """
        terms = self.loss_terms(x, out)
        return terms.reconstruction + kl_weight * terms.kl
