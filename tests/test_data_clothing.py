"""Tests of the clothing-reviews metric-learning tasks (mmsheaf.data.clothing.load_clothing_task).

A deterministic fake text encoder replaces the sentence-transformer, and ``MMSHEAF_CACHE`` points to a
temporary folder, so no model is loaded and nothing is written into the repository. The first tests use a tiny
synthetic CSV (no data needed); the ``@pytest.mark.data`` tests use the real CSV copied from the data mirror,
mostly with ``max_rows=2000``, and the full data where the documented counts are checked.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from torch import Tensor

from mmsheaf.data import DatasetNotFoundError, fill_data_root, load_clothing_reviews
from mmsheaf.data.clothing import (
    CLOTHING_TASKS,
    DEFAULT_MAX_NEIGHBOURS,
    DEFAULT_MIN_CLASS_SIZE,
    MetricTask,
    load_clothing_task,
)

CSV_NAME = "Womens Clothing E-Commerce Reviews.csv"
CSV_PATH = Path("WomensClothingReviews") / "raw" / CSV_NAME
HIERARCHY = ("Division Name", "Department Name", "Class Name")
SPLITS = ("train", "val", "test")


class FakeEncoder:
    """Deterministic fake text encoder: a text -> 8 positive numbers from its SHA-1; records every call."""

    def __init__(self, identifier: str = "fake-clothing-v1", dim: int = 8) -> None:
        self.identifier, self.dim = identifier, dim
        self.calls: list[list[str]] = []

    def vector(self, text: str) -> np.ndarray:
        digest = hashlib.sha1(text.encode("utf-8")).digest()
        return np.frombuffer(digest[: self.dim], dtype=np.uint8).astype(np.float32) + 1.0

    def unit(self, text: str) -> Tensor:
        v = torch.from_numpy(self.vector(text))
        return v / v.norm()

    def __call__(self, texts: list[str]) -> np.ndarray:
        self.calls.append(list(texts))
        return np.stack([self.vector(t) for t in texts])

    @property
    def encoded(self) -> list[str]:
        return [t for call in self.calls for t in call]


ENCODER = FakeEncoder()


# ------------------------------------------------------------------------------------------------------------
# Helpers
# ------------------------------------------------------------------------------------------------------------


def _split_items(task: MetricTask) -> dict[str, set[int]]:
    return {s: set(task.item_ids[task.split(s)].tolist()) for s in SPLITS}


def _rows_of_items(task: MetricTask, items: set[int]) -> Tensor:
    return torch.from_numpy(np.flatnonzero(np.isin(task.item_ids.numpy(), sorted(items))))


def _check_partition(task: MetricTask) -> None:
    """Splits sorted, disjoint, covering every row, and closed under items (no item on two sides)."""
    for s in SPLITS:
        idx = task.split(s)
        assert idx.dtype == torch.long
        assert torch.equal(idx, idx.sort().values)
    every = torch.cat([task.split(s) for s in SPLITS])
    assert torch.equal(every.sort().values, torch.arange(task.num_rows))  # disjoint and covering
    items = _split_items(task)
    assert not items["train"] & items["val"]
    assert not items["train"] & items["test"]
    assert not items["val"] & items["test"]
    for s in SPLITS:  # every review of an item lies in the split of the item
        assert torch.equal(_rows_of_items(task, items[s]), task.split(s))


def _degrees(task: MetricTask) -> Tensor:
    assert task.edge_index is not None
    return torch.bincount(task.edge_index[0], minlength=task.num_rows)


def _decode(task: MetricTask, j: int) -> list[str | None]:
    """The values of categorical column ``j`` (``None`` for code -1)."""
    return [None if c < 0 else task.categories[j][c] for c in task.categorical[:, j].tolist()]


def _write_csv(root: Path, frame: pd.DataFrame) -> Path:
    """Write ``frame`` like the Kaggle CSV (unnamed index column first) into the data root ``root``."""
    path = root / CSV_PATH
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path)
    return path


# Special texts of the tiny CSV: (title, review) -> (expected joined text, has text).
SPECIAL_TEXTS: list[tuple[object, object, str, bool]] = [
    ("Nice", "Great dress", "Nice. Great dress", True),
    ("Wow!", "Fits well", "Wow! Fits well", True),
    ("Only a title", np.nan, "Only a title", True),
    (np.nan, "Only a review", "Only a review", True),
    (np.nan, np.nan, "", False),
    ("   ", np.nan, "", False),
    ("  Padded ", " text ", "Padded. text", True),
]


def _tiny_frame() -> pd.DataFrame:
    """12 items of 3-5 reviews (classes Dresses / Knits), one single-review item, a rare 2-review class, a row
    without hierarchy, a missing Age, and the special texts on the first item's reviews."""
    rows: list[dict[str, Any]] = []
    for item in range(12):
        cls = "Dresses" if item % 2 else "Knits"
        for j in range(3 + item % 3):
            rows.append({
                "Clothing ID": 100 + item, "Age": 20.0 + item + j, "Title": f"Title {item}-{j}",
                "Review Text": f"Review {item}-{j}", "Rating": 1 + (item + j) % 5,
                "Recommended IND": (item + j) % 2, "Positive Feedback Count": 0, "Division Name": "General",
                "Department Name": "Dresses" if cls == "Dresses" else "Tops", "Class Name": cls,
            })  # fmt: skip
    base = dict(rows[0])
    rows.append(base | {"Clothing ID": 200, "Title": "Single", "Review Text": "Single review"})
    rows += [base | {"Clothing ID": 300, "Title": f"Rare {j}", "Class Name": "Rare"} for j in range(2)]
    rows.append(base | {"Clothing ID": 101, "Title": "No class", "Division Name": np.nan,
                        "Department Name": np.nan, "Class Name": np.nan})  # fmt: skip
    frame = pd.DataFrame(rows)
    frame.loc[3, "Age"] = np.nan
    item0 = np.flatnonzero(frame["Clothing ID"].to_numpy() == 100)
    item2 = np.flatnonzero(frame["Clothing ID"].to_numpy() == 102)
    for row, (title, review, _, _) in zip([*item0, *item2], SPECIAL_TEXTS, strict=False):
        frame.loc[row, ["Title", "Review Text"]] = [title, review]
    return frame


# ------------------------------------------------------------------------------------------------------------
# Arguments and missing data (no data needed)
# ------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("task", "kwargs", "match"),
    [
        ("t3", {}, r"Unknown clothing task 't3': choose one of item, category"),
        ("item", {"train_fraction": 0.0}, r"train_fraction must lie in \(0, 1\], got 0.0"),
        ("category", {"train_fraction": 1.5}, r"train_fraction must lie in \(0, 1\], got 1.5"),
        ("item", {"val_fraction": 1.0}, r"val_fraction must lie in \[0, 1\) for the 'item' task, got 1.0"),
        ("category", {"val_fraction": 0.8}, r"val_fraction must lie in \[0, 0.8\) for the 'category' task"),
        ("t2", {"val_fraction": -0.1}, r"val_fraction must lie in \[0, 0.8\)"),
        ("item", {"max_rows": 1}, r"max_rows must be None \(all rows\) or at least 2, got 1"),
        ("category", {"min_class_size": 0}, r"min_class_size must be a positive number of reviews, got 0"),
        ("category", {"max_neighbours": 0}, r"max_neighbours must be None \(whole cliques\) or at least 1"),
    ],
)
def test_bad_arguments_raise_before_reading(
    tmp_path: Path, task: str, kwargs: dict[str, Any], match: str
) -> None:
    """Bad arguments raise a ValueError naming the argument and its allowed values (before reading a file)."""
    with pytest.raises(ValueError, match=match):
        load_clothing_task(task, tmp_path / "no-data", text_encoder=ENCODER, **kwargs)


@pytest.mark.parametrize("task", CLOTHING_TASKS)
def test_missing_csv_raises_dataset_not_found(tmp_path: Path, task: str) -> None:
    """A data root without the CSV raises DatasetNotFoundError naming the file, the root and the source."""
    with pytest.raises(DatasetNotFoundError) as info:
        load_clothing_task(task, tmp_path, text_encoder=ENCODER)
    message = str(info.value)
    assert str(tmp_path / CSV_PATH) in message
    assert "'clothing'" in message and "nicapotato/womens-ecommerce-clothing-reviews" in message
    assert isinstance(info.value, FileNotFoundError)


# ------------------------------------------------------------------------------------------------------------
# A tiny synthetic CSV (no data needed)
# ------------------------------------------------------------------------------------------------------------


@pytest.fixture
def tiny_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A data root holding the tiny CSV at the real file's path (so the sha256 check is off); the text cache
    goes to ``tmp_path/"cache"``."""
    monkeypatch.setenv("MMSHEAF_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("MMSHEAF_CHECK_HASHES", "0")
    root = tmp_path / "data"
    _write_csv(root, _tiny_frame())
    return root


def test_tiny_csv_texts_mask_and_embeddings(tiny_root: Path, tmp_path: Path) -> None:
    """Joined texts, missing flags (NaN and blank), zero embeddings without text, fake ones otherwise."""
    raw = load_clothing_reviews(tiny_root)
    assert raw["Title"].tolist().count("   ") == 1  # the blank title survives the CSV round trip
    encoder = FakeEncoder("fake-tiny")
    task = load_clothing_task("item", tiny_root, text_encoder=encoder, min_class_size=1)
    by_row = {int(r): i for i, r in enumerate(task.row_index)}
    firsts = [*np.flatnonzero(raw["Clothing ID"] == 100), *np.flatnonzero(raw["Clothing ID"] == 102)]
    for row, (title, review, expected, has_text) in zip(firsts, SPECIAL_TEXTS, strict=False):
        i = by_row[int(row)]
        assert task.texts[i] == expected
        assert bool(task.text_mask[i]) is has_text
        assert bool(task.title_missing[i]) is (pd.isna(title) or not str(title).strip())
        assert bool(task.review_missing[i]) is pd.isna(review)
    mask = task.text_mask
    assert torch.equal(mask, ~(task.title_missing & task.review_missing))
    assert int((~mask).sum()) == 2
    assert torch.count_nonzero(task.text[~mask]) == 0
    with_text = [t for t, m in zip(task.texts, mask.tolist(), strict=True) if m]
    expected_text = torch.stack([encoder.unit(t) for t in with_text])
    torch.testing.assert_close(task.text[mask], expected_text)
    assert "" not in encoder.encoded and set(encoder.encoded) == {t for t in task.texts if t}
    assert list((tmp_path / "cache" / "text_embeddings").glob("fake-tiny-*/shard-*.npz"))  # cache in tmp


def test_tiny_csv_eligibility_labels_and_tabular(tiny_root: Path) -> None:
    """Which rows each task keeps, labels, categorical codes, NaN-aware training statistics, constant std."""
    raw = load_clothing_reviews(tiny_root)
    item = load_clothing_task("t1", tiny_root, text_encoder=ENCODER)
    assert item.name == "clothing-item" and item.task == "item"
    assert 200 not in item.item_ids.tolist()  # the single-review item
    assert item.num_rows == len(raw) - 1 and item.num_classes == 13
    assert [item.label_names[c] for c in item.labels.tolist()] == [str(v) for v in item.item_ids.tolist()]
    assert item.col_names_categorical == ("Recommended IND", *HIERARCHY)
    assert item.categories[0] == ("0", "1") and item.categories[3] == ("Dresses", "Knits", "Rare")
    classes = raw.loc[item.row_index.numpy(), "Class Name"]
    assert _decode(item, 3) == [None if pd.isna(v) else v for v in classes]  # code -1 where missing
    frame_classes = item.to_pandas()["Class Name"]
    assert [None if pd.isna(v) else v for v in frame_classes] == _decode(item, 3)
    assert int((item.categorical[:, 1:] == -1).sum()) == 3

    category = load_clothing_task(" T2 ", tiny_root, text_encoder=ENCODER, min_class_size=3)
    assert category.name == "clothing-category" and category.label_names == ("Dresses", "Knits")
    assert category.num_rows == len(raw) - 1 - 2  # no class, rare class
    assert [category.label_names[c] for c in category.labels.tolist()] == raw.loc[
        category.row_index.numpy(), "Class Name"
    ].tolist()
    with_rare = load_clothing_task("category", tiny_root, text_encoder=ENCODER, min_class_size=2)
    assert with_rare.label_names == ("Dresses", "Knits", "Rare") and with_rare.num_rows == len(raw) - 1

    for task in (item, category):
        train = task.numerical[task.train_idx].double()
        assert torch.isnan(task.numerical[:, 0]).sum() == 1  # the missing Age stays NaN
        torch.testing.assert_close(task.numerical_mean.double(), train.nanmean(0), atol=1e-5, rtol=1e-5)
        assert task.numerical_std[2] == 1.0 and task.numerical_mean[2] == 0.0  # constant column
        assert not torch.isnan(task.standardized_numerical()).any()


def test_tiny_csv_category_cut_is_unbiased(tiny_root: Path) -> None:
    """T2 cuts the shuffled items where an item's middle falls: each split is within half an item (val: one
    item) of its share of the rows, and over seeds the training split is sometimes larger, sometimes
    smaller."""
    deviations = []
    for seed in range(20):
        t = load_clothing_task("category", tiny_root, text_encoder=ENCODER, min_class_size=1, seed=seed)
        _check_partition(t)
        largest = int(torch.bincount(t.item_ids).max())
        shares = zip(SPLITS, (0.6, 0.2, 0.2), strict=True)
        off = [t.split(s).numel() - share * t.num_rows for s, share in shares]
        assert abs(off[0]) <= largest / 2 and abs(off[2]) <= largest / 2 and abs(off[1]) <= largest
        deviations.append(off[0])
    assert min(deviations) < 0 < max(deviations)


def test_tensors_do_not_share_read_only_memory(tiny_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every tensor is built from a writable array (torch warns that writing to read-only NumPy memory through
    a tensor is undefined behaviour)."""
    read_only: list[tuple[int, ...]] = []
    original = torch.from_numpy

    def checked(array: np.ndarray) -> Tensor:
        if not array.flags.writeable:
            read_only.append(array.shape)
        return original(array)

    monkeypatch.setattr(torch, "from_numpy", checked)
    for task in CLOTHING_TASKS:
        load_clothing_task(task, tiny_root, text_encoder=ENCODER, min_class_size=1)
    assert not read_only


def test_tiny_csv_too_few_rows_leave_a_split_empty(tiny_root: Path) -> None:
    """A max_rows that leaves an empty split raises a ValueError that suggests a larger max_rows."""
    with pytest.raises(ValueError, match=r"leaves a split empty .* raise max_rows"):
        load_clothing_task("item", tiny_root, text_encoder=ENCODER, max_rows=3)


# ------------------------------------------------------------------------------------------------------------
# Real data (copied from the mirror into a temporary data root)
# ------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def clothing_root(data_mirror: Path, real_data_root: Path) -> Path:
    fill_data_root(data_mirror, real_data_root, only=["clothing"])
    return real_data_root


@pytest.fixture(scope="module")
def raw(clothing_root: Path) -> pd.DataFrame:
    return load_clothing_reviews(clothing_root)


@pytest.fixture(scope="module")
def text_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """``MMSHEAF_CACHE`` in a temporary folder for the module's real-data loads."""
    folder = tmp_path_factory.mktemp("clothing_cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MMSHEAF_CACHE", str(folder))
        yield folder


@pytest.fixture(scope="module")
def load(clothing_root: Path, text_cache: Path) -> Iterator[Callable[..., MetricTask]]:
    """``load(task, **kwargs)``: the real task with the fake encoder, memoised (tests must not modify it)."""
    memo: dict[tuple[str, tuple[tuple[str, Any], ...]], MetricTask] = {}

    def _load(task: str, **kwargs: Any) -> MetricTask:
        kwargs = {"seed": 0} | kwargs
        key = (task, tuple(sorted(kwargs.items())))
        if key not in memo:
            memo[key] = load_clothing_task(task, clothing_root, text_encoder=ENCODER, **kwargs)
        return memo[key]

    yield _load
    assert list(text_cache.glob("text_embeddings/fake-clothing-v1-*/shard-*.npz"))  # the cache went there


SMALL = {"max_rows": 2000}


@pytest.mark.data
@pytest.mark.parametrize("task", CLOTHING_TASKS)
@pytest.mark.parametrize("seed", [0, 1])
def test_splits_partition_rows_and_items(load: Callable[..., MetricTask], task: str, seed: int) -> None:
    """Splits are disjoint, cover the task's rows, and no Clothing ID is in two splits."""
    t = load(task, seed=seed, **SMALL)
    assert 0 < t.num_rows <= 2000
    assert all(t.split(s).numel() > 0 for s in SPLITS)
    _check_partition(t)


@pytest.mark.data
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_item_split_is_class_disjoint_half_test(load: Callable[..., MetricTask], seed: int) -> None:
    """T1: half of the items (rounded) are test items, val_fraction of the rest val; classes never shared."""
    t = load("item", seed=seed, **SMALL)
    items = _split_items(t)
    n_items = len(np.unique(t.item_ids.numpy()))
    assert n_items == t.num_classes and sum(len(v) for v in items.values()) == n_items
    assert abs(len(items["test"]) - n_items / 2) <= 0.5
    assert abs(len(items["val"]) - 0.2 * (n_items - len(items["test"]))) <= 0.5
    classes = {s: set(t.labels[t.split(s)].tolist()) for s in SPLITS}
    assert not classes["train"] & classes["test"]
    assert not classes["val"] & (classes["train"] | classes["test"])
    assert all(len(v) >= 2 for v in [np.flatnonzero(t.labels.numpy() == c) for c in range(t.num_classes)])


@pytest.mark.data
def test_val_fraction_zero_gives_no_validation(load: Callable[..., MetricTask]) -> None:
    """val_fraction 0: no validation rows, train and test cover the task (both tasks)."""
    for task in CLOTHING_TASKS:
        t = load(task, val_fraction=0.0, **SMALL)
        assert t.val_idx.numel() == 0
        _check_partition(t)


@pytest.mark.data
@pytest.mark.parametrize("task", CLOTHING_TASKS)
def test_train_fraction_takes_nested_subsets_of_training_items(
    load: Callable[..., MetricTask], task: str
) -> None:
    """train_fraction < 1 keeps nested subsets of the training items; val, test and the tensors unchanged."""
    full = load(task, **SMALL)
    full_items = _split_items(full)
    previous = full_items["train"]
    for fraction in (0.5, 0.25, 1e-6):
        part = load(task, train_fraction=fraction, **SMALL)
        assert torch.equal(part.val_idx, full.val_idx) and torch.equal(part.test_idx, full.test_idx)
        assert torch.equal(part.item_ids, full.item_ids) and torch.equal(part.text, full.text)
        if task == "category":
            assert torch.equal(part.edge_index, full.edge_index)
        items = _split_items(part)["train"]
        assert items <= previous
        assert len(items) == max(1, round(fraction * len(full_items["train"])))
        assert torch.equal(part.train_idx, _rows_of_items(part, items))  # whole items
        previous = items
    assert len(previous) == 1


@pytest.mark.data
@pytest.mark.parametrize("task", CLOTHING_TASKS)
def test_seed_reproduces_and_changes_the_split(clothing_root: Path, text_cache: Path, task: str) -> None:
    """The same seed gives identical tasks; another seed another split (also on the same rows)."""
    a, b = (load_clothing_task(task, clothing_root, text_encoder=ENCODER, seed=3, **SMALL) for _ in range(2))
    for name in ("row_index", "labels", "text", "categorical", "train_idx", "val_idx", "test_idx"):
        assert torch.equal(getattr(a, name), getattr(b, name)), name
    assert (a.edge_index is None and b.edge_index is None) or torch.equal(a.edge_index, b.edge_index)
    other = load_clothing_task(task, clothing_root, text_encoder=ENCODER, seed=4, **SMALL)
    assert not torch.equal(other.row_index, a.row_index)  # the max_rows subsample depends on the seed
    full = [load_clothing_task(task, clothing_root, text_encoder=ENCODER, seed=s) for s in (0, 1)]
    assert torch.equal(full[0].row_index, full[1].row_index)
    assert _split_items(full[0])["test"] != _split_items(full[1])["test"]


@pytest.mark.data
@pytest.mark.parametrize("max_neighbours", [DEFAULT_MAX_NEIGHBOURS, 3, 2, 1, None])
def test_category_graph_joins_reviews_of_one_item(
    load: Callable[..., MetricTask], max_neighbours: int | None
) -> None:
    """T2 graph: same-item edges, symmetric, sorted, no self loops or duplicates, degree <= max_neighbours;
    small items are cliques, larger ones connected (max_neighbours >= 2)."""
    t = load("category", max_neighbours=max_neighbours, **SMALL)
    src, dst = t.edge_index
    n = t.num_rows
    assert t.edge_index.dtype == torch.long and t.edge_index.numel() > 0
    assert torch.equal(t.item_ids[src], t.item_ids[dst])
    assert not (src == dst).any()
    keys = src * n + dst
    assert (keys[1:] > keys[:-1]).all()  # sorted, no duplicates
    assert torch.equal((dst * n + src).sort().values, keys)  # symmetric
    degree = _degrees(t)
    counts = torch.bincount(torch.unique(t.item_ids, return_inverse=True)[1])
    size = counts[torch.unique(t.item_ids, return_inverse=True)[1]]  # reviews of each row's item
    assert (counts > DEFAULT_MAX_NEIGHBOURS + 1).any()  # the subsample has items above the clique size
    bound = n if max_neighbours is None else max_neighbours
    assert int(degree.max()) <= bound
    clique = size <= bound + 1
    assert torch.equal(degree[clique], size[clique] - 1)
    if max_neighbours is None or max_neighbours >= 2:
        assert bool((degree[~clique] >= 2).all())
        graph = coo_matrix((np.ones(src.numel()), (src.numpy(), dst.numpy())), shape=(n, n))
        assert connected_components(graph, directed=False)[0] == len(counts)  # one component per item
    if max_neighbours == 2:
        assert torch.equal(degree[~clique], torch.full_like(degree[~clique], 2))  # one Hamiltonian cycle


@pytest.mark.data
def test_inputs_of_each_task(load: Callable[..., MetricTask], raw: pd.DataFrame) -> None:
    """T1: no graph, the hierarchy as input; T2: a graph, only Recommended IND; codes decode to the CSV."""
    item, category = load("item", **SMALL), load("category", **SMALL)
    assert item.edge_index is None and category.edge_index is not None
    assert item.col_names_categorical == ("Recommended IND", *HIERARCHY)
    assert category.col_names_categorical == ("Recommended IND",) and category.categorical.shape == (2000, 1)
    assert not set(HIERARCHY) & (set(category.col_names_categorical) | set(category.col_names_numerical))
    for t in (item, category):
        assert t.col_names_numerical == ("Age", "Rating", "Positive Feedback Count")
        assert t.text.shape == (t.num_rows, 8) and t.text.dtype == torch.float32
        rows = raw.loc[t.row_index.numpy()]
        assert rows["Clothing ID"].tolist() == t.item_ids.tolist()
        numerical = rows[list(t.col_names_numerical)].to_numpy(np.float32)
        np.testing.assert_array_equal(t.numerical.numpy(), numerical)
        for j, col in enumerate(t.col_names_categorical):
            assert _decode(t, j) == [None if pd.isna(v) else str(v).strip() for v in rows[col]]
    assert [category.label_names[c] for c in category.labels.tolist()] == raw.loc[
        category.row_index.numpy(), "Class Name"
    ].tolist()


@pytest.mark.data
@pytest.mark.parametrize("task", CLOTHING_TASKS)
def test_text_mask_and_zero_embeddings(load: Callable[..., MetricTask], raw: pd.DataFrame, task: str) -> None:
    """text_mask is False exactly where title and review are missing; those rows embed to zero, others to the
    (normalised) fake embedding of ``"Title. Review Text"``."""
    t = load(task)
    rows = raw.loc[t.row_index.numpy()]
    title, review = rows["Title"].isna().to_numpy(), rows["Review Text"].isna().to_numpy()
    assert np.array_equal(t.title_missing.numpy(), title) and np.array_equal(t.review_missing.numpy(), review)
    assert np.array_equal(t.text_mask.numpy(), ~(title & review))
    assert 0 < int((~t.text_mask).sum()) <= 844  # 844 reviews of the CSV have neither
    assert torch.count_nonzero(t.text[~t.text_mask]) == 0
    assert all(t.texts[i] == "" for i in np.flatnonzero(~t.text_mask.numpy()))
    torch.testing.assert_close(t.text[t.text_mask].norm(dim=1), torch.ones(int(t.text_mask.sum())))
    sample = np.flatnonzero(t.text_mask.numpy())[::97]
    torch.testing.assert_close(t.text[sample], torch.stack([ENCODER.unit(t.texts[i]) for i in sample]))
    both = np.flatnonzero(~title & ~review)[:50]
    for i in both:
        head = str(rows["Title"].iloc[i]).strip()
        assert t.texts[i].startswith(head) and t.texts[i].endswith(str(rows["Review Text"].iloc[i]).strip())


@pytest.mark.data
@pytest.mark.parametrize("task", CLOTHING_TASKS)
def test_numerical_statistics_come_from_training_rows(load: Callable[..., MetricTask], task: str) -> None:
    """numerical_mean / numerical_std are the (population) statistics of the training rows only."""
    t = load(task, train_fraction=0.3, **SMALL)
    train = t.numerical[t.train_idx].double().numpy()
    mean, std = np.nanmean(train, axis=0), np.nanstd(train, axis=0)
    np.testing.assert_allclose(t.numerical_mean.numpy(), mean, rtol=1e-5)
    np.testing.assert_allclose(t.numerical_std.numpy(), std, rtol=1e-5)
    everything = t.numerical.double().numpy()
    assert not np.allclose(mean, np.nanmean(everything, axis=0), rtol=1e-3)  # the check can tell them apart
    z = t.standardized_numerical()[t.train_idx].double()
    torch.testing.assert_close(z.mean(0), torch.zeros(3, dtype=torch.float64), atol=1e-5, rtol=0)
    std_z = z.std(0, unbiased=False)
    torch.testing.assert_close(std_z, torch.ones(3, dtype=torch.float64), atol=1e-5, rtol=0)


@pytest.mark.data
@pytest.mark.parametrize("task", CLOTHING_TASKS)
def test_max_rows_keeps_whole_eligible_items(load: Callable[..., MetricTask], task: str) -> None:
    """max_rows keeps whole items (all their reviews of the full task) and the full task's classes only."""
    small, full = load(task, **SMALL), load(task)
    assert small.num_rows <= 2000
    full_counts = pd.Series(full.item_ids.numpy()).value_counts()
    small_counts = pd.Series(small.item_ids.numpy()).value_counts()
    assert small_counts.equals(full_counts[small_counts.index])
    assert set(small.label_names) <= set(full.label_names)


@pytest.mark.data
def test_full_item_task_counts(load: Callable[..., MetricTask], raw: pd.DataFrame) -> None:
    """T1 on the full data: the 715 items with >= 2 reviews (22,995 rows); 358/71/286 test/val/train."""
    t = load("item")
    per_item = raw["Clothing ID"].value_counts()
    eligible = sorted(per_item.index[per_item >= 2])
    assert len(eligible) == 715 and int(per_item[per_item >= 2].sum()) == 22_995
    assert t.num_rows == 22_995 and t.num_classes == 715
    assert t.label_names == tuple(str(v) for v in eligible)
    assert torch.equal(t.row_index, torch.from_numpy(np.flatnonzero(raw["Clothing ID"].isin(eligible))))
    items = _split_items(t)
    assert (len(items["test"]), len(items["val"]), len(items["train"])) == (358, 71, 286)
    assert t.edge_index is None and t.text.shape == (22_995, 8)
    _check_partition(t)


@pytest.mark.data
def test_full_category_task_counts(load: Callable[..., MetricTask], raw: pd.DataFrame) -> None:
    """T2 on the full data: 23,469 rows (14 without class, Chemises 1 and Casual bottoms 2 dropped),
    18 classes, largest item 1,024 reviews, degree <= 10."""
    sizes = raw["Class Name"].value_counts()
    assert int(raw["Class Name"].isna().sum()) == 14 and len(sizes) == 20
    small = sizes[sizes < DEFAULT_MIN_CLASS_SIZE]
    assert small.to_dict() == {"Casual bottoms": 2, "Chemises": 1} and sizes[sizes >= 50].min() == 119
    assert sizes.idxmin() == "Chemises" and sizes[sizes >= 50].idxmin() == "Trend"

    t = load("category")
    assert t.num_rows == 23_486 - 14 - 2 - 1 == 23_469 and t.num_classes == 18
    assert set(t.label_names) == set(sizes.index) - {"Casual bottoms", "Chemises"}
    _check_partition(t)
    largest = int(pd.Series(t.item_ids.numpy()).value_counts().max())
    assert largest == 1024
    assert int(_degrees(t).max()) <= DEFAULT_MAX_NEIGHBOURS

    everything = load("category", min_class_size=1)
    assert everything.num_rows == 23_472 and everything.num_classes == 20


@pytest.mark.data
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_full_category_split_is_60_20_20_by_rows(load: Callable[..., MetricTask], seed: int) -> None:
    """T2: row shares within 3 points of 60/20/20, and within the bound set by cutting at an item's middle."""
    t = load("category", seed=seed)
    n = t.num_rows
    shares = [t.split(s).numel() / n for s in SPLITS]
    assert shares == pytest.approx([0.6, 0.2, 0.2], abs=0.03)
    half = int(pd.Series(t.item_ids.numpy()).value_counts().max()) / 2
    assert abs(t.train_idx.numel() - 0.6 * n) <= half and abs(t.test_idx.numel() - 0.2 * n) <= half
    with_val = load("category", seed=seed, val_fraction=0.1)
    val_shares = [with_val.split(s).numel() / n for s in SPLITS]
    assert val_shares == pytest.approx([0.7, 0.1, 0.2], abs=0.03)
