"""Training multimodal encoders with metric-learning losses, and notebook 03's protocol."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from mmsheaf.encoders.fusion import EncoderConfig, MultimodalEncoder
from mmsheaf.encoders.inputs import synthetic_inputs
from mmsheaf.losses import build_loss
from mmsheaf.metric.protocol import MetricRunSpec, robustness_eval, summary_table
from mmsheaf.metric.train import MetricTrainConfig, _m_for, batch_plan, train_metric_encoder
from mmsheaf.evaluation.embeddings import retrieval_metrics

SMALL = EncoderConfig(modalities=("text", "tabular", "graph"), token_dim=16, embedding_dim=16, text_hidden=32,
                      tab_channels=8, tab_layers=1, proj_hidden=32, dropout=0.0)  # fmt: skip


@pytest.fixture(scope="module")
def toy():
    inputs, labels = synthetic_inputs(num_rows=240, num_classes=8, text_dim=24, signal=0.8, seed=1)
    perm = torch.randperm(240, generator=torch.Generator().manual_seed(0))
    # class-disjoint like T1: classes 0-4 train, 5-7 validation
    train = perm[labels[perm] < 5]
    val = perm[labels[perm] >= 5]
    return inputs, labels, train, val


# -- batches ----------------------------------------------------------------------------------------------


def test_m_per_class_grows_when_there_are_few_classes() -> None:
    assert _m_for(256, 100, 4) == 4
    assert _m_for(256, 18, 4) == 16  # 16 classes x 16 rows
    assert _m_for(8, 2, 1) == 4


def test_class_batches_hold_m_rows_of_distinct_classes() -> None:
    labels = torch.tensor([0] * 10 + [1] * 3 + [2] * 7 + [3] * 5 + [4] * 9)
    cfg = MetricTrainConfig(batch_size=8, m_per_class=4)
    batches = batch_plan(labels, cfg, torch.Generator().manual_seed(0), by_class=True)
    assert len(batches) == 5  # ceil(34 / 8)
    for b in batches:
        assert b.numel() == 8
        classes, counts = torch.unique(labels[b], return_counts=True)
        assert classes.numel() == 2 and counts.tolist() == [4, 4]
        for c in classes:  # distinct rows where the class has at least m
            rows = b[labels[b] == c]
            if int((labels == c).sum()) >= 4:
                assert rows.unique().numel() == 4


def test_random_batches_are_a_permutation() -> None:
    labels = torch.zeros(20, dtype=torch.long)
    batches = batch_plan(labels, MetricTrainConfig(batch_size=5), torch.Generator().manual_seed(0), by_class=False)
    assert sorted(torch.cat(batches).tolist()) == list(range(20))


# -- training ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("loss_name", ["arcface", "multisimilarity", "ntxent"])
def test_training_improves_validation_retrieval_of_unseen_classes(toy, loss_name: str) -> None:
    inputs, labels, train, val = toy
    torch.manual_seed(0)
    enc = MultimodalEncoder(inputs, SMALL, train_idx=train)
    before = retrieval_metrics(enc.encode(inputs, val), labels[val])["map_at_r"]
    loss = build_loss(loss_name, num_classes=5, embedding_size=16)
    cfg = MetricTrainConfig(epochs=6, batch_size=40, m_per_class=4, lr=3e-3, patience=0, seed=0)
    res = train_metric_encoder(enc, loss, inputs, labels, train, val, cfg)
    after = retrieval_metrics(enc.encode(inputs, val), labels[val])["map_at_r"]
    assert after > before + 0.02
    assert res.epochs_run == 6 and 1 <= res.best_epoch <= 6
    # the encoder is left at its best epoch: its validation metric is the reported one
    assert after == pytest.approx(res.val["map_at_r"], abs=1e-6)
    assert max(h["val_map_at_r"] for h in res.history) == pytest.approx(res.val["map_at_r"], abs=1e-6)


def test_training_is_seeded(toy) -> None:
    inputs, labels, train, val = toy

    def once() -> torch.Tensor:
        torch.manual_seed(0)
        enc = MultimodalEncoder(inputs, SMALL, train_idx=train)
        cfg = MetricTrainConfig(epochs=2, batch_size=40, patience=0, seed=3)
        train_metric_encoder(enc, build_loss("supcon", 5, 16), inputs, labels, train, val, cfg)
        return enc.encode(inputs, val)

    assert torch.equal(once(), once())


def test_early_stopping_stops_after_patience(toy) -> None:
    inputs, labels, train, val = toy
    torch.manual_seed(0)
    enc = MultimodalEncoder(inputs, SMALL, train_idx=train)
    cfg = MetricTrainConfig(epochs=50, batch_size=40, lr=1e-7, head_lr=1e-7, patience=2, seed=0)
    res = train_metric_encoder(enc, build_loss("cosface", 5, 16), inputs, labels, train, val, cfg)
    assert res.epochs_run <= res.best_epoch + 2 < 50


def test_bad_settings_raise() -> None:
    with pytest.raises(ValueError, match="epochs"):
        MetricTrainConfig(epochs=0)
    with pytest.raises(ValueError, match="view_dropout"):
        MetricTrainConfig(view_dropout=1.0)


# -- protocol ---------------------------------------------------------------------------------------------


def test_run_spec_key_covers_everything_and_is_stable() -> None:
    base = MetricRunSpec("item", "ArcFace", {"margin": 20.0}, {"token_dim": 32}, {"epochs": 3}, 0)
    assert base.loss == "arcface"
    changed = [
        dataclasses.replace(base, task="category"),
        dataclasses.replace(base, loss_hparams={"margin": 21.0}),
        dataclasses.replace(base, encoder={"token_dim": 64}),
        dataclasses.replace(base, train={"epochs": 4}),
        dataclasses.replace(base, seed=1),
        dataclasses.replace(base, data_options={"train_fraction": 0.5}),
        dataclasses.replace(base, evaluate=("robustness",)),
    ]
    keys = {base.key(), *(c.key() for c in changed)}
    assert len(keys) == len(changed) + 1
    # the defaults are part of the key: {} and the explicit default encoder are the same run
    assert MetricRunSpec("item", "arcface").key() == MetricRunSpec("item", "arcface", encoder={"token_dim": 128}).key()
    code = ("from mmsheaf.metric.protocol import MetricRunSpec;"
            "print(MetricRunSpec('item', 'ArcFace', {'margin': 20.0}, {'token_dim': 32}, {'epochs': 3}, 0).key())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == base.key()


def test_run_spec_rejects_unknown_settings() -> None:
    with pytest.raises(ValueError, match="unknown train settings"):
        MetricRunSpec("item", "arcface", train={"epoch": 3})
    with pytest.raises(ValueError, match="unknown encoder settings"):
        MetricRunSpec("item", "arcface", encoder={"width": 3})
    with pytest.raises(ValueError, match="Unknown loss"):
        MetricRunSpec("item", "nope")
    with pytest.raises(ValueError, match="unknown evaluations"):
        MetricRunSpec("item", "arcface", evaluate=("speed",))


def test_robustness_eval_conditions(toy) -> None:
    from mmsheaf.data.clothing import MetricTask

    inputs, labels, train, val = toy
    n = inputs.num_rows
    fake = MetricTask(
        name="toy", task="category", text=inputs.text, text_mask=inputs.mask("text"),
        title_missing=~inputs.mask("text"), review_missing=~inputs.mask("text"), texts=("",) * n,
        numerical=inputs.x_num, numerical_mean=torch.zeros(3), numerical_std=torch.ones(3),
        categorical=inputs.x_cat, col_names_numerical=("a", "b", "c"),
        col_names_categorical=("p", "q", "r", "s"), categories=(tuple("abcdef"),) * 4,
        edge_index=inputs.edge_index, labels=labels, label_names=tuple(map(str, range(8))),
        item_ids=torch.arange(n), row_index=torch.arange(n), train_idx=train.sort().values,
        val_idx=torch.zeros(0, dtype=torch.long), test_idx=val.sort().values,
    )  # fmt: skip
    torch.manual_seed(0)
    enc = MultimodalEncoder(inputs, SMALL, train_idx=train).eval()
    rows = robustness_eval(enc, inputs, fake, seed=0, text_fractions=(0.0, 1.0), noise_levels=(0.0, 3.0))
    by = {(r["condition"], r["level"]): r["map_at_r"] for r in rows}
    clean = retrieval_metrics(enc.encode(inputs, fake.test_idx), labels[fake.test_idx])["map_at_r"]
    assert by[("text_removed", 0.0)] == pytest.approx(clean)
    assert by[("numerical_noise", 0.0)] == pytest.approx(clean)
    assert by[("text_removed", 1.0)] != pytest.approx(clean)
    assert {"without_text", "without_tabular", "without_graph", "text_really_missing"} <= {c for c, _ in by}


def test_summary_table_means_and_population_std() -> None:
    import pandas as pd

    runs = pd.DataFrame({"task": ["item"] * 2, "loss": ["arcface"] * 2, "seed": [0, 1], "seconds": [1.0, 3.0],
                         "test_map_at_r": [0.1, 0.3]})  # fmt: skip
    s = summary_table(runs, ["map_at_r"]).iloc[0]
    assert s.map_at_r == pytest.approx(20.0) and s.std_map_at_r == pytest.approx(10.0)
    assert s.train_seconds == 2.0 and s.n_seeds == 2


@pytest.mark.data
def test_a_real_run_is_cached_and_read_back(tmp_path: Path, data_mirror, monkeypatch) -> None:  # noqa: ANN001
    from mmsheaf.data import fill_data_root
    from mmsheaf.metric.protocol import metric_cache, run_specs

    root = tmp_path / "data"
    fill_data_root(data_mirror, root, only=["clothing"])
    monkeypatch.setenv("MMSHEAF_DATA", str(root))
    monkeypatch.setenv("MMSHEAF_CACHE", str(tmp_path / "cache"))
    spec = MetricRunSpec("category", "arcface", {}, dataclasses.asdict(SMALL) | {"modalities": ["text", "tabular", "graph"]},
                         {"epochs": 1, "batch_size": 64}, 0, {"max_rows": 400}, ("robustness",))  # fmt: skip
    first = run_specs([spec], metric_cache(), progress=False)
    second = run_specs([spec], metric_cache(), progress=False)
    assert not first.cached[0] and second.cached[0]
    for col in ("test_map_at_r", "test_nmi", "test_accuracy", "test_macro_f1"):
        assert 0.0 <= second[col][0] <= 1.0
        assert second[col][0] == first[col][0]
    stored = json.loads((tmp_path / "cache" / "metric_runs" / f"{spec.key()}.json").read_text())
    assert stored["result"]["robustness"]
