"""Bad inputs fail loudly in notebook 03's training (issue 14): non-finite losses, embeddings and inputs, and empty
modalities; a failed run is recorded as failed by the run loop, never cached as a result, and retried."""

from __future__ import annotations

import dataclasses
import hashlib
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from mmsheaf.data.clothing import MetricTask, load_clothing_task
from mmsheaf.encoders import EmptyModalityError, EncoderConfig, MultimodalEncoder, synthetic_inputs
from mmsheaf.losses import build_loss
from mmsheaf.metric import protocol as proto
from mmsheaf.metric.protocol import MetricRunSpec
from mmsheaf.metric.train import MetricTrainConfig, NonFiniteTrainingError, batch_plan, train_metric_encoder
from mmsheaf.runs.cache import RunCache, RunsFailed

SMALL = EncoderConfig(modalities=("text", "tabular", "graph"), token_dim=16, embedding_dim=16, text_hidden=32,
                      tab_channels=8, tab_layers=1, proj_hidden=32, dropout=0.0)  # fmt: skip
CFG = MetricTrainConfig(epochs=4, batch_size=40, patience=0, seed=0)


@pytest.fixture(scope="module")
def toy():
    inputs, labels = synthetic_inputs(num_rows=160, num_classes=8, text_dim=12, seed=1)
    perm = torch.randperm(160, generator=torch.Generator().manual_seed(0))
    return inputs, labels, perm[labels[perm] < 5], perm[labels[perm] >= 5]


def nan_from(loss, step: int):
    """``loss`` whose value is NaN from its ``step``-th call on (counted from 1)."""
    calls = {"n": 0}
    forward = loss.forward

    def poisoned(*args, **kwargs):
        calls["n"] += 1
        value = forward(*args, **kwargs)
        return value * float("nan") if calls["n"] >= step else value

    loss.forward = poisoned
    return loss


# -- the trainer ------------------------------------------------------------------------------------------


def test_a_loss_that_is_never_finite_raises_instead_of_reporting_metrics(toy) -> None:
    inputs, labels, train, val = toy
    torch.manual_seed(0)
    encoder = MultimodalEncoder(inputs, SMALL, train_idx=train)
    loss = nan_from(build_loss("supcon", 5, 16), 1)
    with pytest.raises(NonFiniteTrainingError,
                       match=r"supcon on toy \(seed 0, lr 0.001\) produced no usable epoch: the supcon loss was not "
                             r"finite at epoch 1, step 1\. Check the inputs"):  # fmt: skip
        train_metric_encoder(encoder, loss, inputs, labels, train, val, CFG, name="supcon on toy")


def steps_per_epoch(labels: torch.Tensor, train: torch.Tensor) -> int:
    train_labels = torch.unique(labels[train], return_inverse=True)[1]
    return len(batch_plan(train_labels, CFG, torch.Generator().manual_seed(0), by_class=True))


def test_a_loss_that_turns_non_finite_keeps_the_best_epoch_with_a_warning(toy) -> None:
    inputs, labels, train, val = toy
    torch.manual_seed(0)
    encoder = MultimodalEncoder(inputs, SMALL, train_idx=train)
    loss = nan_from(build_loss("arcface", 5, 16), 2 * steps_per_epoch(labels, train) + 1)  # epoch 3, step 1
    with pytest.warns(RuntimeWarning, match=r"arcface \(seed 0, lr 0.001\): the arcface loss was not finite at "
                                            r"epoch 3, step 1; training stopped and the best epoch"):  # fmt: skip
        result = train_metric_encoder(encoder, loss, inputs, labels, train, val, CFG)
    assert result.epochs_run == 2 and 1 <= result.best_epoch <= 2
    assert all(math.isfinite(v) for v in result.val.values())
    assert all(torch.isfinite(p).all() for p in encoder.parameters())


def test_non_finite_text_of_observed_rows_is_refused_up_front_and_missing_rows_are_not_read(toy) -> None:
    inputs, labels, train, val = toy
    text = inputs.text.clone()
    observed = inputs.mask("text").nonzero().flatten()
    text[observed[[0, 2]]] = float("inf")
    poisoned = dataclasses.replace(inputs, text=text)
    torch.manual_seed(0)
    encoder = MultimodalEncoder(poisoned, SMALL, train_idx=train)
    with pytest.raises(ValueError, match=rf"text \(sentence embeddings\): 2 of 160 observed rows hold NaN or "
                                         rf"infinite values \(rows {int(observed[0])}, {int(observed[2])}\); "
                                         r"re-embed those texts, or set text_mask False there"):  # fmt: skip
        train_metric_encoder(encoder, build_loss("supcon", 5, 16), poisoned, labels, train, val, CFG)
    mask = inputs.mask("text").clone()
    mask[observed[[0, 2]]] = False
    masked = dataclasses.replace(poisoned, text_mask=mask)
    result = train_metric_encoder(MultimodalEncoder(masked, SMALL, train_idx=train), build_loss("supcon", 5, 16),
                                  masked, labels, train, val, dataclasses.replace(CFG, epochs=1))  # fmt: skip
    assert result.best_epoch == 1 and math.isfinite(result.val["map_at_r"])


# -- empty modalities -------------------------------------------------------------------------------------


def test_an_empty_modality_is_refused_at_construction_naming_it_and_how_to_drop_it(toy) -> None:
    inputs, _, train, _ = toy
    n = inputs.num_rows
    cases = {
        "text": (dataclasses.replace(inputs, text=torch.zeros(n, 0)), "the text embeddings have 0 columns"),
        "text ": (dataclasses.replace(inputs, text_mask=torch.zeros(n, dtype=torch.bool)),
                  "text_mask is False in every row"),
        "tabular": (dataclasses.replace(inputs, x_num=torch.full_like(inputs.x_num, float("nan")),
                                        x_cat=torch.full_like(inputs.x_cat, -1), tabular_mask=None),
                    "every numerical and categorical cell is missing"),
        "graph": (dataclasses.replace(inputs, edge_index=torch.zeros(2, 0, dtype=torch.long), graph_mask=None),
                  "no row has a neighbour other than itself"),
    }  # fmt: skip
    for modality, (empty, reason) in cases.items():
        m = modality.strip()
        with pytest.raises(EmptyModalityError, match=rf"EncoderConfig.modalities has '{m}' but no row of the inputs "
                                                     rf"observes it: {reason}.*Drop '{m}' from modalities"):  # fmt: skip
            MultimodalEncoder(empty, SMALL, train_idx=train)
        kept = tuple(x for x in SMALL.modalities if x != m)
        encoder = MultimodalEncoder(empty, dataclasses.replace(SMALL, modalities=kept), train_idx=train)
        assert torch.isfinite(encoder.encode(empty, torch.arange(8))).all()
        if m == "text":  # the graph token then summarises the neighbours' tabular content only
            assert encoder.content_modalities == ("tabular",)


class BlankFake:
    """A deterministic fake sentence encoder (it must never be called for blank texts)."""

    identifier = "fake-metric-failures-v1"

    def __call__(self, texts: list[str]) -> np.ndarray:
        return np.stack([np.frombuffer(hashlib.sha1(t.encode()).digest()[:8], dtype=np.uint8).astype(np.float32)
                         + 1.0 for t in texts])  # fmt: skip


def clothing_task(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, task: str, blank_text: bool) -> MetricTask:
    """The real clothing pipeline on a small CSV (16 items of 4 reviews), every text cell blank if asked."""
    monkeypatch.setenv("MMSHEAF_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("MMSHEAF_CHECK_HASHES", "0")  # a CSV of our own, not the known release
    rows = [{"Clothing ID": 100 + item, "Age": 20.0 + item + j, "Title": f"Title {item}",
             "Review Text": f"Review {item} {'great' if item % 2 else 'poor'} {j}", "Rating": 1 + (item + j) % 5,
             "Recommended IND": (item + j) % 2, "Positive Feedback Count": j, "Division Name": "General",
             "Department Name": "Tops" if item % 2 else "Dresses", "Class Name": "Knits" if item % 2 else "Dresses"}
            for item in range(16) for j in range(4)]  # fmt: skip
    frame = pd.DataFrame(rows)
    if blank_text:
        frame["Title"], frame["Review Text"] = np.nan, "  "
    path = tmp_path / "data" / "WomensClothingReviews" / "raw" / "Womens Clothing E-Commerce Reviews.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path)
    return load_clothing_task(task, tmp_path / "data", text_encoder=BlankFake(), min_class_size=1)


@pytest.mark.parametrize("task", ["item", "category"])
def test_clothing_with_every_text_blank_is_refused_at_construction(tmp_path, monkeypatch, task: str) -> None:
    """It used to fail twelve frames deep in training: ``TextAdapter needs positive sizes, got in_channels=0``."""
    blank = clothing_task(tmp_path, monkeypatch, task, blank_text=True)
    inputs = proto.task_inputs(blank)
    assert blank.text.shape == (64, 0) and not blank.text_mask.any()
    small = dataclasses.replace(SMALL, modalities=("text", "tabular", "graph") if task == "category"
                                else ("text", "tabular"))  # fmt: skip
    with pytest.raises(EmptyModalityError, match="'text' but no row of the inputs observes it: the text embeddings "
                                                 "have 0 columns"):  # fmt: skip
        MultimodalEncoder(inputs, small, train_idx=blank.train_idx)
    kept = dataclasses.replace(small, modalities=tuple(m for m in small.modalities if m != "text"))
    MultimodalEncoder(inputs, kept, train_idx=blank.train_idx)  # dropping it is enough


# -- through the spec-keyed run loop ----------------------------------------------------------------------

ENCODER = {"modalities": ["text", "tabular"], "token_dim": 8, "embedding_dim": 8, "text_hidden": 8,
           "tab_channels": 8, "tab_layers": 1, "proj_hidden": 8}  # fmt: skip
TRAIN = {"epochs": 1, "batch_size": 16}


def test_an_empty_modality_fails_the_run_naming_the_notebook_parameter(tmp_path, monkeypatch) -> None:
    blank = clothing_task(tmp_path, monkeypatch, "item", blank_text=True)
    monkeypatch.setattr(proto, "load_task", lambda task, **options: blank)
    cache, spec = RunCache(tmp_path / "runs"), MetricRunSpec("item", "supcon", {}, ENCODER, TRAIN, 0)
    with pytest.raises(RunsFailed, match=r"item supcon seed 0 \(run [0-9a-f]{12}\): EmptyModalityError: clothing "
                                         r"task 'item': the 'text' modality is empty \(the text embeddings have 0 "
                                         r"columns.*\)\. Drop 'text' from MODALITIES\['item'\] in notebook 03's "
                                         r"parameters"):  # fmt: skip
        proto.run_specs([spec], cache, progress=False)
    assert len(cache) == 0 and list(cache.failures()) == [spec.key()]
    dropped = MetricRunSpec("item", "supcon", {}, {**ENCODER, "modalities": ["tabular"]}, TRAIN, 0)
    assert proto.run_specs([dropped], cache, progress=False).cached.tolist() == [False]


def test_a_non_finite_run_is_recorded_as_failed_never_cached_and_retried(tmp_path, monkeypatch) -> None:
    """NaN text embeddings fail the runs up front; a loss that is never finite fails them at the end of training;
    neither is cached as a result, and each call runs them again (once repaired, they are cached)."""
    clean = clothing_task(tmp_path, monkeypatch, "item", blank_text=False)
    text = clean.text.clone()
    text[clean.train_idx[:3]] = float("nan")
    poisoned = dataclasses.replace(clean, text=text)
    monkeypatch.setattr(proto, "load_task", lambda task, **options: poisoned)
    cache = RunCache(tmp_path / "runs")
    specs = [MetricRunSpec("item", "supcon", {}, ENCODER, TRAIN, seed) for seed in (0, 1)]
    keys = sorted(s.key() for s in specs)
    with pytest.raises(RunsFailed, match=r"2 run\(s\) failed[\s\S]*item supcon seed 1 \(run [0-9a-f]{12}\): "
                                         r"ValueError: text \(sentence embeddings\): 3 of 64 observed rows hold NaN"):
        proto.run_specs(specs, cache, progress=False)
    assert len(cache) == 0 and sorted(cache.failures()) == keys

    monkeypatch.setattr(proto, "load_task", lambda task, **options: clean)  # the data repaired ...
    build = proto.build_loss
    monkeypatch.setattr(proto, "build_loss", lambda *a, **kw: nan_from(build(*a, **kw), 1))  # ... the loss not
    with pytest.raises(RunsFailed, match=r"item supcon seed 1 \(run [0-9a-f]{12}\): NonFiniteTrainingError: "
                                         r"supcon on item \(seed 1, lr 0.001\) produced no usable epoch: the supcon "
                                         r"loss was not finite at epoch 1, step 1"):  # fmt: skip
        proto.run_specs(specs, cache, progress=False)
    assert len(cache) == 0 and sorted(cache.failures()) == keys
    assert all("NonFiniteTrainingError" in error for error in cache.failures().values())

    monkeypatch.setattr(proto, "build_loss", build)
    df = proto.run_specs(specs, cache, progress=False)
    assert df.cached.tolist() == [False, False] and len(cache) == 2 and cache.failures() == {}
    assert all(0.0 <= v <= 1.0 for v in df.test_map_at_r)
