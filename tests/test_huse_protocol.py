"""Tests of notebook 04's protocol (mmsheaf.huse.protocol): the rows, their specs and a real run on a subset."""

from __future__ import annotations

from pathlib import Path

import pytest

from mmsheaf.huse.protocol import VARIANTS, HuseRunSpec, run_specs
from mmsheaf.runs.cache import RunCache

ENC = {"modalities": ["text", "tabular", "graph"], "embedding_dim": 16, "token_dim": 16, "text_hidden": 32,
       "tab_channels": 8, "tab_layers": 1, "tab_heads": 2, "proj_hidden": 32, "graph_max_neighbours": 4}  # fmt: skip


def test_every_row_trains_only_its_terms() -> None:
    hp = {"alpha": 2.0, "beta": 3.0, "gamma": 4.0, "threshold": 0.3}
    weights = {v: (c.alpha, c.beta, c.gamma) for v in VARIANTS if VARIANTS[v].kind == "huse"
               for c in [HuseRunSpec(v, hp).loss_config()]}  # fmt: skip
    assert weights == {"huse": (2.0, 3.0, 4.0), "huse-cls": (2.0, 0.0, 0.0), "huse-cls-gap": (2.0, 0.0, 4.0),
                       "huse-cls-graph": (2.0, 3.0, 0.0), "separate": (2.0, 0.0, 0.0)}  # fmt: skip
    assert HuseRunSpec("huse", hp).loss_config().threshold == 0.3
    assert not VARIANTS["separate"].shared and VARIANTS["huse"].shared
    # each row searches exactly the hyperparameters it trains
    assert set(VARIANTS["huse"].search) == {"alpha", "beta", "gamma", "threshold"}
    assert set(VARIANTS["huse-cls-gap"].search) == {"alpha", "gamma"}
    assert VARIANTS["huse-cls"].search == {} and VARIANTS["separate"].search == {}
    assert set(VARIANTS["arcface"].search) == {"margin", "scale"}


def test_specs_are_keyed_by_everything_that_determines_them() -> None:
    a = HuseRunSpec("huse", {"alpha": 1.0}, ENC, {"epochs": 2}, 0)
    assert a.key() == HuseRunSpec("huse", {"alpha": 1.0}, ENC, {"epochs": 2}, 0).key()
    assert a.key() != HuseRunSpec("huse", {"alpha": 1.0}, ENC, {"epochs": 2}, 1).key()
    assert a.key() != HuseRunSpec("huse-cls", {"alpha": 1.0}, ENC, {"epochs": 2}, 0).key()
    assert a.describe()["schema"] == "mmsheaf.huse-run/1"
    with pytest.raises(ValueError, match="unknown HUSE comparison row 'husky'"):
        HuseRunSpec("husky")


@pytest.mark.data
@pytest.mark.slow
def test_a_real_run_on_a_subset_is_cached_and_scored(data_mirror: Path, real_data_root: Path, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    from mmsheaf.data import fill_data_root

    fill_data_root(data_mirror, real_data_root, only=["clothing"])
    monkeypatch.setenv("MMSHEAF_DATA", str(real_data_root))
    options = {"max_rows": 900}
    specs = [HuseRunSpec(v, {}, ENC, {"epochs": 1, "batch_size": 128}, 0, options) for v in ("huse", "arcface")]
    cache = RunCache(tmp_path / "huse_runs")
    df = run_specs(specs, cache, progress=False)
    assert df["variant"].tolist() == ["huse", "arcface"] and not df["cached"].any()
    huse, arcface = df.iloc[0], df.iloc[1]
    for col in ("test_acc_fusion", "test_hp_at_5", "test_r@1_text_to_tabular", "test_map_at_r_fused_to_fused"):
        assert 0.0 <= huse[col] <= 100.0 and 0.0 <= arcface[col] <= 100.0
    assert 0.0 <= huse["test_acc_graph"] <= 100.0  # HUSE reads the graph alone; the fused baseline cannot
    assert {(r["query"], r["database"]) for r in huse["retrieval"]} >= {("text", "tabular"), ("fused", "fused")}
    again = run_specs(specs, cache, progress=False)
    assert again["cached"].all() and again["test_acc_fusion"].tolist() == df["test_acc_fusion"].tolist()
