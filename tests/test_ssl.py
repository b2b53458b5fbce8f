"""Tests of the self-supervised study package (mmsheaf.ssl): the methods' model, EMA and stop-gradient wiring,
one training run (seeded, divergence), the run specs and the plan."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest
import torch
from mmsheaf.data.augment import ImageAugment
from mmsheaf.data.images import ImageSplits
from mmsheaf.encoders.fusion import EncoderConfig
from mmsheaf.encoders.inputs import synthetic_inputs
from mmsheaf.runs.cache import RunCache
from mmsheaf.ssl import (
    MAIN_VARIANT,
    METHODS,
    SSLConfig,
    SSLModel,
    SSLPlan,
    SSLRunSpec,
    SSLTrainConfig,
    protocol,
    train_ssl,
)
from mmsheaf.ssl.protocol import Source, split_params
from mmsheaf.ssl.reviews import ReviewBackbone, RowSplits, RowViews

SMALL = {"widths": (4, 8, 8), "dim": 8, "proj_hidden": 16}
TRAINED = [m for m, spec in METHODS.items() if spec.loss is not None]


def tiny_images(n: int = 48, seed: int = 0) -> ImageSplits:
    """Two classes of 28x28 images: a bright top half or a bright bottom half, plus noise."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 2
    x = 0.1 * torch.rand(n, 1, 28, 28, generator=g)
    x[y == 0, :, :14] += 0.8
    x[y == 1, :, 14:] += 0.8
    x = x.clamp(0, 1)
    a, b = n // 2, 3 * n // 4
    return ImageSplits("tiny", x[:a], x[a:b], x[b:], y[:a], y[a:b], y[b:], num_classes=2)


def views(b: int = 6) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return torch.rand(b, 1, 28, 28, generator=g), torch.rand(b, 1, 28, 28, generator=g), torch.arange(b) % 2


# ------------------------------------------------------------------------------------------------ config


def test_config_checks_method_similarity_and_tau() -> None:
    with pytest.raises(ValueError, match="unknown self-supervised method"):
        SSLConfig("moco")
    with pytest.raises(ValueError, match="barlow takes the similarities"):
        SSLConfig("barlow", similarity="cosine")
    with pytest.raises(ValueError, match="tau must lie"):
        SSLConfig("byol", tau=1.0)
    assert SSLConfig("byol").distance == "normalised_l2"
    assert SSLConfig("simsiam").distance == "cosine" and SSLConfig("vicreg").distance == "l2"
    assert SSLConfig("simsiam", similarity="dot").distance == "dot"


def test_config_refuses_settings_its_method_does_not_read() -> None:
    """An ablation that changes nothing the method reads would rerun the same model under a new label."""
    with pytest.raises(ValueError, match=r"byol does not read \['stop_gradient'\]"):
        SSLConfig("byol", stop_gradient=False)
    with pytest.raises(ValueError, match="vicreg does not read"):
        SSLConfig("vicreg", predictor=False)
    with pytest.raises(ValueError, match="supervised does not read"):
        SSLConfig("supervised", tau=0.5)
    assert SSLConfig("simsiam", stop_gradient=False).stop_gradient is False
    assert SSLConfig("byol", tau=0.0, predictor=False).tau == 0.0


def test_predictor_width_follows_each_paper() -> None:
    """SimSiam's predictor is a bottleneck (dim / 4), BYOL's an expansion (the projector's hidden width)."""
    simsiam = SSLModel(SSLConfig("simsiam", **SMALL))
    byol = SSLModel(SSLConfig("byol", **SMALL))
    assert simsiam.predictor[0].out_features == 2 and byol.predictor[0].out_features == 16


# ------------------------------------------------------------------------------------------------ model


@pytest.mark.parametrize("method", TRAINED)
def test_every_method_gives_a_finite_loss_and_gradients_to_every_online_parameter(method: str) -> None:
    torch.manual_seed(0)
    model = SSLModel(SSLConfig(method, **SMALL), num_classes=2)
    x1, x2, y = views()
    assert model.embed(x1).shape == (6, 8) and model.represent(x1).shape == (6, 8)
    loss = model.loss(x1, x2, y)
    assert loss.dim() == 0 and torch.isfinite(loss)
    loss.backward()
    missing = [
        n for n, p in model.named_parameters() if p.requires_grad and (p.grad is None or not p.grad.any())
    ]
    assert missing == []
    if model.target is not None:  # BYOL: nothing reaches the EMA target
        assert all(p.grad is None and not p.requires_grad for p in model.target.parameters())
        assert len(model.online_parameters()) == len(list(model.parameters())) - len(
            list(model.target.parameters())
        )


def test_stop_gradient_changes_what_reaches_the_projector() -> None:
    """Without stop-gradient the targets z are differentiated too: the projector's gradient changes."""
    x1, x2, y = views()
    grads = []
    for sg in (True, False):
        torch.manual_seed(0)
        model = SSLModel(SSLConfig("simsiam", stop_gradient=sg, **SMALL))
        model.loss(x1, x2, y).backward()
        grads.append(model.projector[-1].weight.grad.clone())
    assert not torch.allclose(grads[0], grads[1])


def test_no_predictor_means_p_is_z() -> None:
    model = SSLModel(SSLConfig("simsiam", predictor=False, **SMALL))
    assert model.predictor is None
    assert SSLModel(SSLConfig("simsiam", pred_hidden=5, **SMALL)).predictor[0].out_features == 5


def test_ema_follows_byol_schedule_and_tau_zero_copies_the_online_network() -> None:
    torch.manual_seed(0)
    model = SSLModel(SSLConfig("byol", tau=0.9, **SMALL))
    online = torch.nn.Sequential(model.backbone, model.projector)
    with torch.no_grad():
        for p in online.parameters():
            p.add_(1.0)
    before = [t.clone() for t in model.target.parameters()]
    model.update_target(0.0)  # tau_0 at the start: target <- 0.9 target + 0.1 online
    for t, b, o in zip(model.target.parameters(), before, online.parameters(), strict=True):
        assert torch.allclose(t, 0.9 * b + 0.1 * o)
    now = [t.clone() for t in model.target.parameters()]
    model.update_target(1.0)  # tau = 1 at the end: unchanged
    assert all(torch.equal(a, b) for a, b in zip(now, model.target.parameters(), strict=True))
    copy = SSLModel(SSLConfig("byol", tau=0.0, **SMALL))
    with torch.no_grad():
        copy.backbone.features[0].weight.mul_(3.0)
    copy.update_target(0.7)
    assert all(torch.equal(t, o) for t, o in zip(copy.target.parameters(),
               torch.nn.Sequential(copy.backbone, copy.projector).parameters(), strict=True))  # fmt: skip


def test_random_reference_is_not_trained() -> None:
    model = SSLModel(SSLConfig("random", **SMALL))
    assert not model.trains
    with pytest.raises(ValueError, match="not trained"):
        model.loss(*views())


# ------------------------------------------------------------------------------------------------ training


def _train(method: str, seed: int, **changes) -> object:
    torch.manual_seed(seed)
    model = SSLModel(SSLConfig(method, **{**SMALL, **changes}), num_classes=2)
    cfg = SSLTrainConfig(epochs=2, batch_size=8, log_every=1, knn_k=3, seed=seed)
    return train_ssl(model, tiny_images(), ImageAugment(), cfg, progress=False)


def test_a_run_is_seeded_and_logs_its_diagnostics() -> None:
    a, b, c = _train("barlow", 0), _train("barlow", 0), _train("barlow", 1)
    assert a.scores["knn_acc"] == b.scores["knn_acc"] and a.history == b.history
    assert a.history != c.history
    assert [h["epoch"] for h in a.history] == [0, 1, 2] and a.steps == 2 * 3
    assert {"norm_std", "rankme", "rankme_h", "knn_acc", "loss"} <= set(a.history[-1])
    for key in ("knn_acc", "linear_acc", "knn_acc_h", "linear_acc_h"):
        assert 0.0 <= a.scores[key] <= 1.0
    assert (
        a.scores["norm_std"] > 0.0 and 1.0 <= a.scores["rankme"] <= 8.0 and 1.0 <= a.scores["rankme_h"] <= 8.0
    )
    assert len(a.scores["spectrum"]) == 8 and not a.diverged


def test_a_non_finite_loss_stops_the_run_and_marks_it_diverged(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        SSLModel, "loss", lambda self, x1, x2, y: torch.tensor(float("nan"), requires_grad=True)
    )
    res = _train("simsiam", 0)
    assert res.diverged and res.steps == 0 and math.isnan(res.history[-1]["loss"])


def test_the_random_reference_runs_no_step() -> None:
    res = _train("random", 0)
    assert res.steps == 0 and len(res.history) == 1


# ------------------------------------------------------------------------------------------------ specs, plan


def test_run_spec_describes_everything_and_validates_early() -> None:
    spec = SSLRunSpec("mnist5k", {"method": "vicreg", "dim": 32}, {"epochs": 3}, {"noise_std": 0.05}, seed=2)
    d = spec.describe()
    assert d["model"]["vicreg_std"] == 25.0 and d["model"]["dim"] == 32 and d["train"]["seed"] == 2
    assert d["augment"]["noise_std"] == 0.05 and d["train"]["epochs"] == 3
    assert spec.key() == SSLRunSpec("mnist5k", {"method": "vicreg", "dim": 32}, {"epochs": 3},
                                    {"noise_std": 0.05}, seed=2).key()  # fmt: skip
    assert spec.key() != SSLRunSpec("mnist5k", {"method": "vicreg", "dim": 32}, {"epochs": 3}, seed=2).key()
    assert SSLRunSpec("mnist5k", {"method": "random"}, {"epochs": 50}).train_config().epochs == 0
    with pytest.raises(ValueError, match="must name its method"):
        SSLRunSpec("mnist5k", {"dim": 3})
    with pytest.raises(ValueError, match="takes the similarities"):
        SSLRunSpec("mnist5k", {"method": "simclr", "similarity": "l2"})
    assert split_params({"lr": 0.1, "tau": 0.9}) == ({"tau": 0.9}, {"lr": 0.1})


def test_plan_rows_share_their_methods_settings_and_ablations_change_one_thing() -> None:
    plan = SSLPlan({"simsiam": ["cosine", "l2"], "random": ["none"]}, seeds=[0, 1],
                   ablations={"no sg": {"method": "simsiam", "stop_gradient": False, "batch_size": 32}},
                   model={"dim": 16}, train={"epochs": 3})  # fmt: skip
    tuned = {"simsiam": {"lr": 0.004, "pred_hidden": 8}}
    main = plan.main_specs(tuned)
    assert len(main) == 3 * 2
    assert [s.config().distance for s in main[:4]] == ["cosine", "cosine", "l2", "l2"]
    assert main[0].model.get("similarity") is None  # the default row is the tuned spec itself
    assert main[0].train["lr"] == 0.004 and main[0].model["pred_hidden"] == 8 and main[0].model["dim"] == 16
    [nosg] = plan.ablation_specs(tuned).values()
    assert nosg[0].model["stop_gradient"] is False and nosg[0].train["batch_size"] == 32
    assert nosg[0].key() != main[0].key() and MAIN_VARIANT == "as published"
    assert main[0].dataset == "mnist5k" and plan.main_specs(tuned, dataset="digits")[0].dataset == "digits"
    with pytest.raises(ValueError, match="takes the similarities"):
        SSLPlan({"barlow": ["cosine"]}, seeds=[0])
    with pytest.raises(ValueError, match="must name a method of rows"):
        SSLPlan({"simsiam": ["cosine"]}, seeds=[0], ablations={"x": {"method": "byol"}})


# ------------------------------------------------------------------------------------------------ search, reviews


def test_tune_keeps_the_published_defaults_unless_a_trial_beats_them_on_validation(
    study_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(
        protocol.SOURCES, "tiny", Source(lambda options: tiny_images(), lambda aug: ImageAugment())
    )
    train = {"epochs": 1, "batch_size": 8, "log_every": 1, "knn_k": 3}
    cache = RunCache(study_cache / "ssl_runs")
    study, best, keys = protocol.tune("barlow", 2, dataset="tiny", model=SMALL, train=train, cache=cache,
                                      progress=False)  # fmt: skip
    runs = protocol.run_specs(
        [SSLRunSpec("tiny", {**SMALL, "method": "barlow"}, train)], cache, progress=False
    )
    default = float(runs.val_knn_acc.iloc[0])
    assert len(keys) == 3 and bool(runs.cached.iloc[0])  # the defaults' run and two trials, all cached
    assert (best == {}) == (study.best_value <= default)
    if best:
        assert set(best) == {"lr", "barlow_lambda"}
    # a default run without a validation score (diverged) never wins against a trial that learned something
    monkeypatch.setattr(protocol, "run_specs", lambda specs, *a, **k: pd.DataFrame({"val_knn_acc": [
        float("nan") if not specs[0].train.get("lr") else 0.5]}))  # fmt: skip
    _, best, _ = protocol.tune("barlow", 2, dataset="tiny", model=SMALL, train=train, cache=cache, progress=False,
                               seed=1)  # fmt: skip
    assert set(best) == {"lr", "barlow_lambda"}


def test_review_views_are_two_noisy_passes_in_training_and_none_in_eval() -> None:
    inputs, labels = synthetic_inputs(num_rows=60, num_classes=3, text_dim=8, seed=0)
    idx = torch.arange(60)
    data = RowSplits(
        "toy", inputs, idx[:30], idx[30:45], idx[45:], labels[:30], labels[30:45], labels[45:], 3
    )
    cfg = EncoderConfig(modalities=("text", "tabular"), token_dim=8, embedding_dim=8, text_hidden=8,
                        tab_channels=8, tab_layers=1, proj_hidden=8)  # fmt: skip
    torch.manual_seed(0)
    backbone = ReviewBackbone(data, cfg, RowViews(noise_std=0.5, view_dropout=0.5))
    v1, v2 = RowViews().two_views(idx[:10])
    assert torch.equal(v1, v2)
    backbone.train()
    assert not torch.allclose(backbone(v1), backbone(v2))  # independent noise and dropout per pass
    backbone.eval()
    assert torch.equal(backbone(v1), backbone(v2)) and backbone(v1).shape == (10, 8)
    model = SSLModel(SSLConfig("vicreg", dim=8, proj_hidden=16), num_classes=3, backbone=backbone)
    res = train_ssl(model, data, RowViews(), SSLTrainConfig(epochs=1, batch_size=10, knn_k=3), progress=False)
    assert res.steps == 3 and 0.0 <= res.scores["knn_acc"] <= 1.0
    with pytest.raises(ValueError, match="view_dropout"):
        RowViews(view_dropout=1.0)
