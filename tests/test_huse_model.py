"""Tests of the HUSE model (mmsheaf.huse.model) and its training loop (mmsheaf.huse.train)."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from mmsheaf.encoders.fusion import EncoderConfig
from mmsheaf.encoders.inputs import synthetic_inputs
from mmsheaf.huse.losses import HuseLoss, HuseLossConfig
from mmsheaf.huse.model import FeatureTower, HuseModel
from mmsheaf.huse.train import HuseTrainConfig, train_huse
from mmsheaf.runs.checks import NonFiniteTrainingError

CFG = EncoderConfig(modalities=("text", "tabular", "graph"), embedding_dim=16, token_dim=16, text_hidden=32,
                    tab_channels=8, tab_layers=1, tab_heads=2, proj_hidden=32, graph_max_neighbours=4)  # fmt: skip


@pytest.fixture(scope="module")
def toy():
    inputs, labels = synthetic_inputs(num_rows=240, num_classes=4, text_dim=24, avg_degree=4, seed=1)
    perm = torch.randperm(240, generator=torch.Generator().manual_seed(0))
    return inputs, labels, perm[:160].sort().values, perm[160:200].sort().values, perm[200:].sort().values


def _distance(c: int = 4) -> torch.Tensor:
    a = torch.full((c, c), 0.8)
    a.fill_diagonal_(0.0)
    return a


def test_one_shared_layer_serves_every_tower_and_embeddings_are_unit_rows(toy) -> None:
    inputs, labels, train, _, _ = toy
    torch.manual_seed(0)
    model = HuseModel.from_inputs(inputs, CFG, num_classes=4, train_idx=train)
    assert model.modalities == ("text", "tabular", "graph")
    assert isinstance(model.classifier, torch.nn.Linear)  # one module, not one per tower
    out = model(inputs, train[:32])
    for m in model.modalities:
        assert out.embeddings[m].shape == (32, 16)
        assert torch.allclose(out.embeddings[m].norm(dim=1), torch.ones(32), atol=1e-5)
        assert torch.allclose(out.logits[m], model.classifier(out.embeddings[m]))
    assert torch.equal(out.observed["text"], inputs.mask("text")[train[:32]])
    separate = HuseModel.from_inputs(inputs, CFG, num_classes=4, train_idx=train, shared=False)
    assert set(separate.classifier) == set(model.modalities)


def test_gradients_reach_every_parameter(toy) -> None:
    inputs, labels, train, _, _ = toy
    torch.manual_seed(0)
    model = HuseModel.from_inputs(inputs, CFG, num_classes=4, train_idx=train)
    model.train()
    batch = train[:64]
    out = model(inputs, batch, noise_std=0.05, generator=torch.Generator().manual_seed(1))
    parts = HuseLoss(_distance())(out.embeddings, out.logits, labels[batch], out.observed)
    parts.total.backward()
    missing = [n for n, p in model.named_parameters()
               if p.requires_grad and (p.grad is None or not bool(p.grad.abs().sum() > 0))]  # fmt: skip
    assert missing == []
    frozen = sorted(n for n, p in model.named_parameters() if not p.requires_grad)
    assert frozen == [f"towers.{m}.encoder.missing.{m}" for m in ("graph", "tabular", "text")]


def test_a_fourth_tower_is_a_tower_not_a_new_model(toy) -> None:
    """A user with image features adds a FeatureTower; the losses and the shared layer take it as is."""
    inputs, labels, train, val, _ = toy
    image = torch.randn(inputs.num_rows, 10, generator=torch.Generator().manual_seed(2))
    seen = torch.rand(inputs.num_rows, generator=torch.Generator().manual_seed(3)) > 0.2
    torch.manual_seed(0)
    model = HuseModel.from_inputs(inputs, CFG, num_classes=4, train_idx=train,
                                  extra_towers={"image": FeatureTower(image, 16, observed=seen)})  # fmt: skip
    assert model.modalities == ("text", "tabular", "graph", "image")
    out = model(inputs, train[:16])
    assert torch.equal(out.observed["image"], seen[train[:16]])
    res = train_huse(model, HuseLoss(_distance()), inputs, labels, train, val,
                     HuseTrainConfig(epochs=1, batch_size=64))  # fmt: skip
    assert res.epochs_run == 1
    with pytest.raises(ValueError, match="same embedding_dim"):
        HuseModel.from_inputs(inputs, CFG, 4, train, extra_towers={"image": FeatureTower(image, 8)})


def test_fusion_averages_observed_modalities_only() -> None:
    from mmsheaf.huse.model import HuseOutput

    e = {"a": torch.tensor([[1.0, 0.0]]), "b": torch.tensor([[0.0, 1.0]])}
    logits = {"a": torch.tensor([[2.0, 0.0]]), "b": torch.tensor([[0.0, 2.0]])}
    both = HuseOutput(e, logits, {"a": torch.tensor([True]), "b": torch.tensor([True])})
    only_a = HuseOutput(e, logits, {"a": torch.tensor([True]), "b": torch.tensor([False])})
    assert torch.allclose(HuseModel.fused(both), torch.tensor([[1.0, 1.0]]) / 2**0.5)
    assert torch.allclose(HuseModel.fused(only_a), torch.tensor([[1.0, 0.0]]))
    assert torch.allclose(HuseModel.fused_probabilities(both), torch.tensor([[0.5, 0.5]]))
    assert torch.allclose(HuseModel.fused_probabilities(only_a), logits["a"].softmax(1))


def test_training_learns_is_seeded_and_keeps_the_best_epoch(toy) -> None:
    inputs, labels, train, val, _ = toy
    cfg = HuseTrainConfig(epochs=4, batch_size=64, lr=3e-3, patience=0, seed=5)

    def run():
        torch.manual_seed(0)
        model = HuseModel.from_inputs(inputs, CFG, num_classes=4, train_idx=train)
        return model, train_huse(model, HuseLoss(_distance(), HuseLossConfig(threshold=0.5)), inputs, labels,
                                 train, val, cfg)  # fmt: skip

    model, res = run()
    _, again = run()
    assert [h["loss"] for h in res.history] == [h["loss"] for h in again.history]
    assert res.history[-1]["loss"] < res.history[0]["loss"]
    best = max(res.history, key=lambda h: h["val_map_at_r"])
    assert res.best_epoch == int(best["epoch"]) and res.val["map_at_r"] == best["val_map_at_r"]
    assert res.val["map_at_r"] > 0.5  # 4 well-separated toy classes


def test_a_loss_that_is_never_finite_raises_and_names_the_run(toy) -> None:
    inputs, labels, train, val, _ = toy
    torch.manual_seed(0)
    model = HuseModel.from_inputs(inputs, dataclasses.replace(CFG, modalities=("text",)), 4, train)
    with torch.no_grad():
        model.classifier.weight.fill_(float("nan"))
    with pytest.raises(NonFiniteTrainingError, match=r"huse-toy \(seed 0.*loss was not finite at epoch 1"):
        train_huse(model, HuseLoss(_distance()), inputs, labels, train, val, HuseTrainConfig(epochs=2),
                   name="huse-toy")  # fmt: skip


def test_config_validation_says_what_to_fix() -> None:
    with pytest.raises(ValueError, match="batch_size must be at least 2"):
        HuseTrainConfig(batch_size=1)
    with pytest.raises(ValueError, match="lr must be a positive number"):
        HuseTrainConfig(lr=0.0)
    with pytest.raises(ValueError, match="at least one tower"):
        HuseModel({}, num_classes=3)


@pytest.mark.parametrize("loss", ["arcface", "supcon"])
def test_the_fused_baselines_train_in_the_same_loop_and_read_modalities_alone(toy, loss: str) -> None:
    from mmsheaf.huse.baselines import FusedModel, MetricObjective, only_modality

    inputs, labels, train, val, test = toy
    torch.manual_seed(0)
    model = FusedModel(inputs, CFG, loss, num_classes=4, train_idx=train)
    before = [p.detach().clone() for p in model.head_parameters()]
    res = train_huse(model, MetricObjective(model), inputs, labels, train, val,
                     HuseTrainConfig(epochs=2, batch_size=64, head_lr=1e-2))  # fmt: skip
    assert res.epochs_run == 2 and res.val["map_at_r"] > 0
    assert all(not torch.equal(a, b) for a, b in zip(before, model.head_parameters()))  # proxies trained
    assert (len(before) > 0) == (loss == "arcface")
    alone = model.encode(inputs, test)
    assert set(alone.embeddings) == {"text", "tabular"}
    assert set(alone.logits) == ({"text", "tabular"} if loss == "arcface" else set())
    assert torch.equal(HuseModel.fused(alone), model.encoder.encode(inputs, test))  # its own fused embedding
    assert (alone.fused_logits is not None) == (loss == "arcface")
    only_text = only_modality(inputs, "text")
    assert not only_text.mask("tabular").any() and not only_text.mask("graph").any()
    assert torch.equal(only_text.mask("text"), inputs.mask("text"))
    assert torch.allclose(alone.embeddings["text"], model.encoder.encode(only_text, test))
