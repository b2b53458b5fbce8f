"""Tests of the MovieLens-1M cold-start loader (mmsheaf.data.movielens1m), on copies of the real files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from mmsheaf.data import DatasetValidationError, RawFileMismatchError, fill_data_root, load_ml100k, load_movielens100k
from mmsheaf.data.coldstart import MPAA_RATINGS, item_text, load_ml1m
from mmsheaf.data.movielens1m import ML1M_COLD_COUNTS, join_side_information, load_ml1m_coldstart, normalise_title


def test_normalise_title_drops_alternative_titles_accents_and_articles() -> None:
    assert normalise_title("City of Lost Children, The (Cité des enfants perdus, La) (1995)") == (
        "city of lost children", "1995")  # fmt: skip
    assert normalise_title("Misérables, Les (1995)") == ("miserables", "1995")
    assert normalise_title("The Postman (1997)") == normalise_title("Postman, The (1997)")
    assert normalise_title("Untitled") == ("untitled", "")


@pytest.fixture(scope="module")
def ml1m_root(data_mirror: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("ml1m")
    fill_data_root(data_mirror, root, only=["MovieLens1M_coldstart"])
    return root


@pytest.mark.data
def test_sizes_disjoint_cold_items_and_the_pinned_title_join(ml1m_root: Path) -> None:
    d = load_ml1m_coldstart(ml1m_root)
    for name, df in (("train", d.train), ("val", d.val), ("test", d.test)):
        assert (df["iid"].nunique(), len(df)) == ML1M_COLD_COUNTS[name]
    assert not set(d.val["iid"]) & set(d.train["iid"]) and not set(d.test["iid"]) & set(d.val["iid"])
    assert not set(d.test["iid"]) & set(d.train["iid"])
    assert len(d.items) == 3018 and d.items["iid"].tolist() == list(range(3018))
    # how many of the 3,018 items each step joins to an ML-1M movie id (pinned: a change is a decision)
    assert d.coverage == {"exact": 2705, "normalised": 160, "title ±1 year": 71, "none": 82, "with_plot": 2933}
    joined = d.items["ml1m_id"].dropna()
    assert not joined.duplicated().any()  # no movie is given to two items
    # an item without a plot has a really missing text modality
    assert not d.items.loc[d.items["match"] == "none", "has_text"].any()
    assert d.items.loc[d.items["title"] == "Toy Story (1995)", "plot"].str.startswith("A little boy").all()


@pytest.mark.data
def test_a_truncated_split_is_refused(ml1m_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "data"
    fill_data_root(ml1m_root, root)
    test = root / "MovieLens1M_coldstart/raw/cold_test_df.csv"
    text = test.read_text()
    test.write_text(text[: len(text) // 2].rsplit("\n", 1)[0] + "\n")
    with pytest.raises(RawFileMismatchError, match="cold_test_df.csv"):
        load_ml1m_coldstart(root)
    monkeypatch.setenv("MMSHEAF_CHECK_HASHES", "0")
    with pytest.raises(DatasetValidationError, match=r"the test split has 905 items and 1\d\d,\d{3} interactions, the benchmark 905 and 296,870") as info:
        load_ml1m_coldstart(root)
    assert str(test) in str(info.value)


# ------------------------------------------------------------------------------------------------------------
# The protocols as InteractionData (mmsheaf.data.coldstart) and MovieLens-100K with plots
# ------------------------------------------------------------------------------------------------------------
class FakeTextEncoder:
    """Fast stand-in for the sentence model: a few character statistics of each text."""

    identifier = "fake-plot-encoder"

    def __init__(self) -> None:
        self.seen: list[str] = []

    def __call__(self, texts: list[str]) -> np.ndarray:
        self.seen += texts
        return np.array([[len(t), t.count(" "), sum(map(ord, t)) % 97, 1.0] for t in texts], dtype=np.float32)


@pytest.fixture(autouse=True)
def _private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MMSHEAF_CACHE", str(tmp_path / "cache"))


def pairs(edges: torch.Tensor) -> set[tuple[int, int]]:
    return set(map(tuple, edges.T.tolist()))


@pytest.fixture(scope="module")
def benchmark(ml1m_root: Path):
    return load_ml1m_coldstart(ml1m_root)


@pytest.mark.data
def test_the_cold_protocol_ranks_cold_items_from_content_only(benchmark) -> None:
    encoder = FakeTextEncoder()
    d = load_ml1m(protocol="cold", text_encoder=encoder, benchmark=benchmark)
    assert (d.name, d.num_users, d.num_items) == ("ml1m-cold", 6018, 3018)
    assert (d.train.size(1), d.val.size(1), d.test.size(1)) == (529_952, 106_695, 296_870)
    assert d.val_candidates.numel() == 302 and d.candidates.numel() == 905
    assert set(d.val[1].tolist()) == set(d.val_candidates.tolist())
    assert set(d.test[1].tolist()) == set(d.candidates.tolist())
    cold = torch.cat([d.val_candidates, d.candidates])
    assert not d.item_mask["id"][cold].any() and int(d.item_mask["id"].sum()) == 1811
    assert not set(d.train[1].tolist()) & set(cold.tolist())  # cold items never train
    # masked missing text: the items without a plot, and no text was embedded for them
    assert int(d.item_mask["text"].sum()) == 2933 and len(encoder.seen) == 2933
    assert (d.item_features["text"][~d.item_mask["text"]] == 0).all()
    toy = d.item_names.index("Toy Story (1995)")
    assert any(t.startswith("Toy Story (1995). A little boy") and "Directed by John Lasseter" in t for t in encoder.seen)
    assert d.item_mask["text"][toy] and d.item_mask["tabular"].all()
    assert torch.isfinite(d.item_features["tabular"]).all()
    assert d.item_features["tabular"].shape == (3018, len(d.label_names) + 1 + len(MPAA_RATINGS))


@pytest.mark.data
def test_warm_and_hybrid_protocols_split_the_warm_interactions_per_user(benchmark) -> None:
    warm = load_ml1m(protocol="warm", text_encoder=FakeTextEncoder(), benchmark=benchmark)
    hybrid = load_ml1m(protocol="hybrid", text_encoder=FakeTextEncoder(), benchmark=benchmark)
    everything = pairs(warm.train) | pairs(warm.val) | pairs(warm.test)
    assert len(everything) == 529_952 and not pairs(warm.train) & pairs(warm.test)
    assert warm.val.size(1) == pytest.approx(52_995, rel=0.02) and warm.test.size(1) == pytest.approx(52_995, rel=0.02)
    assert warm.candidates.numel() == warm.val_candidates.numel() == 1811
    # hybrid: the same warm training split, its test adds the cold test interactions and items
    assert pairs(hybrid.train) == pairs(warm.train)
    assert hybrid.test.size(1) == warm.test.size(1) + 296_870 and hybrid.candidates.numel() == 1811 + 905
    assert hybrid.val.size(1) == warm.val.size(1) + 106_695 and hybrid.val_candidates.numel() == 1811 + 302
    # the split is seeded, and a fraction of the training interactions keeps that share of every user's
    again = load_ml1m(protocol="warm", text_encoder=FakeTextEncoder(), benchmark=benchmark)
    assert torch.equal(again.train, warm.train)
    tenth = load_ml1m(protocol="warm", train_fraction=0.1, text_encoder=FakeTextEncoder(), benchmark=benchmark)
    assert pairs(tenth.train) <= pairs(warm.train) and torch.equal(tenth.test, warm.test)
    assert tenth.train.size(1) == pytest.approx(0.1 * warm.train.size(1), rel=0.1)
    assert torch.unique(tenth.train[0]).numel() == 6018  # every user keeps at least one
    small = load_ml1m(protocol="cold", num_users=50, text_encoder=FakeTextEncoder(), benchmark=benchmark)
    assert small.num_users == 50 and int(small.train[0].max()) < 50 and small.num_items == 3018
    titles = FakeTextEncoder()  # the smoke profile's text: titles alone, for the same items
    short = load_ml1m(protocol="cold", text="title", text_encoder=titles, benchmark=benchmark)
    assert torch.equal(short.item_mask["text"], small.item_mask["text"]) and "Toy Story (1995)" in titles.seen
    with pytest.raises(ValueError, match="choose one of full, title"):
        load_ml1m(protocol="cold", text="plot", benchmark=benchmark)


def test_bad_protocol_arguments_say_what_to_choose(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="choose one of cold, warm, hybrid"):
        load_ml1m(tmp_path, protocol="temporal")
    with pytest.raises(ValueError, match="train_fraction"):
        load_ml1m(tmp_path, train_fraction=0.0)


def test_item_text_leaves_out_missing_fields() -> None:
    row = pd.Series({"title": "X (1999)", "plot": "A plot.", "director": "N/A", "writers": None, "actors": "A, B"})
    assert item_text(row) == "X (1999). A plot. Starring A, B."


@pytest.mark.data
def test_ml100k_items_get_their_plots(ml1m_root: Path, data_mirror: Path) -> None:
    fill_data_root(data_mirror, ml1m_root, only=["movielens100k"])
    titles = load_movielens100k(ml1m_root)["items"]["title"].fillna("")
    rows, coverage = join_side_information(titles, ml1m_root)
    # pinned: 1,629 of ML-100K's 1,682 movies get a plot (Star Wars (1977) is "Episode IV" in ML-1M: no match)
    assert coverage == {"exact": 1615, "normalised": 24, "title ±1 year": 2, "none": 41, "with_plot": 1629}
    encoder = FakeTextEncoder()
    data = load_ml100k(ml1m_root, text="title+plot", text_encoder=encoder)
    title_only = load_ml100k(ml1m_root, text_encoder=FakeTextEncoder())
    assert torch.equal(data.item_mask["text"], title_only.item_mask["text"])  # the mask is the title's
    assert "Toy Story (1995). A little boy" in " ".join(encoder.seen)
    assert "Star Wars (1977)" in encoder.seen  # no plot joined: the title alone
    assert not torch.equal(data.item_features["text"], title_only.item_features["text"])
    with pytest.raises(ValueError, match="title, title\\+plot"):
        load_ml100k(ml1m_root, text="plot")
