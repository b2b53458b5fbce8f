"""The one summary of repeated runs: closed-form means and standard deviations, group order, bad input."""

import math

import pandas as pd
import pytest

from mmsheaf.runs.summary import over_repeats


def runs() -> pd.DataFrame:
    return pd.DataFrame({"model": ["b", "a", "b", "a", "b"], "acc": [0.5, 0.2, 0.7, 0.4, 0.6],
                         "loss": [1.0, 2.0, 3.0, 4.0, 5.0]})  # fmt: skip


def test_population_std_in_percent_groups_in_order_of_appearance() -> None:
    out = over_repeats(runs(), ["model"], {"acc": "acc", "loss": "loss"}, scale=100, count="n_seeds")
    assert list(out.columns) == ["model", "acc", "std_acc", "loss", "std_loss", "n_seeds"]
    assert out.model.tolist() == ["b", "a"] and out.n_seeds.tolist() == [3, 2]
    b = out.iloc[0]
    assert b.acc == pytest.approx(60.0) and b.std_acc == pytest.approx(100 * math.sqrt(0.02 / 3))
    assert out.iloc[1].std_loss == pytest.approx(100.0)  # |2 - 4| / 2, times 100


def test_sample_std_and_single_runs() -> None:
    one = runs().iloc[:2]
    assert over_repeats(one, ["model"], {"acc": "acc"}).std_acc.tolist() == [0.0, 0.0]
    assert over_repeats(one, ["model"], {"acc": "acc"}, ddof=1).std_acc.isna().all()
    assert over_repeats(runs(), ["model"], {"acc": "acc"}, ddof=1).iloc[1].std_acc == pytest.approx(math.sqrt(0.02))


def test_missing_columns_are_named() -> None:
    with pytest.raises(ValueError, match=r"\['seed'\]"):
        over_repeats(runs(), ["seed"], {"acc": "acc"})
