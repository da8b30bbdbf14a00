"""Tests for scdeal.nn: networks and losses, checked against direct numpy computations."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.distributions import Normal, kl_divergence

from scdeal.errors import ScdealError
from scdeal.nn import (
    DrugResponseNet,
    ExtractorOutput,
    FeatureExtractor,
    ResponsePredictor,
    SensitivityProbability,
    classification_loss,
    cluster_consistency_loss,
    gaussian_kernel_bandwidths,
    median_bandwidth,
    mmd2_biased,
    mmd2_unbiased,
    sensitive_probability,
)

# ---------------------------------------------------------------- numpy references


def _np_kernel(u: np.ndarray, v: np.ndarray, bandwidths: np.ndarray) -> float:
    sq = float(np.sum((u - v) ** 2))
    return float(np.mean([np.exp(-sq / bw) for bw in bandwidths]))


def _np_mmd2(x: np.ndarray, y: np.ndarray, bandwidths: np.ndarray, *, unbiased: bool) -> float:
    m, n = len(x), len(y)
    xx = sum(
        _np_kernel(x[i], x[j], bandwidths)
        for i in range(m)
        for j in range(m)
        if not (unbiased and i == j)
    )
    yy = sum(
        _np_kernel(y[i], y[j], bandwidths)
        for i in range(n)
        for j in range(n)
        if not (unbiased and i == j)
    )
    xy = sum(_np_kernel(x[i], y[j], bandwidths) for i in range(m) for j in range(n))
    if unbiased:
        return xx / (m * (m - 1)) + yy / (n * (n - 1)) - 2 * xy / (m * n)
    return xx / m**2 + yy / n**2 - 2 * xy / (m * n)


def _np_median_sq_dist(x: np.ndarray, y: np.ndarray) -> float:
    z = np.concatenate([x, y])
    d = ((z[:, None, :] - z[None, :, :]) ** 2).sum(-1)
    return float(np.median(d[~np.eye(len(z), dtype=bool)]))


@pytest.fixture
def small_xy():
    torch.manual_seed(0)
    x = torch.randn(6, 3, dtype=torch.float64)
    y = torch.randn(4, 3, dtype=torch.float64) + 0.7
    return x, y


# ---------------------------------------------------------------- MMD


@pytest.mark.parametrize("bandwidths", [[1.5], [0.5, 2.0, 8.0]], ids=["single", "multi"])
def test_mmd2_unbiased_matches_double_loop(small_xy, bandwidths):
    x, y = small_xy
    bw = np.array(bandwidths)
    got = mmd2_unbiased(x, y, bandwidths=torch.tensor(bw))
    want = _np_mmd2(x.numpy(), y.numpy(), bw, unbiased=True)
    assert got.item() == pytest.approx(want, rel=1e-10, abs=1e-12)


@pytest.mark.parametrize("bandwidths", [[1.5], [0.5, 2.0, 8.0]], ids=["single", "multi"])
def test_mmd2_biased_matches_double_loop(small_xy, bandwidths):
    x, y = small_xy
    bw = np.array(bandwidths)
    got = mmd2_biased(x, y, bandwidths=torch.tensor(bw))
    want = _np_mmd2(x.numpy(), y.numpy(), bw, unbiased=False)
    assert got.item() == pytest.approx(want, rel=1e-10, abs=1e-12)
    # The two estimators genuinely differ (diagonal terms), so the tests above are not vacuous.
    assert got.item() != pytest.approx(_np_mmd2(x.numpy(), y.numpy(), bw, unbiased=True))


def test_median_bandwidth_matches_numpy(small_xy):
    x, y = small_xy  # 10 pooled points -> 45 pairs (odd)
    assert median_bandwidth(x, y).item() == pytest.approx(_np_median_sq_dist(x.numpy(), y.numpy()))
    x2 = x[:5]  # 9 pooled points -> 36 pairs (even): numpy averages the two middle values
    assert median_bandwidth(x2, y).item() == pytest.approx(
        _np_median_sq_dist(x2.numpy(), y.numpy())
    )


def test_median_bandwidth_is_detached_and_guarded():
    x = torch.randn(5, 2, requires_grad=True)
    assert not median_bandwidth(x, x).requires_grad
    same = torch.zeros(4, 2)
    assert median_bandwidth(same, same).item() == 1.0  # all distances 0 -> fallback 1
    # 6 of 10 pairs coincide -> median 0 -> mean squared distance (4 pairs at distance 1) / 10
    mostly_same = torch.tensor([[0.0], [0.0], [0.0], [0.0]])
    assert median_bandwidth(mostly_same, torch.tensor([[1.0]])).item() == pytest.approx(0.4)


def test_default_bandwidths_follow_median_heuristic(small_xy):
    x, y = small_xy
    med = _np_median_sq_dist(x.numpy(), y.numpy())
    bws = gaussian_kernel_bandwidths(x, y, n_kernels=5, multiplier=2.0)
    np.testing.assert_allclose(bws.numpy(), med * 2.0 ** np.arange(-2, 3))
    fixed = gaussian_kernel_bandwidths(x, y, bandwidth=3.0)
    np.testing.assert_allclose(fixed.numpy(), [3.0])
    want = _np_mmd2(x.numpy(), y.numpy(), med * 2.0 ** np.arange(-2, 3), unbiased=True)
    assert mmd2_unbiased(x, y).item() == pytest.approx(want, rel=1e-10)


def test_mmd_near_zero_for_same_distribution_and_positive_for_shift():
    torch.manual_seed(1)
    x = torch.randn(200, 8)
    y_same = torch.randn(150, 8)
    y_shift = torch.randn(150, 8) + 1.0
    same = mmd2_unbiased(x, y_same).item()
    shifted = mmd2_unbiased(x, y_shift).item()
    assert abs(same) < 0.01
    assert shifted > 0.1
    assert shifted > 20 * abs(same)


def test_mmd_gradients_reach_both_inputs():
    torch.manual_seed(2)
    x = torch.randn(7, 4, dtype=torch.float64, requires_grad=True)
    y = (torch.randn(5, 4, dtype=torch.float64) + 0.5).requires_grad_()
    mmd2_unbiased(x, y).backward()
    for g in (x.grad, y.grad):
        assert g is not None and torch.isfinite(g).all() and g.abs().sum() > 0
    # Analytic gradient agrees with finite differences (bandwidths fixed, as the median is detached).
    bw = torch.tensor([1.0, 4.0], dtype=torch.float64)
    assert torch.autograd.gradcheck(
        lambda a, b: mmd2_unbiased(a, b, bandwidths=bw),
        (x.detach().requires_grad_(), y.detach().requires_grad_()),
    )


def test_mmd_bad_inputs():
    x = torch.randn(5, 3)
    with pytest.raises(ScdealError, match="features"):
        mmd2_unbiased(x, torch.randn(5, 4))
    with pytest.raises(ScdealError, match="at least 2"):
        mmd2_unbiased(x, torch.randn(1, 3))
    with pytest.raises(ScdealError, match="2-D"):
        mmd2_biased(torch.randn(5), torch.randn(5))
    with pytest.raises(ScdealError, match="positive"):
        mmd2_unbiased(x, x, bandwidths=torch.tensor([1.0, -1.0]))
    with pytest.raises(ScdealError, match="bandwidth"):
        gaussian_kernel_bandwidths(x, x, bandwidth=0.0)
    with pytest.raises(ScdealError, match="n_kernels"):
        gaussian_kernel_bandwidths(x, x, n_kernels=0)


# ---------------------------------------------------------------- feature extractors


def test_dae_corrupt_returns_new_tensor_and_leaves_input_alone():
    fe = FeatureExtractor(50, [16], 4, kind="dae", noise="mask", noise_rate=0.3)
    torch.manual_seed(3)
    x = torch.randn(40, 50)
    before = x.clone()
    xc = fe.corrupt(x)
    assert torch.equal(x, before)
    zeroed = (xc == 0) & (x != 0)
    assert 0.2 < zeroed.float().mean().item() < 0.4  # about noise_rate of the entries
    assert torch.equal(xc[~zeroed], x[~zeroed])  # the rest is untouched
    g1, g2 = torch.Generator().manual_seed(7), torch.Generator().manual_seed(7)
    assert torch.equal(fe.corrupt(x, generator=g1), fe.corrupt(x, generator=g2))

    gauss = FeatureExtractor(50, [16], 4, kind="dae", noise="gaussian", noise_rate=0.5)
    noise = gauss.corrupt(x) - x
    assert torch.equal(x, before)
    assert noise.std().item() == pytest.approx(0.5, rel=0.1)


def test_dae_loss_targets_clean_input():
    # No dropout / BatchNorm, so the only randomness in forward() is the corruption.
    fe = FeatureExtractor(30, [12], 5, kind="dae", dropout=0.0, batch_norm=False, noise_rate=0.4)
    torch.manual_seed(4)
    x = torch.randn(20, 30)
    before = x.clone()

    torch.manual_seed(11)
    x_corrupt = fe.corrupt(x)
    torch.manual_seed(11)
    fe.train()
    out = fe(x)
    assert torch.equal(x, before)  # forward() did not corrupt x in place

    fe.eval()
    with torch.no_grad():
        recon_of_corrupt = fe(x_corrupt).recon
        recon_clean_eval = fe(x).recon
    # Training forward encoded the corrupted copy; eval forward does not corrupt.
    torch.testing.assert_close(out.recon.detach(), recon_of_corrupt)
    assert not torch.allclose(recon_clean_eval, recon_of_corrupt)

    loss = fe.loss(x, out).item()
    r, xn, xcn = out.recon.detach().numpy(), x.numpy(), x_corrupt.numpy()
    assert loss == pytest.approx(float(np.mean((r - xn) ** 2)), rel=1e-6)
    assert abs(loss - float(np.mean((r - xcn) ** 2))) > 1e-3  # not the corrupted target


def test_vae_encode_is_deterministic_mean_in_eval():
    torch.manual_seed(5)
    fe = FeatureExtractor(25, [16, 8], 6, kind="vae", activation="leaky_relu")
    x = torch.randn(12, 25)
    fe.train()
    fe(x)  # update BatchNorm running statistics so eval differs from a fresh module
    fe.eval()
    with torch.no_grad():
        z1, z2 = fe.encode(x), fe.encode(x)
        out = fe(x)
    torch.testing.assert_close(z1, z2, rtol=0, atol=0)
    torch.testing.assert_close(z1, out.mu)
    torch.testing.assert_close(out.z, out.mu)  # no sampling in eval mode
    fe.train()
    out_train = fe(x)
    assert not torch.allclose(out_train.z, out_train.mu)  # reparameterised sample in training


def test_vae_loss_is_mse_plus_per_gene_kl():
    torch.manual_seed(6)
    n_genes = 20
    fe = FeatureExtractor(n_genes, [10], 4, kind="vae")
    x = torch.randn(16, n_genes)
    out = fe.train()(x)
    kl_cells = kl_divergence(
        Normal(out.mu, torch.exp(0.5 * out.logvar)), Normal(torch.zeros(()), torch.ones(()))
    ).sum(dim=1)
    mse = float(np.mean((out.recon.detach().numpy() - x.numpy()) ** 2))
    kl = kl_cells.mean().item() / n_genes
    assert fe.loss(x, out, kl_weight=1.0).item() == pytest.approx(mse + kl, rel=1e-5)
    assert fe.loss(x, out, kl_weight=0.25).item() == pytest.approx(mse + 0.25 * kl, rel=1e-5)
    terms = fe.loss_terms(x, out)
    assert terms.kl.item() == pytest.approx(kl, rel=1e-5) and kl > 0


def test_ae_forward_shapes_and_no_kl():
    fe = FeatureExtractor(15, [8, 6], 3, kind="ae", activation="gelu").eval()
    x = torch.randn(9, 15)
    out = fe(x)
    assert isinstance(out, ExtractorOutput)
    assert out.recon.shape == (9, 15) and out.z.shape == (9, 3)
    assert out.mu is None and out.logvar is None
    assert fe.loss_terms(x, out).kl.item() == 0.0
    # Non-linear: the encoder is not affine (the original AE was, method notes section 4.1).
    a, b = torch.randn(1, 15), torch.randn(1, 15)
    fe2 = FeatureExtractor(15, [8], 3, batch_norm=False, dropout=0.0).eval()
    with torch.no_grad():
        mid = fe2.encode((a + b) / 2)
        avg = (fe2.encode(a) + fe2.encode(b)) / 2
    assert not torch.allclose(mid, avg)


def test_extractor_round_trips_config():
    fe = FeatureExtractor(12, [8], 4, kind="dae", noise="gaussian", noise_rate=0.1)
    clone = FeatureExtractor.from_config(fe.config)
    assert clone.config == fe.config
    clone.load_state_dict(fe.state_dict())  # same architecture, strict load succeeds


def test_extractor_bad_inputs():
    with pytest.raises(ScdealError, match="kind"):
        FeatureExtractor(10, [5], 2, kind="gan")  # type: ignore[arg-type]
    with pytest.raises(ScdealError, match="activation"):
        FeatureExtractor(10, [5], 2, activation="tanh")  # type: ignore[arg-type]
    with pytest.raises(ScdealError, match="noise_rate"):
        FeatureExtractor(10, [5], 2, kind="dae", noise_rate=1.5)
    with pytest.raises(ScdealError, match="dropout"):
        FeatureExtractor(10, [5], 2, dropout=1.0)
    with pytest.raises(ScdealError, match="hidden_dims"):
        FeatureExtractor(10, [5, 0], 2)
    fe = FeatureExtractor(10, [5], 2)
    with pytest.raises(ScdealError, match="kind='dae'"):
        fe.corrupt(torch.randn(3, 10))
    with pytest.raises(ScdealError, match=r"\(n_cells, 10\)"):
        fe.encode(torch.randn(3, 11))


# ---------------------------------------------------------------- predictor and deployable model


def test_predictor_softmax_rows_sum_to_one():
    torch.manual_seed(7)
    head = ResponsePredictor(6, [5, 4], activation="elu").eval()
    logits = head(torch.randn(10, 6))
    assert logits.shape == (10, 2)
    probs = torch.softmax(logits, dim=1).detach().numpy()
    np.testing.assert_allclose(probs.sum(axis=1), np.ones(10), rtol=1e-6)
    assert ((probs > 0) & (probs < 1)).all()
    # Sensitive probability is column 1 of the softmax, computed independently in numpy.
    lg = logits.detach().numpy()
    want = np.exp(lg[:, 1]) / np.exp(lg).sum(axis=1)
    np.testing.assert_allclose(sensitive_probability(logits).detach().numpy(), want, rtol=1e-6)


def test_drug_response_net_predict_proba_eval_and_restores_mode():
    torch.manual_seed(8)
    net = DrugResponseNet(FeatureExtractor(20, [12], 6, kind="vae"), ResponsePredictor(6, [4]))
    x = torch.randn(15, 20)
    net.train()
    p1, p2 = net.predict_proba(x), net.predict_proba(x)
    assert net.training  # mode restored
    torch.testing.assert_close(p1, p2, rtol=0, atol=0)  # deterministic despite dropout / VAE
    assert p1.shape == (15,) and not p1.requires_grad
    net.eval()
    with torch.no_grad():
        want = torch.softmax(net.predictor(net.extractor.encode(x)), dim=1)[:, 1]
    torch.testing.assert_close(p1, want)


def test_sensitivity_probability_is_eval_softmax():
    torch.manual_seed(9)
    net = DrugResponseNet(FeatureExtractor(20, [12], 6), ResponsePredictor(6, [4])).train()
    wrapped = SensitivityProbability(net)
    assert not net.training
    x = torch.randn(5, 20, requires_grad=True)
    probs = wrapped(x)
    assert probs.shape == (5, 2)
    torch.testing.assert_close(probs.sum(dim=1), torch.ones(5))
    torch.testing.assert_close(probs[:, 1].detach(), net.predict_proba(x.detach()))
    probs[:, 1].sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0  # attributable w.r.t. genes


def test_drug_response_net_latent_mismatch():
    with pytest.raises(ScdealError, match="latent_dim"):
        DrugResponseNet(FeatureExtractor(10, [5], 3), ResponsePredictor(4, [2]))


# ---------------------------------------------------------------- cluster and classification losses


def test_cluster_consistency_matches_direct_computation():
    p_np = np.array([0.1, 0.5, 0.3, 0.9, 0.7, 0.2, 0.8, 0.4])
    c_np = np.array([2, 2, 2, 5, 5, 9, 7, 7])  # cluster 9 is a singleton and is skipped
    sizes = {c: int(np.sum(c_np == c)) for c in np.unique(c_np)}
    kept = [c for c, s in sizes.items() if s >= 2]
    total = sum(sizes[c] for c in kept)
    want = sum(
        sizes[c] / total * np.mean((p_np[c_np == c] - p_np[c_np == c].mean()) ** 2) for c in kept
    )
    prob = torch.tensor(p_np, requires_grad=True)
    loss = cluster_consistency_loss(prob, torch.tensor(c_np))
    assert loss.item() == pytest.approx(want, rel=1e-12)
    loss.backward()
    assert prob.grad is not None and prob.grad.abs().sum() > 0
    assert prob.grad[5].item() == 0.0  # the singleton gets no gradient


def test_cluster_consistency_zero_when_constant_within_clusters():
    prob = torch.tensor([0.2, 0.2, 0.9, 0.9, 0.9], requires_grad=True)
    loss = cluster_consistency_loss(prob, torch.tensor([0, 0, 1, 1, 1]))
    assert loss.item() == pytest.approx(0.0, abs=1e-12)  # float32 round-off only
    only_singletons = cluster_consistency_loss(prob, torch.arange(5))
    assert only_singletons.item() == 0.0 and only_singletons.requires_grad


def test_cluster_consistency_bad_inputs():
    with pytest.raises(ScdealError, match="one entry per cell"):
        cluster_consistency_loss(torch.rand(4), torch.tensor([0, 1, 1]))
    with pytest.raises(ScdealError, match="integer"):
        cluster_consistency_loss(torch.rand(3), torch.tensor([0.0, 1.0, 1.0]))


def test_classification_loss_matches_numpy():
    logits = torch.tensor([[2.0, -1.0], [0.5, 0.5], [-1.0, 3.0]], dtype=torch.float64)
    y = torch.tensor([0, 1, 0])
    lg = logits.numpy()
    logp = lg - np.log(np.exp(lg).sum(axis=1, keepdims=True))
    nll = -logp[np.arange(3), y.numpy()]
    assert classification_loss(logits, y).item() == pytest.approx(nll.mean())
    w = np.array([1.0, 3.0])
    wy = w[y.numpy()]
    got = classification_loss(logits, y, class_weight=torch.tensor(w)).item()
    assert got == pytest.approx((wy * nll).sum() / wy.sum())


def test_classification_loss_bad_inputs():
    with pytest.raises(ScdealError, match="other than 0 and 1"):
        classification_loss(torch.zeros(2, 2), torch.tensor([0, 2]))
    with pytest.raises(ScdealError, match="one label per row"):
        classification_loss(torch.zeros(3, 2), torch.tensor([0, 1]))
    with pytest.raises(ScdealError, match=r"\(n_cells, 2\)"):
        classification_loss(torch.zeros(3, 3), torch.tensor([0, 1, 1]))
    with pytest.raises(ScdealError, match="class_weight"):
        classification_loss(torch.zeros(2, 2), torch.tensor([0, 1]), class_weight=torch.ones(3))


# ---------------------------------------------------------------- optimiser


def _two_layer(seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(20, 16), torch.nn.ReLU(), torch.nn.Linear(16, 2))


def test_fused_adam_matches_torch_fused_adam_bit_for_bit():
    from scdeal.nn.optim import FusedAdam

    ours, theirs = _two_layer(0), _two_layer(0)
    opt_ours = FusedAdam(ours.parameters(), lr=1e-2, weight_decay=1e-3)
    opt_theirs = torch.optim.Adam(theirs.parameters(), lr=1e-2, weight_decay=1e-3, fused=True)
    gen = torch.Generator().manual_seed(1)
    x, y = torch.randn(64, 20, generator=gen), torch.randint(0, 2, (64,), generator=gen)
    for _ in range(30):
        for net, opt in ((ours, opt_ours), (theirs, opt_theirs)):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(net(x), y).backward()
            opt.step()
    assert all(torch.equal(a, b) for a, b in zip(ours.parameters(), theirs.parameters(), strict=True))
    state_ours, state_theirs = opt_ours.state_dict()["state"], opt_theirs.state_dict()["state"]
    for k in state_theirs:
        for name in ("step", "exp_avg", "exp_avg_sq"):
            assert torch.equal(state_ours[k][name], state_theirs[k][name])
    assert all(p.grad is not None for p in ours.parameters())
    opt_ours.zero_grad()
    assert all(p.grad is None for p in ours.parameters())
    with pytest.raises(ValueError, match="closure"):
        opt_ours.step(lambda: 0.0)


def test_training_does_not_import_torch_compiler():
    # The reason FusedAdam exists: torch's optimiser imports torch._dynamo (1.7 s per process).
    import subprocess
    import sys

    code = ("import sys, numpy as np\n"
            "from scdeal.model.config import ScDealConfig\n"
            "from scdeal.model._training import _optimizer\n"
            "import torch\n"
            "net = torch.nn.Linear(4, 2)\n"
            "opt = _optimizer(net.parameters(), ScDealConfig())\n"
            "net(torch.ones(3, 4)).sum().backward(); opt.step(); opt.zero_grad()\n"
            "print('torch._dynamo' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_cluster_consistency_of_several_drugs_is_the_mean_of_each():
    p = torch.rand(12, 3)
    clusters = torch.tensor([0, 0, 0, 1, 1, 2, 2, 2, 2, 3, 1, 0])
    each = [cluster_consistency_loss(p[:, d], clusters) for d in range(3)]
    assert torch.allclose(cluster_consistency_loss(p, clusters), torch.stack(each).mean())


def test_masked_response_loss_ignores_unlabelled_entries_and_weights_drugs_equally():
    from scdeal.nn import masked_response_loss

    logits = torch.randn(6, 2, requires_grad=True)
    y = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, 0.0], [1.0, 1.0], [0.0, 0.0]])
    weight = torch.tensor([[1.0, 0.0], [1.0, 0.0], [2.0, 0.0], [0.0, 0.0], [0.0, 3.0],
                           [0.0, 1.0]])
    loss = masked_response_loss(logits, y, weight)
    bce = torch.nn.functional.binary_cross_entropy_with_logits
    first = (bce(logits[:3, 0], y[:3, 0], reduction="none") * weight[:3, 0]).sum() / 4
    second = (bce(logits[4:, 1], y[4:, 1], reduction="none") * weight[4:, 1]).sum() / 4
    assert torch.allclose(loss, (first + second) / 2)
    loss.backward()
    assert logits.grad[3].abs().sum() == 0  # row 3 is labelled for no drug
    changed = y.clone()
    changed[3] = 1 - changed[3]  # labels where the weight is 0 change nothing
    assert torch.allclose(masked_response_loss(logits, changed, weight), loss)
