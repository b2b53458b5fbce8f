"""Tests of mmsheaf.huse.losses: hand-computed values, the direction of a gradient step (distance, not
similarity), the pair selection of the semantic-graph loss, missing modalities and the weighted sum."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from mmsheaf.huse.losses import (
    HuseLoss,
    HuseLossConfig,
    classification_loss,
    cosine_distance,
    cross_modal_gap_loss,
    observed_matrix,
    pairwise_cosine_distance,
    semantic_graph_loss,
)
from torch import Tensor

S = 1 / math.sqrt(2)


def _t(*rows: tuple[float, ...]) -> Tensor:
    return torch.tensor(rows, dtype=torch.float64)


def _unit(angles_deg: list[float]) -> Tensor:
    a = torch.tensor(angles_deg, dtype=torch.float64) * math.pi / 180
    return torch.stack([a.cos(), a.sin()], dim=1)


def _random_unit(seed: int, b: int, d: int) -> Tensor:
    g = torch.Generator().manual_seed(seed)
    return F.normalize(torch.randn(b, d, generator=g, dtype=torch.float64), dim=1)


# ------------------------------------------------------------------------------------------- distances
def test_cosine_distance_is_one_minus_cosine_and_scale_free() -> None:
    x = _t((1, 0), (1, 0), (1, 0), (2, 0))
    y = _t((0, 3), (5, 0), (-1, 0), (1, 1))
    torch.testing.assert_close(cosine_distance(x, y), torch.tensor([1.0, 0.0, 2.0, 1 - S], dtype=torch.float64))
    torch.testing.assert_close(pairwise_cosine_distance(x[:2], y[:2]), _t((1.0, 0.0), (1.0, 0.0)))


# ---------------------------------------------------------------------------------- hand-computed values
def test_classification_loss_hand_computed_mean_over_observed_pairs() -> None:
    logits = {"text": _t((0, 0, 0), (math.log(2), 0, 0)), "tab": _t((0, 0, math.log(3)), (0, 0, 0))}
    # labels (0, 1): text CE log 3 and -log(1/4); tabular CE -log(1/5) and log 3
    labels = torch.tensor([0, 1])
    expected = (math.log(3) + math.log(4) + math.log(5) + math.log(3)) / 4
    assert classification_loss(logits, labels).item() == pytest.approx(expected)
    # labels (0, 0): text row 1 CE -log(2/4)
    expected = (math.log(3) + math.log(2) + math.log(5) + math.log(3)) / 4
    assert classification_loss(logits, torch.tensor([0, 0])).item() == pytest.approx(expected)
    # tabular row 0 missing: the mean of the three observed terms
    observed = {"tab": torch.tensor([False, True])}
    expected = (math.log(3) + math.log(4) + math.log(3)) / 3
    assert classification_loss(logits, labels, observed).item() == pytest.approx(expected)


def test_semantic_graph_loss_hand_computed_with_its_pair_selection() -> None:
    """Two modalities, two rows, classes 0 and 1 at A = 0.8, margin 0.5. The stacked embeddings
    a0 = (1, 0), a1 = (0, 1), b0 = (1, 1)/sqrt2, b1 = (-1, 0) with labels 0, 1, 0, 1 give the pairs
    (a0, b0): A = 0 <= m, selected, error (1 - 1/sqrt2)^2;
    (a1, b1): A = 0, selected, error 1;
    (a1, b0): A = 0.8 > m but d = 1 - 1/sqrt2 <= m, selected, error (1 - 1/sqrt2 - 0.8)^2;
    (a0, a1), (a0, b1), (b0, b1): A and d both > m, left out. Ordered pairs, divided by M^2 = 16."""
    emb = {"a": _t((1, 0), (0, 1)), "b": _t((S, S), (-1, 0))}
    labels = torch.tensor([0, 1])
    a = _t((0.0, 0.8), (0.8, 0.0))
    d = 1 - S
    expected = 2 * (d**2 + 1.0 + (d - 0.8) ** 2) / 16
    assert semantic_graph_loss(emb, labels, a, 0.5).item() == pytest.approx(expected)
    # margin 2 selects every pair: the plain squared error over all pairs
    dist = pairwise_cosine_distance(torch.cat([emb["a"], emb["b"]]))
    y = torch.tensor([0, 1, 0, 1])
    everything = ((dist - a[y][:, y]) ** 2).mean().item()
    assert semantic_graph_loss(emb, labels, a, 2.0).item() == pytest.approx(everything)
    # margin 0 keeps the same-class pairs (A = 0 <= 0) and the pairs at distance 0 (the diagonal) only
    assert semantic_graph_loss(emb, labels, a, 0.0).item() == pytest.approx(2 * (d**2 + 1.0) / 16)


def test_cross_modal_gap_loss_hand_computed_for_two_and_three_modalities() -> None:
    two = {"a": _t((1, 0), (1, 0)), "b": _t((0, 1), (2, 0))}  # distances 1 and 0
    assert cross_modal_gap_loss(two).item() == pytest.approx(0.5)
    three = {**two, "c": _t((-1, 0), (0, 1))}  # row 0: 1, 2, 1; row 1: 0, 1, 1
    assert cross_modal_gap_loss(three).item() == pytest.approx(6 / 6)
    observed = {"c": torch.tensor([False, True])}  # row 0: (a, b) only
    assert cross_modal_gap_loss(three, observed).item() == pytest.approx((1 + 0 + 1 + 1) / 4)


def test_one_modality_has_zero_gap_and_still_backpropagates() -> None:
    x = _random_unit(0, 4, 3).requires_grad_()
    loss = cross_modal_gap_loss({"text": x})
    assert loss.item() == 0.0
    loss.backward()
    assert torch.equal(x.grad, torch.zeros_like(x))


# ------------------------------------------------------------------------------ direction of a gradient step
def _step(xs: list[Tensor], loss: Tensor, lr: float) -> list[Tensor]:
    """One SGD step of ``loss`` on the leaves ``xs`` (returned detached)."""
    grads = torch.autograd.grad(loss, xs)
    return [(x - lr * g).detach() for x, g in zip(xs, grads, strict=True)]


def test_gap_step_reduces_cosine_distance_and_the_similarity_sign_would_increase_it() -> None:
    """One SGD step on L_gap moves every row's two modalities closer; the same step on the mean cosine
    *similarity* (the sign some re-implementations use) moves every pair apart, so this test fails with it."""
    a = _random_unit(1, 8, 5).requires_grad_()
    b = _random_unit(2, 8, 5).requires_grad_()
    before = cosine_distance(a, b).detach()
    a1, b1 = _step([a, b], cross_modal_gap_loss({"text": a, "tab": b}), 0.1)
    assert (cosine_distance(a1, b1) < before).all()
    a2, b2 = _step([a, b], F.cosine_similarity(a, b).mean(), 0.1)  # the similarity sign
    assert (cosine_distance(a2, b2) > before).all()


def _pair_distance_after_step(u: Tensor, v: Tensor, target: float, lr: float = 0.05) -> tuple[float, float]:
    """A cross-modal pair (text row 0, tabular row 1) of classes 0 and 1 at class distance ``target``; the other
    two embeddings unobserved. Returns the pair's distance before and after one SGD step on L_graph."""
    text = torch.stack([u, torch.zeros_like(u)]).requires_grad_()
    tab = torch.stack([torch.zeros_like(v), v]).requires_grad_()
    emb = {"text": text, "tab": tab}
    observed = {"text": torch.tensor([True, False]), "tab": torch.tensor([False, True])}
    a = _t((0.0, target), (target, 0.0))
    labels = torch.tensor([0, 1])
    loss = semantic_graph_loss(emb, labels, a, 2.0, observed)
    (g_text, g_tab) = torch.autograd.grad(loss, [text, tab])
    before = cosine_distance(u, v).item()
    after = cosine_distance(text[0].detach() - lr * g_text[0], tab[1].detach() - lr * g_tab[1]).item()
    assert (after - target) ** 2 < (before - target) ** 2  # the squared error decreases
    return before, after


def test_graph_step_moves_pair_distances_towards_class_distances() -> None:
    """A pair farther apart than its class distance gets closer; a nearer pair gets farther apart. At d = 0.5
    with A = 0.3 and A = 0.8 a loss on the similarity 1 - d (pulled to A) would move each pair the other way."""
    u, v = _unit([0])[0], _unit([60])[0]  # d = 0.5
    far_before, far_after = _pair_distance_after_step(u, v, target=0.3)
    assert far_after < far_before
    near_before, near_after = _pair_distance_after_step(u, v, target=0.8)
    assert near_after > near_before
    orthogonal_before, orthogonal_after = _pair_distance_after_step(u, _unit([90])[0], target=0.3)  # d = 1
    assert orthogonal_after < orthogonal_before


def test_graph_step_reduces_the_loss_on_a_random_batch() -> None:
    g = torch.Generator().manual_seed(3)
    c = 4
    raw = torch.rand(c, c, generator=g, dtype=torch.float64) * 1.2
    a = (raw + raw.T) / 2
    a.fill_diagonal_(0.0)
    labels = torch.randint(0, c, (6,), generator=g)
    emb = {"text": _random_unit(4, 6, 3).requires_grad_(), "tab": _random_unit(5, 6, 3).requires_grad_()}
    loss = semantic_graph_loss(emb, labels, a, 0.6)
    stepped = dict(zip(emb, _step(list(emb.values()), loss, 0.05), strict=True))
    assert semantic_graph_loss(stepped, labels, a, 0.6) < loss


# ----------------------------------------------------------------------------------------- missing modalities
def _three_modalities(seed: int = 6) -> tuple[dict[str, Tensor], Tensor, dict[str, Tensor]]:
    emb = {m: _random_unit(seed + i, 5, 4) for i, m in enumerate(("text", "tab", "graph"))}
    labels = torch.tensor([0, 1, 2, 1, 0])
    observed = {
        "text": torch.tensor([True, True, False, True, True]),
        "tab": torch.tensor([True, False, True, True, False]),
        "graph": torch.tensor([False, True, True, True, True]),
    }
    return emb, labels, observed


def test_a_missing_modality_contributes_nothing_even_when_it_holds_nan() -> None:
    emb, labels, observed = _three_modalities()
    a = _t((0.0, 0.4, 1.0), (0.4, 0.0, 0.7), (1.0, 0.7, 0.0))
    nan_emb = {m: torch.where(observed[m][:, None], e, float("nan")) for m, e in emb.items()}
    # L_graph equals the loss of the observed embeddings stacked as one modality
    stacked = torch.cat([emb[m][observed[m]] for m in emb])
    y = torch.cat([labels[observed[m]] for m in emb])
    reference = semantic_graph_loss({"all": stacked}, y, a, 0.5)
    torch.testing.assert_close(semantic_graph_loss(nan_emb, labels, a, 0.5, observed), reference)
    # L_gap averages the observed pairs of each row only
    modality_pairs = (("text", "tab"), ("text", "graph"), ("tab", "graph"))
    pairs = [cosine_distance(emb[p][n], emb[q][n])
             for n in range(5) for p, q in modality_pairs if observed[p][n] and observed[q][n]]  # fmt: skip
    torch.testing.assert_close(cross_modal_gap_loss(nan_emb, observed), torch.stack(pairs).mean())
    # L_cls averages the observed (row, modality) pairs only
    w = torch.randn(4, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    logits = {m: e @ w for m, e in nan_emb.items()}
    ce = [F.cross_entropy((emb[m][n] @ w)[None], labels[n : n + 1])
          for m in emb for n in range(5) if observed[m][n]]  # fmt: skip
    torch.testing.assert_close(classification_loss(logits, labels, observed), torch.stack(ce).mean())


def test_gradients_reach_every_observed_embedding_and_no_missing_one() -> None:
    emb, labels, observed = _three_modalities()
    leaves = {m: e.clone().requires_grad_() for m, e in emb.items()}
    shared = torch.nn.Linear(4, 3, dtype=torch.float64)  # one classification layer for every modality
    a = _t((0.0, 0.4, 1.0), (0.4, 0.0, 0.7), (1.0, 0.7, 0.0))
    logits = {m: shared(e) for m, e in leaves.items()}
    out = HuseLoss(a, HuseLossConfig(threshold=0.5))(leaves, logits, labels, observed)
    out.total.backward()
    for m, leaf in leaves.items():
        norms = leaf.grad.norm(dim=1)
        assert (norms[observed[m]] > 0).all(), m
        assert (norms[~observed[m]] == 0).all(), m
    assert shared.weight.grad is not None and shared.weight.grad.abs().sum() > 0


def test_observed_as_a_matrix_equals_the_dict_and_nothing_observed_gives_zero() -> None:
    emb, labels, observed = _three_modalities()
    matrix = torch.stack([observed[m] for m in emb], dim=1)
    torch.testing.assert_close(cross_modal_gap_loss(emb, matrix), cross_modal_gap_loss(emb, observed))
    assert torch.equal(observed_matrix(list(emb), 5, observed, torch.device("cpu")), matrix)
    assert torch.equal(observed_matrix(list(emb), 5, {"tab": observed["tab"]}, torch.device("cpu"))[:, 0],
                       torch.ones(5, dtype=torch.bool))  # fmt: skip
    none = torch.zeros(5, 3, dtype=torch.bool)
    a = torch.zeros(3, 3, dtype=torch.float64)
    assert semantic_graph_loss(emb, labels, a, 0.5, none).item() == 0.0
    assert cross_modal_gap_loss(emb, none).item() == 0.0
    assert classification_loss(emb, labels, none).item() == 0.0


# ------------------------------------------------------------------------------------------- the weighted sum
def test_huse_loss_is_the_weighted_sum_and_a_zero_weight_drops_its_term() -> None:
    emb, labels, observed = _three_modalities()
    a = _t((0.0, 0.4, 1.0), (0.4, 0.0, 0.7), (1.0, 0.7, 0.0))
    w = torch.randn(4, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    logits = {m: e @ w for m, e in emb.items()}
    cfg = HuseLossConfig(alpha=0.5, beta=2.0, gamma=3.0, threshold=0.4)
    out = HuseLoss(a, cfg)(emb, logits, labels, observed)
    torch.testing.assert_close(out.cls, classification_loss(logits, labels, observed))
    torch.testing.assert_close(out.graph, semantic_graph_loss(emb, labels, a, 0.4, observed))
    torch.testing.assert_close(out.gap, cross_modal_gap_loss(emb, observed))
    torch.testing.assert_close(out.total, 0.5 * out.cls + 2.0 * out.graph + 3.0 * out.gap)

    leaves = {m: e.clone().requires_grad_() for m, e in emb.items()}
    cls_only = HuseLoss(a, HuseLossConfig(alpha=1.0, beta=0.0, gamma=0.0, threshold=0.4))
    ablation = cls_only(leaves, logits, labels, observed)
    assert not ablation.graph.requires_grad and not ablation.gap.requires_grad  # logged, not trained
    assert ablation.graph.item() == pytest.approx(out.graph.item())
    torch.testing.assert_close(ablation.total, ablation.cls)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"alpha": -1.0}, "use 0 to drop"),
        ({"gamma": float("nan")}, ">= 0"),
        ({"threshold": 2.5}, r"\[0, 2\]"),
        ({"alpha": 0.0, "beta": 0.0, "gamma": 0.0}, "positive weight"),
    ],
)
def test_config_rejects_bad_values_and_says_what_to_do(kwargs: dict[str, float], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        HuseLossConfig(**kwargs)


def test_inputs_are_checked_with_messages_that_say_what_to_do() -> None:
    x = _random_unit(0, 3, 2)
    labels = torch.tensor([0, 1, 0])
    a = torch.zeros(2, 2)
    with pytest.raises(ValueError, match="at least one modality"):
        cross_modal_gap_loss({})
    with pytest.raises(ValueError, match="same number of rows"):
        cross_modal_gap_loss({"a": x, "b": x[:2]})
    with pytest.raises(ValueError, match="square"):
        semantic_graph_loss({"a": x}, labels, torch.zeros(2, 3), 0.5)
    with pytest.raises(ValueError, match="build class_distance over all classes"):
        semantic_graph_loss({"a": x}, torch.tensor([0, 1, 2]), a, 0.5)
    with pytest.raises(ValueError, match="same keys"):
        cross_modal_gap_loss({"a": x}, {"b": torch.ones(3, dtype=torch.bool)})
    with pytest.raises(ValueError, match=r"\(B, M\)"):
        cross_modal_gap_loss({"a": x}, torch.ones(3, 2, dtype=torch.bool))
    with pytest.raises(ValueError, match="class index"):
        classification_loss({"a": x}, labels.float())
    with pytest.raises(ValueError, match="shared"):
        HuseLoss(a)({"a": x}, {"b": x}, labels)
