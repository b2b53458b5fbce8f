"""Tests of MovieLens 100K as multimodal implicit feedback (mmsheaf.data.movielens)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from mmsheaf.data import (
    MODALITIES,
    DatasetNotFoundError,
    InteractionData,
    fill_data_root,
    load_ml100k,
    load_movielens100k,
)

TEXT_DIM = 6


class FakeTitleEncoder:
    """Fast stand-in for the sentence model: a few character statistics of each title."""

    identifier = "fake-title-encoder"

    def __init__(self) -> None:
        self.seen: list[str] = []

    def __call__(self, texts: list[str]) -> np.ndarray:
        self.seen += texts
        return np.array(
            [
                [len(t), t.count(" "), t.count("("), sum(map(ord, t)) % 97, 1.0, t.lower().count("e")]
                for t in texts
            ],
            dtype=np.float32,
        )


def test_bad_arguments_raise_with_advice(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="choose one of random, cold"):
        load_ml100k(tmp_path, split="temporal")
    with pytest.raises(ValueError, match=r"e\.g\. \(0\.8, 0\.1, 0\.1\)"):
        load_ml100k(tmp_path, ratios=(0.0, 0.5, 0.5))
    with pytest.raises(ValueError, match="cold_fraction"):
        load_ml100k(tmp_path, split="cold", cold_fraction=1.0)
    with pytest.raises(ValueError, match="num_users"):
        load_ml100k(tmp_path, num_users=0)


def test_missing_files_raise_dataset_not_found(tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFoundError, match="u.data"):
        load_ml100k(tmp_path)


# ------------------------------------------------------------------------------------------------------------
# Real data (copied from the mirror into a temporary data root)
# ------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ml_root(data_mirror: Path, real_data_root: Path) -> Path:
    fill_data_root(data_mirror, real_data_root, only=["movielens100k"])
    return real_data_root


@pytest.fixture(autouse=True)
def _private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Text embeddings go to a temporary cache, never to the project's build/cache."""
    monkeypatch.setenv("MMSHEAF_CACHE", str(tmp_path / "cache"))


def load(root: Path, **kwargs) -> InteractionData:
    return load_ml100k(root, text_encoder=kwargs.pop("text_encoder", FakeTitleEncoder()), **kwargs)


def pairs(edges: torch.Tensor) -> set[tuple[int, int]]:
    return set(map(tuple, edges.T.tolist()))


def all_edges(data: InteractionData) -> torch.Tensor:
    return torch.cat([data.train, data.val, data.test], dim=1)


@pytest.mark.data
def test_sizes_and_all_ratings_are_interactions(ml_root: Path) -> None:
    data = load(ml_root)
    assert data.name == "ml100k" and data.num_users == 943 and data.num_items == 1682
    assert data.candidates is None
    edges = all_edges(data)
    assert edges.size(1) == 100_000 and len(pairs(edges)) == 100_000
    ratings = load_movielens100k(ml_root)["ratings"]
    assert pairs(edges) == set(zip((ratings["user_id"] - 1).tolist(), (ratings["item_id"] - 1).tolist()))
    for split in (data.train, data.val, data.test):
        assert split.dtype == torch.long and split.size(0) == 2


@pytest.mark.data
def test_random_split_per_user_proportions(ml_root: Path) -> None:
    data = load(ml_root)
    a, b, c = pairs(data.train), pairs(data.val), pairs(data.test)
    assert not (a & b) and not (a & c) and not (b & c)
    counts = {
        s: torch.bincount(e[0], minlength=943) for s, e in zip("tvs", (data.train, data.val, data.test))
    }
    total = counts["t"] + counts["v"] + counts["s"]
    assert total.min() >= 20 and bool((counts["t"] >= 1).all())
    assert set(data.train[0].tolist()) == set(range(943))
    # per user: the rounded 10% shares, and overall 8:1:1
    assert bool(((counts["v"] - 0.1 * total).abs() <= 0.5 + 1e-9).all())
    assert bool(((counts["s"] - 0.1 * total).abs() <= 0.5 + 1e-9).all())
    assert abs(data.train.size(1) / 100_000 - 0.8) < 0.005
    assert abs(data.val.size(1) / 100_000 - 0.1) < 0.005 and abs(data.test.size(1) / 100_000 - 0.1) < 0.005


@pytest.mark.data
def test_other_ratios_and_every_user_keeps_training(ml_root: Path) -> None:
    data = load(ml_root, ratios=(0.01, 0.5, 0.49), num_users=60)
    train_counts = torch.bincount(data.train[0], minlength=data.num_users)
    assert bool((train_counts >= 1).all())
    assert data.val.size(1) > 20 * data.train.size(1)


@pytest.mark.data
def test_split_is_deterministic_by_seed(ml_root: Path) -> None:
    a, b, c = load(ml_root, seed=3), load(ml_root, seed=3), load(ml_root, seed=4)
    for split in ("train", "val", "test"):
        assert torch.equal(getattr(a, split), getattr(b, split))
    assert pairs(a.test) != pairs(c.test) and len(pairs(a.test) & pairs(c.test)) < 0.3 * a.test.size(1)
    ca, cb, cc = (load(ml_root, split="cold", seed=s) for s in (3, 3, 4))
    assert torch.equal(ca.candidates, cb.candidates) and torch.equal(ca.val, cb.val)
    assert not torch.equal(ca.candidates, cc.candidates)


@pytest.mark.data
def test_cold_split(ml_root: Path) -> None:
    data = load(ml_root, split="cold", seed=1)
    assert data.name == "ml100k-cold" and data.num_items == 1682
    cold = data.candidates
    assert cold is not None and cold.dtype == torch.long
    assert cold.numel() == round(0.1 * 1682) and len(set(cold.tolist())) == cold.numel()
    is_cold = torch.zeros(1682, dtype=torch.bool)
    is_cold[cold] = True
    assert not is_cold[data.train[1]].any() and not is_cold[data.val[1]].any()
    assert bool(is_cold[data.test[1]].all())
    # every interaction of a cold item is in test
    ratings = load_movielens100k(ml_root)["ratings"]
    held = ratings[ratings["item_id"].isin((cold + 1).tolist())]
    assert data.test.size(1) == len(held)
    assert all_edges(data).size(1) == 100_000 and len(pairs(all_edges(data))) == 100_000
    assert torch.equal(data.item_mask["id"], ~is_cold) and bool(data.user_mask["id"].all())
    assert bool(data.item_mask["text"][cold].sum() >= cold.numel() - 1)  # cold items keep their content
    # the warm part is split train:val = 8:1 per user
    assert abs(data.val.size(1) / (data.train.size(1) + data.val.size(1)) - 1 / 9) < 0.01
    assert set(data.train[0].tolist()) == set(range(943))


@pytest.mark.data
def test_features_and_masks(ml_root: Path) -> None:
    encoder = FakeTitleEncoder()
    data = load(ml_root, text_encoder=encoder)
    items = load_movielens100k(ml_root)["items"]
    users = load_movielens100k(ml_root)["users"]
    assert set(data.user_features) == {"tabular"} and set(data.item_features) == {"text", "tabular"}
    assert set(data.user_mask) == {"id", "tabular"} and set(data.item_mask) == set(MODALITIES)

    user_tab = data.user_features["tabular"]
    assert user_tab.shape == (943, 1 + 2 + 21 + 11) and user_tab.dtype == torch.float32
    age = user_tab[:, 0]
    assert abs(float(age.mean())) < 1e-5 and abs(float(age.std(unbiased=False)) - 1) < 1e-4
    for block in (slice(1, 3), slice(3, 24), slice(24, 35)):  # gender, occupation, zip region
        assert torch.equal(user_tab[:, block].sum(1), torch.ones(943))
    assert torch.equal(user_tab[:, 1], torch.tensor((users["gender"] == "F").to_numpy(), dtype=torch.float32))
    assert int(user_tab[:, 34].sum()) == int((~users["zip_code"].str[0].str.isdigit()).sum()) == 18
    assert int(user_tab[:, 3:24].sum(0).min()) >= 1  # every occupation occurs

    item_tab = data.item_features["tabular"]
    assert item_tab.shape == (1682, 21) and item_tab.dtype == torch.float32
    genres = torch.tensor(items.iloc[:, 5:].to_numpy(np.float32))
    assert torch.equal(item_tab[:, :19], genres) and torch.equal(data.item_labels, genres)
    assert data.label_names == tuple(items.columns[5:]) and len(data.label_names) == 19
    assert data.label_names[0] == "unknown" and "Sci-Fi" in data.label_names
    year_missing = item_tab[:, 20]
    assert year_missing.sum() == 1 and year_missing[266] == 1
    known = year_missing == 0
    assert abs(float(item_tab[known, 19].mean())) < 1e-4 and item_tab[266, 19] == 0
    star_wars = data.item_names.index("Star Wars (1977)")
    assert item_tab[star_wars, 19] < 0  # 1977 is older than the average film

    # item 267 ("unknown", no date, genre unknown only) has neither text nor tabular information
    assert data.item_names[266] == "unknown" and len(data.item_names) == 1682
    for modality in ("text", "tabular"):
        mask = data.item_mask[modality]
        assert mask.dtype == torch.bool and int(mask.sum()) == 1681 and not mask[266]
    assert bool(data.item_mask["id"].all()) and bool(data.user_mask["tabular"].all())
    assert not data.has("user", "text").any()

    text = data.item_features["text"]
    assert text.shape == (1682, TEXT_DIM) and text.dtype == torch.float32
    assert torch.equal(text[266], torch.zeros(TEXT_DIM))
    torch.testing.assert_close(text[data.item_mask["text"]].norm(dim=1), torch.ones(1681))
    assert "unknown" not in encoder.seen and len(encoder.seen) == len(set(encoder.seen))
    assert set(encoder.seen) == set(data.item_names) - {"unknown"}
    # same title -> same embedding
    dup = items["title"][items["title"].duplicated(keep=False) & (items["title"] != "unknown")].index.tolist()
    assert dup and torch.equal(text[dup[0]], text[items.index[items["title"] == items["title"][dup[0]]][-1]])


@pytest.mark.data
def test_text_embeddings_are_cached(ml_root: Path) -> None:
    first = FakeTitleEncoder()
    a = load(ml_root, text_encoder=first)
    second = FakeTitleEncoder()
    b = load(ml_root, text_encoder=second, split="cold")
    assert first.seen and not second.seen
    assert torch.equal(a.item_features["text"], b.item_features["text"])


@pytest.mark.data
def test_num_users_subset_is_renumbered(ml_root: Path) -> None:
    full = load(ml_root)
    data = load(ml_root, num_users=50)
    tables = load_movielens100k(ml_root)
    ratings = tables["ratings"][tables["ratings"]["user_id"] <= 50]
    kept = np.sort(ratings["item_id"].unique())
    assert data.num_users == 50 and data.num_items == len(kept) < 1682
    edges = all_edges(data)
    assert edges.size(1) == len(ratings)
    assert bool(
        (torch.bincount(edges[1], minlength=data.num_items) > 0).all()
    )  # no item without interactions
    new_of_old = {int(old): new for new, old in enumerate(kept)}
    assert pairs(edges) == {(u - 1, new_of_old[i]) for u, i in zip(ratings["user_id"], ratings["item_id"])}
    # item attributes follow the renumbering
    assert data.item_names == tuple(tables["items"].set_index("item_id").loc[kept, "title"].str.strip())
    assert torch.equal(data.item_labels, full.item_labels[torch.from_numpy(kept - 1)])
    torch.testing.assert_close(
        data.item_features["text"], full.item_features["text"][torch.from_numpy(kept - 1)]
    )
    assert torch.equal(data.user_features["tabular"][:, 1:], full.user_features["tabular"][:50, 1:])
    assert set(data.train[0].tolist()) == set(range(50))
    cold = load(ml_root, num_users=50, split="cold")
    assert cold.candidates.numel() == round(0.1 * data.num_items)
    assert int(cold.candidates.max()) < cold.num_items
