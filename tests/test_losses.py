"""Tests of mmsheaf.losses: the registry, the uniform call, gradients, and that each loss can be minimised."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from mmsheaf.runs.space import CategoricalParam, FloatParam, IntParam, parse_space
from mmsheaf.losses import (
    METRIC_LOSSES,
    DenseNTXentLoss,
    LossSpec,
    MetricLoss,
    build_loss,
    resolve_loss,
    stack_views,
)
from pytorch_metric_learning.losses import NTXentLoss
from torch import Tensor

NAMES = list(METRIC_LOSSES)
NUM_CLASSES, IN_DIM, EMB_DIM = 4, 8, 16
NOISE = 0.5


def _toy(seed: int = 0, per_class: int = 16) -> tuple[Tensor, Tensor]:
    """4 Gaussian classes in 8-d, means 3 e_c, noise 0.5: separable."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(NUM_CLASSES).repeat_interleave(per_class)
    means = 3.0 * torch.eye(IN_DIM)[:NUM_CLASSES]
    return means[labels] + NOISE * torch.randn(len(labels), IN_DIM, generator=g), labels


def _batch(spec: LossSpec, x: Tensor, labels: Tensor, g: torch.Generator) -> tuple[Tensor, Tensor, Tensor]:
    """(inputs of the embedding model, labels of the loss): two noisy views of each row for NT-Xent."""
    if spec.views == 2:
        view1 = x + 0.3 * torch.randn(x.shape, generator=g)
        view2 = x + 0.3 * torch.randn(x.shape, generator=g)
        inputs, ids = stack_views(view1, view2)
        return inputs, ids, labels
    return x, labels, labels


def test_registry_order_and_specs() -> None:
    assert NAMES == [
        "arcface",
        "subcenter-arcface",
        "cosface",
        "normsoftmax",
        "supcon",
        "ntxent",
        "triplet",
        "multisimilarity",
    ]
    for name, spec in METRIC_LOSSES.items():
        assert spec.name == name
        assert spec.family == ("angular-margin" if name in NAMES[:4] else "contrastive")
        assert spec.has_head == (spec.family == "angular-margin")
        assert spec.views == (2 if name == "ntxent" else 1)
    assert METRIC_LOSSES["arcface"].display == "ArcFace"
    assert METRIC_LOSSES["triplet"].display == "Triplet (semi-hard)"


def test_resolve_is_case_insensitive_and_lists_names() -> None:
    assert resolve_loss("ArcFace") is METRIC_LOSSES["arcface"]
    assert resolve_loss("NTXENT") is METRIC_LOSSES["ntxent"]
    with pytest.raises(ValueError, match=r"Unknown loss 'softtriple': choose one of arcface, .*, triplet"):
        resolve_loss("softtriple")
    with pytest.raises(ValueError, match="Unknown loss"):
        build_loss("nope", NUM_CLASSES, EMB_DIM)


def test_unknown_hparam_names_the_allowed_ones() -> None:
    message = r"hyperparameter\(s\) temperature for loss 'arcface': it takes margin, scale"
    with pytest.raises(ValueError, match=message):
        build_loss("arcface", NUM_CLASSES, EMB_DIM, temperature=0.1)
    with pytest.raises(ValueError, match="num_classes must be a positive int"):
        build_loss("cosface", 0, EMB_DIM)


def test_defaults_are_filled_in_and_overridden() -> None:
    loss = build_loss("arcface", NUM_CLASSES, EMB_DIM, margin=20.0)
    assert loss.hparams == {"margin": 20.0, "scale": 64.0}
    assert loss.loss.margin == pytest.approx(math.radians(20.0))  # PML takes degrees
    assert loss.loss.scale == 64.0
    assert loss.spec is METRIC_LOSSES["arcface"]
    sub = build_loss("subcenter-arcface", NUM_CLASSES, EMB_DIM, sub_centers=2)
    assert sub.loss.W.shape == (EMB_DIM, NUM_CLASSES * 2)
    ms = build_loss("multisimilarity", NUM_CLASSES, EMB_DIM, epsilon=0.2)
    assert ms.miner is not None and ms.miner.epsilon == 0.2 and ms.loss.beta == 50.0
    trip = build_loss("triplet", NUM_CLASSES, EMB_DIM, margin=0.3)
    assert trip.loss.margin == trip.miner.margin == 0.3
    assert trip.miner.type_of_triplets == "semihard"


@pytest.mark.parametrize("name", NAMES)
def test_search_space_parses_and_contains_the_defaults(name: str) -> None:
    spec = METRIC_LOSSES[name]
    space = parse_space(spec.search)
    assert set(space) == set(spec.defaults)
    for key, param in space.items():
        value = spec.defaults[key]
        if isinstance(param, (FloatParam, IntParam)):
            assert param.low <= value <= param.high, f"{name}.{key}={value} outside {param}"
        else:
            assert isinstance(param, CategoricalParam) and value in param.choices


@pytest.mark.parametrize("name", NAMES)
def test_finite_scalar_with_gradients(name: str) -> None:
    torch.manual_seed(0)
    spec = METRIC_LOSSES[name]
    loss = build_loss(name, NUM_CLASSES, EMB_DIM)
    assert isinstance(loss, MetricLoss) and loss.has_head == spec.has_head
    raw = torch.randn(32, EMB_DIM, requires_grad=True)
    labels = torch.arange(32) % NUM_CLASSES
    if spec.views == 2:
        embeddings, labels = stack_views(raw[:16], raw[16:])
    else:
        embeddings = raw
    value = loss(F.normalize(embeddings, dim=1), labels)
    assert value.dim() == 0 and torch.isfinite(value) and value >= 0  # all of them are nonnegative
    value.backward()
    assert raw.grad is not None and torch.isfinite(raw.grad).all() and raw.grad.abs().sum() > 0
    params = list(loss.parameters())
    assert len(params) == (1 if spec.has_head else 0)
    for p in params:
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0


@pytest.mark.parametrize("name", NAMES)
def test_loss_decreases_on_separable_toy_data(name: str) -> None:
    torch.manual_seed(0)
    spec = METRIC_LOSSES[name]
    x, labels = _toy()
    model = torch.nn.Linear(IN_DIM, EMB_DIM)
    loss = build_loss(name, NUM_CLASSES, EMB_DIM)
    opt = torch.optim.Adam([*model.parameters(), *loss.parameters()], lr=0.05)
    fixed = _batch(spec, x, labels, torch.Generator().manual_seed(1))

    def evaluate() -> float:
        with torch.no_grad():
            return loss(F.normalize(model(fixed[0]), dim=1), fixed[1]).item()

    g = torch.Generator().manual_seed(2)
    before = evaluate()
    for _ in range(40):
        inputs, targets, _ = _batch(spec, x, labels, g)
        opt.zero_grad()
        loss(F.normalize(model(inputs), dim=1), targets).backward()
        opt.step()
    after = evaluate()
    # SupCon cannot go below log(15) = 2.71 here (15 positives per anchor) and starts at 3.0: ask for 5%
    assert 0 <= after < 0.95 * before, f"{name}: {before:.4f} -> {after:.4f}"


def test_two_views_input() -> None:
    v1, v2 = torch.randn(5, 3), torch.randn(5, 3)
    embeddings, ids = stack_views(v1, v2)
    assert embeddings.shape == (10, 3) and ids.tolist() == [0, 1, 2, 3, 4, 0, 1, 2, 3, 4]
    with pytest.raises(ValueError, match="same shape"):
        stack_views(v1, v2[:4])
    with pytest.raises(ValueError, match="two views per row"):
        build_loss("ntxent", 1, 3)(torch.randn(5, 3), torch.arange(5))


def test_bad_inputs_are_rejected() -> None:
    loss = build_loss("arcface", NUM_CLASSES, EMB_DIM)
    x = torch.randn(6, EMB_DIM)
    with pytest.raises(ValueError, match=r"labels must lie in 0\.\.3, got 0\.\.4"):
        loss(x, torch.tensor([0, 1, 2, 3, 4, 0]))
    with pytest.raises(ValueError, match="long tensor"):
        loss(x, torch.zeros(6))
    with pytest.raises(ValueError, match=r"labels must be \(B,\)"):
        loss(x, torch.zeros(5, dtype=torch.long))
    with pytest.raises(ValueError, match=r"embeddings must be \(B, D\)"):
        loss(x[0], torch.zeros(1, dtype=torch.long))


@pytest.mark.parametrize("name", [n for n in NAMES if METRIC_LOSSES[n].has_head])
def test_logits_of_heads_predict_their_proxies(name: str) -> None:
    loss = build_loss(name, NUM_CLASSES, EMB_DIM)
    proxies = loss.loss.W.detach().t()  # (C * K, D): each proxy is the most similar to itself
    k = proxies.shape[0] // NUM_CLASSES
    logits = loss.logits(proxies)
    assert logits.shape == (len(proxies), NUM_CLASSES)
    # PML's sub-centers of class c are columns c*K .. c*K + K-1
    assert logits.argmax(dim=1).tolist() == (torch.arange(len(proxies)) // k).tolist()


def test_logits_without_head_is_an_error() -> None:
    with pytest.raises(ValueError, match="'supcon' has no class head"):
        build_loss("supcon", NUM_CLASSES, EMB_DIM).logits(torch.randn(3, EMB_DIM))


@pytest.mark.parametrize("name", ["triplet", "multisimilarity"])
def test_miner_selects_the_tuples(name: str) -> None:
    torch.manual_seed(0)
    loss = build_loss(name, NUM_CLASSES, EMB_DIM)
    x = F.normalize(torch.randn(32, EMB_DIM), dim=1)
    labels = torch.arange(32) % NUM_CLASSES
    mined = loss.loss(x, labels, loss.miner(x, labels))
    assert loss(x, labels).item() == pytest.approx(mined.item())
    assert mined.item() != pytest.approx(loss.loss(x, labels).item())  # all tuples give another value


@pytest.mark.parametrize("labels", [
    torch.arange(6).repeat(2),  # two views of 6 rows: one positive per anchor (notebook 03's use)
    torch.tensor([0, 0, 0, 1, 1, 2, 2, 2, 2, 3, 3, 4]),  # several positives per anchor
    torch.tensor([0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1]),  # one dominant class: some anchors have few negatives
])  # fmt: skip
@pytest.mark.parametrize("temperature", [0.05, 0.5])
def test_dense_ntxent_equals_pml_ntxent(labels: Tensor, temperature: float) -> None:
    """The (B, B)-matrix NT-Xent has PML's values and gradients (PML's own class as the reference)."""
    g = torch.Generator().manual_seed(int(labels.sum()))
    x = torch.randn(labels.numel(), 5, generator=g, dtype=torch.float64)
    x_ref, x_new = x.clone().requires_grad_(), x.clone().requires_grad_()
    ref = NTXentLoss(temperature=temperature)(x_ref, labels)
    new = DenseNTXentLoss(temperature=temperature)(x_new, labels)
    ref.backward()
    new.backward()
    assert new.item() > 0
    torch.testing.assert_close(new, ref, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(x_new.grad, x_ref.grad, rtol=1e-8, atol=1e-10)


def test_dense_ntxent_without_pairs_is_zero() -> None:
    x = torch.randn(4, 3, requires_grad=True)
    assert DenseNTXentLoss()(x, torch.arange(4)).item() == 0.0  # no positives
    assert DenseNTXentLoss()(x, torch.zeros(4, dtype=torch.long)).item() == 0.0  # no negatives


def test_ntxent_is_the_dense_implementation() -> None:
    assert isinstance(build_loss("ntxent", 1, 3).loss, DenseNTXentLoss)
