"""Women's E-Commerce Clothing Reviews as metric-learning tasks with text, tabular and graph inputs.

Each review (row) is one sample with three modalities: the sentence embedding of its title and text, a small
table (age, rating, positive feedback count, recommended flag and, for one task, the product hierarchy) and a
graph that links reviews of the same product (``Clothing ID``). Two tasks (:data:`CLOTHING_TASKS`):

============  ======================  =====================================  ==============================
task          label                   split                                  graph
============  ======================  =====================================  ==============================
``item``      ``Clothing ID``         by item, classes disjoint: test is     none (it would be built from
(T1)          (items with >= 2        half the items, val a share of the     the label)
              reviews)                rest (deep-metric-learning protocol)
``category``  ``Class Name``          by item, about 60/20/20 of the rows:   same-item reviews, bounded
(T2)          (classes with >= 50     an item's reviews all on one side      degree
              reviews)
============  ======================  =====================================  ==============================

For ``category`` the product hierarchy (``Division Name``, ``Department Name``, ``Class Name``) is not an
input: ``Department Name`` is a function of the label.

This module chooses the rows, labels and item-level splits of a task and holds them in :class:`MetricTask`;
the text, tabular and graph inputs of the chosen rows are built by :mod:`mmsheaf.data.clothing_features`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from mmsheaf.data.clothing_features import (
    NUMERICAL_COLUMNS,
    categorical_codes,
    missing_mask,
    numerical_features,
    review_text,
    same_item_graph,
)
from mmsheaf.data.tables import load_clothing_reviews

__all__ = [
    "CLOTHING_TASKS",
    "DEFAULT_MAX_NEIGHBOURS",
    "DEFAULT_MIN_CLASS_SIZE",
    "MetricTask",
    "load_clothing_task",
]

CLOTHING_TASKS: tuple[str, ...] = ("item", "category")
"""The tasks of :func:`load_clothing_task`: ``"item"`` (T1, item retrieval), ``"category"`` (T2, Class Name).
``"t1"`` and ``"t2"`` are accepted as aliases."""

_TASK_ALIASES = {"t1": "item", "t2": "category"}

DEFAULT_MIN_CLASS_SIZE = 50
"""Smallest ``Class Name`` kept by the ``category`` task. 50 drops only ``Casual bottoms`` (2 reviews) and
``Chemises`` (1), which cannot appear on all three sides of an item-level split; the next smallest class,
``Trend``, has 119 reviews."""

DEFAULT_MAX_NEIGHBOURS = 10
"""Largest degree of a review in the same-item graph of the ``category`` task."""

HIERARCHY_COLUMNS: tuple[str, ...] = ("Division Name", "Department Name", "Class Name")
_TEST_SHARE = {"item": 0.5, "category": 0.2}  # items (T1) / rows (T2)


@dataclass(frozen=True, eq=False)
class MetricTask:
    r"""One clothing-reviews task: every row's text, tabular and graph inputs, labels and an item-level split.

    The tensors hold **all** rows of the task (in the order of the CSV); ``train_idx``, ``val_idx`` and
    ``test_idx`` index into them. Nothing that identifies the product (``Clothing ID``) is an input:
    ``item_ids`` is metadata for grouping and checks.

    Args:
        name: ``"clothing-item"`` or ``"clothing-category"``.
        task: ``"item"`` or ``"category"``.
        text: Sentence embeddings of ``texts``; zero rows where ``text_mask`` is ``False``.
        text_mask: ``True`` where the review has a title or a review text.
        title_missing: ``True`` where the title is missing (NaN or blank).
        review_missing: ``True`` where the review text is missing.
        texts: The embedded strings, ``"Title. Review Text"`` (whichever is present; ``""`` where neither).
        numerical: ``Age``, ``Rating``, ``Positive Feedback Count`` as floats, NaN where missing.
        numerical_mean: Mean of each numerical column over the training rows (NaN ignored).
        numerical_std: Standard deviation over the training rows (1 where it is 0 or undefined).
        categorical: Integer codes into ``categories``, -1 where missing.
        col_names_numerical: Names of the ``numerical`` columns.
        col_names_categorical: Names of the ``categorical`` columns: ``Recommended IND`` and, for ``item``
            only, the product hierarchy.
        categories: The values of each categorical column (as strings), code ``c`` is ``categories[j][c]``.
        edge_index: Undirected same-item graph (both directions, sorted, no self loops), or ``None`` for the
            ``item`` task, whose graph would reveal the label.
        labels: Class of each row, ``0 .. C-1``.
        label_names: Name of each class (the ``Clothing ID`` or the ``Class Name``).
        item_ids: The ``Clothing ID`` of each row (not an input).
        row_index: Position of each row in :func:`~mmsheaf.data.tables.load_clothing_reviews`.
        train_idx: Training rows (sorted).
        val_idx: Validation rows (sorted).
        test_idx: Test rows (sorted).

    Shapes:
        - **text:** :math:`(N, D)` float32, :math:`D = 384` for the default model
        - **text_mask / title_missing / review_missing:** :math:`(N,)` bool
        - **numerical:** :math:`(N, 3)` float32; **numerical_mean / numerical_std:** :math:`(3,)`
        - **categorical:** :math:`(N, K)` long, :math:`K = 4` (``item``) or :math:`1` (``category``)
        - **edge_index:** :math:`(2, E)` long
        - **labels / item_ids / row_index:** :math:`(N,)` long
        - **train_idx / val_idx / test_idx:** :math:`(N_s,)` long
    """

    name: str
    task: str
    text: Tensor
    text_mask: Tensor
    title_missing: Tensor
    review_missing: Tensor
    texts: tuple[str, ...]
    numerical: Tensor
    numerical_mean: Tensor
    numerical_std: Tensor
    categorical: Tensor
    col_names_numerical: tuple[str, ...]
    col_names_categorical: tuple[str, ...]
    categories: tuple[tuple[str, ...], ...]
    edge_index: Tensor | None
    labels: Tensor
    label_names: tuple[str, ...]
    item_ids: Tensor
    row_index: Tensor
    train_idx: Tensor
    val_idx: Tensor
    test_idx: Tensor

    def __post_init__(self) -> None:
        n = self.labels.size(0)
        for field_name in ("text", "text_mask", "title_missing", "review_missing", "numerical", "categorical",
                           "item_ids", "row_index"):  # fmt: skip
            if getattr(self, field_name).size(0) != n:
                raise ValueError(f"{field_name} has {getattr(self, field_name).size(0)} rows, expected {n}.")
        if len(self.texts) != n:
            raise ValueError(f"texts has {len(self.texts)} entries, expected {n}.")
        if self.numerical.size(1) != len(self.col_names_numerical) or self.categorical.size(1) != len(
            self.col_names_categorical
        ) or len(self.categories) != len(self.col_names_categorical):  # fmt: skip
            raise ValueError("The tabular columns and their names do not match.")
        if self.edge_index is not None and (self.edge_index.dim() != 2 or self.edge_index.size(0) != 2):
            raise ValueError(f"edge_index must be (2, E), got {tuple(self.edge_index.shape)}.")
        seen = torch.zeros(n, dtype=torch.long)
        for split in (self.train_idx, self.val_idx, self.test_idx):
            seen.index_add_(0, split, torch.ones_like(split))
        if n and int(seen.max()) > 1:
            raise ValueError("train_idx, val_idx and test_idx overlap.")

    # -- sizes ---------------------------------------------------------------------------------------------

    @property
    def num_rows(self) -> int:
        """:math:`N`, the number of reviews in the task (all splits, also rows left out by ``train_fraction``)."""
        return int(self.labels.size(0))

    @property
    def num_classes(self) -> int:
        """:math:`C`, the number of classes."""
        return len(self.label_names)

    @property
    def num_categories(self) -> tuple[int, ...]:
        """Number of categories of each categorical column (codes ``0 .. n-1``, -1 missing)."""
        return tuple(len(c) for c in self.categories)

    def split(self, name: str) -> Tensor:
        """The row indices of ``"train"``, ``"val"`` or ``"test"``."""
        if name not in ("train", "val", "test"):
            raise ValueError(f"Unknown split {name!r}: choose one of train, val, test.")
        return getattr(self, f"{name}_idx")

    # -- tabular -------------------------------------------------------------------------------------------

    def standardized_numerical(self, fill_value: float = 0.0) -> Tensor:
        """``numerical`` standardised with the training mean and std; missing values become ``fill_value``.

        Shapes:
            - **output:** :math:`(N, 3)` float32
        """
        z = (self.numerical - self.numerical_mean) / self.numerical_std
        return torch.nan_to_num(z, nan=fill_value)

    def to_pandas(self, rows: Tensor | Sequence[int] | None = None) -> pd.DataFrame:
        """The tabular inputs, text and label as a DataFrame (e.g. for pytorch-frame).

        Columns: the numerical columns (float, NaN missing), the categorical columns (their values as strings;
        a missing value is ``NaN`` in the frame: pandas 3 stores string columns with NaN as the missing
        marker), ``"text"`` (missing where ``text_mask`` is ``False``), ``"label"`` (the class code)
        and ``"split"`` (``"train"``, ``"val"``, ``"test"`` or ``""`` for rows in none of them).

        Args:
            rows: Row indices to keep (default all), e.g. ``task.train_idx``.
        """
        idx = np.arange(self.num_rows) if rows is None else torch.as_tensor(rows, dtype=torch.long).numpy()
        frame: dict[str, Any] = {}
        numerical = self.numerical.numpy()
        for j, col in enumerate(self.col_names_numerical):
            frame[col] = numerical[idx, j]
        codes = self.categorical.numpy()
        for j, col in enumerate(self.col_names_categorical):
            values = np.array([*self.categories[j], None], dtype=object)
            frame[col] = values[codes[idx, j]]  # code -1 -> the trailing None
        texts = np.array(self.texts, dtype=object)[idx]
        frame["text"] = np.where(self.text_mask.numpy()[idx], texts, None)
        frame["label"] = self.labels.numpy()[idx]
        split = np.full(self.num_rows, "", dtype=object)
        for name in ("train", "val", "test"):
            split[self.split(name).numpy()] = name
        frame["split"] = split[idx]
        return pd.DataFrame(frame, index=pd.Index(self.row_index.numpy()[idx], name="row"))

    def col_to_stype(self) -> dict[str, Any]:
        """pytorch-frame semantic types of the tabular columns of :meth:`to_pandas` (and ``"label"``).

        ``torch_frame.data.Dataset(task.to_pandas(), task.col_to_stype(), target_col="label")``.
        """
        from torch_frame import stype

        out: dict[str, Any] = {col: stype.numerical for col in self.col_names_numerical}
        out.update({col: stype.categorical for col in self.col_names_categorical})
        out["label"] = stype.categorical
        return out

    def __repr__(self) -> str:
        edges = "None" if self.edge_index is None else str(self.edge_index.size(1))
        return (f"MetricTask(name={self.name!r}, rows={self.num_rows}, classes={self.num_classes}, "
                f"text_dim={self.text.size(1)}, numerical={list(self.col_names_numerical)}, "
                f"categorical={list(self.col_names_categorical)}, edges={edges}, train={self.train_idx.numel()}, "
                f"val={self.val_idx.numel()}, test={self.test_idx.numel()})")  # fmt: skip


# ------------------------------------------------------------------------------------------------------------
# Rows, items and splits
# ------------------------------------------------------------------------------------------------------------


def _check_args(
    task: str,
    train_fraction: float,
    val_fraction: float,
    min_class_size: int,
    max_rows: int | None,
    max_neighbours: int | None,
) -> str:
    key = _TASK_ALIASES.get(str(task).strip().lower(), str(task).strip().lower())
    if key not in CLOTHING_TASKS:
        raise ValueError(f"Unknown clothing task {task!r}: choose one of {', '.join(CLOTHING_TASKS)} "
                         "(or t1, t2).")  # fmt: skip
    if not 0.0 < train_fraction <= 1.0:
        raise ValueError(
            f"train_fraction must lie in (0, 1], got {train_fraction} (1.0 keeps every training item)."
        )
    upper = 1.0 - _TEST_SHARE[key] if key == "category" else 1.0
    if not 0.0 <= val_fraction < upper:
        raise ValueError(f"val_fraction must lie in [0, {upper:g}) for the {key!r} task, got {val_fraction} "
                         "(e.g. 0.2).")  # fmt: skip
    if min_class_size < 1:
        raise ValueError(
            f"min_class_size must be a positive number of reviews, got {min_class_size} (e.g. 50)."
        )
    if max_rows is not None and max_rows < 2:
        raise ValueError(f"max_rows must be None (all rows) or at least 2, got {max_rows} (e.g. 2000).")
    if max_neighbours is not None and max_neighbours < 1:
        raise ValueError(f"max_neighbours must be None (whole cliques) or at least 1, got {max_neighbours}.")
    return key


def _subsample_items(
    items: np.ndarray, counts: np.ndarray, max_rows: int, rng: np.random.Generator
) -> np.ndarray:
    """Items in random order, each kept if it still fits in ``max_rows`` rows (whole items only)."""
    kept, total = [], 0
    for j in rng.permutation(len(items)):
        if total + counts[j] <= max_rows:
            kept.append(items[j])
            total += counts[j]
    return np.sort(np.asarray(kept, dtype=items.dtype))


def _rows_of(items_of_rows: np.ndarray, items: np.ndarray) -> Tensor:
    return torch.from_numpy(np.flatnonzero(np.isin(items_of_rows, items)).astype(np.int64))


def _split_items(key: str, items: np.ndarray, counts: np.ndarray, val_fraction: float,
                 rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # fmt: skip
    """``(train, val, test)`` items. ``item``: shares of the items; ``category``: shares of the rows, the items
    taken in random order and cut where the middle of an item falls."""
    order = rng.permutation(len(items))
    if key == "item":
        n_test = round(_TEST_SHARE[key] * len(items))
        n_val = round(val_fraction * (len(items) - n_test))
        if val_fraction > 0:
            n_val = max(n_val, 1)
        test, val, train = np.split(order, [n_test, n_test + n_val])
    else:
        cum = np.cumsum(counts[order])
        middle = (cum - counts[order] / 2) / cum[-1]
        part = np.where(
            middle < 1 - _TEST_SHARE[key] - val_fraction, 0, np.where(middle < 1 - _TEST_SHARE[key], 1, 2)
        )
        train, val, test = (order[part == p] for p in range(3))
    return items[np.sort(train)], items[np.sort(val)], items[np.sort(test)]


# ------------------------------------------------------------------------------------------------------------
# The loader
# ------------------------------------------------------------------------------------------------------------


def load_clothing_task(
    task: str,
    root: str | Path | None = None,
    *,
    seed: int = 0,
    train_fraction: float = 1.0,
    val_fraction: float = 0.2,
    min_class_size: int = DEFAULT_MIN_CLASS_SIZE,
    max_neighbours: int | None = DEFAULT_MAX_NEIGHBOURS,
    text_model: str | None = None,
    text_encoder: Callable[[list[str]], Any] | None = None,
    max_rows: int | None = None,
) -> MetricTask:
    r"""A clothing-reviews metric-learning task with text, tabular and (for ``category``) graph inputs.

    Tasks (:data:`CLOTHING_TASKS`):

    - ``"item"`` (T1, item retrieval): the label is the ``Clothing ID``; only items with at least 2 reviews
      (715 items, 22,995 reviews). The items are split, classes disjoint: half of them (rounded) are the test
      items, ``val_fraction`` of the others the validation items (at least one if ``val_fraction > 0``), the
      rest the training items. Categorical inputs: ``Recommended IND`` and the product hierarchy. No graph: it
      would link exactly the reviews that share a label.
    - ``"category"`` (T2): the label is the ``Class Name``; reviews without one (14) and classes with fewer
      than ``min_class_size`` reviews on the full data are dropped. The items are taken in random order and
      cut by rows into train : val : test = ``0.8 - val_fraction`` : ``val_fraction`` : 0.2 (60/20/20 by
      default), so all reviews of an item are on one side. Categorical input: ``Recommended IND`` only (the
      hierarchy gives the label away). Graph: reviews of the same item, at most ``max_neighbours`` neighbours
      each (items with at most ``max_neighbours + 1`` reviews form a clique; larger ones the union of
      ``max_neighbours // 2`` random Hamiltonian cycles over their reviews, plus a random matching if
      ``max_neighbours`` is odd: a random, nearly regular graph).

    Both tasks: the numerical inputs ``Age``, ``Rating``, ``Positive Feedback Count`` (their mean and std over
    the training rows are returned for standardisation) and the sentence embedding of ``"Title. Review
    Text"`` (the title alone or the text alone where only one is present; rows with neither have a zero
    embedding and ``text_mask`` ``False``). Every random choice is seeded by ``seed`` through independent
    streams, so the split does not depend on ``train_fraction`` and the training items of a smaller
    ``train_fraction`` are a subset of those of a larger one.

    Args:
        task: ``"item"`` / ``"t1"`` or ``"category"`` / ``"t2"``.
        root: The data root (default :func:`mmsheaf.paths.data_root`).
        seed: Seed of the subsample, the split, the ``train_fraction`` subset and the graph.
        train_fraction: Share of the training items kept in ``train_idx`` (data-efficiency curves; at least
            one item). Validation and test rows are unchanged; the dropped rows stay in the tensors.
        val_fraction: ``item``: share of the non-test items used for validation; ``category``: share of the
            rows used for validation (below 0.8).
        min_class_size: ``category`` only: smallest class (reviews on the full data) kept.
        max_neighbours: ``category`` only: largest degree in the same-item graph; ``None`` links all reviews
            of an item (the largest item has 1,024 reviews).
        text_model: Sentence-transformers model of the text embeddings (default
            :func:`~mmsheaf.data.text_cache.default_text_model`, 384-d); with ``text_encoder``, its cache
            identifier.
        text_encoder: A callable ``list[str] -> (n, D)`` array used instead of the model (see
            :func:`~mmsheaf.data.text_cache.embed_texts`; tests pass a fake one).
        max_rows: Keep a random subset of whole items with at most this many reviews in all (a fast smoke
            profile; the eligibility rules above are applied on the full data first); ``None`` keeps all.

    Returns:
        A :class:`MetricTask` named ``"clothing-item"`` or ``"clothing-category"``.

    Shapes:
        - **text:** :math:`(N, 384)` with the default model; :math:`N` = 22,995 (``item``) or 23,469
          (``category``) on the full data
        - **edge_index:** :math:`(2, E)`, ``None`` for ``item``

    Raises:
        DatasetNotFoundError: The CSV is missing (see :func:`~mmsheaf.data.tables.load_clothing_reviews`).
        ValueError: Bad arguments, or ``max_rows`` so small that a split would be empty.
    """
    key = _check_args(task, train_fraction, val_fraction, min_class_size, max_rows, max_neighbours)
    df = load_clothing_reviews(root)
    subsample_rng, split_rng, fraction_rng, graph_rng = (
        np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(4)
    )

    ids = df["Clothing ID"].to_numpy(np.int64)
    if key == "item":
        per_item = pd.Series(ids).value_counts()
        keep = np.isin(ids, per_item.index[per_item >= 2].to_numpy())
    else:
        classes = df["Class Name"]
        has_class = ~missing_mask(classes)
        sizes = classes[has_class].value_counts()
        keep = has_class & classes.isin(sizes.index[sizes >= min_class_size]).to_numpy()
    df = df[keep]
    items, counts = np.unique(df["Clothing ID"].to_numpy(np.int64), return_counts=True)
    if max_rows is not None:
        chosen = _subsample_items(items, counts, max_rows, subsample_rng)
        df = df[df["Clothing ID"].isin(chosen)]
        items, counts = np.unique(df["Clothing ID"].to_numpy(np.int64), return_counts=True)
    row_ids = df["Clothing ID"].to_numpy(np.int64, copy=True)  # writable: it backs item_ids

    train_items, val_items, test_items = _split_items(key, items, counts, val_fraction, split_rng)
    if len(train_items) == 0 or len(test_items) == 0 or (val_fraction > 0 and len(val_items) == 0):
        raise ValueError(f"The {key!r} task on {len(df)} reviews of {len(items)} items leaves a split empty "
                         f"(train/val/test items {len(train_items)}/{len(val_items)}/{len(test_items)}): raise "
                         "max_rows (e.g. 2000).")  # fmt: skip
    if train_fraction < 1.0:
        n_keep = max(1, round(train_fraction * len(train_items)))
        train_items = np.sort(train_items[fraction_rng.permutation(len(train_items))[:n_keep]])
    train_idx, val_idx, test_idx = (_rows_of(row_ids, s) for s in (train_items, val_items, test_items))

    # labels
    if key == "item":
        label_values, labels = np.unique(row_ids, return_inverse=True)
        label_names = tuple(str(v) for v in label_values)
    else:
        label_values, labels = np.unique(
            df["Class Name"].astype(str).str.strip().to_numpy(), return_inverse=True
        )
        label_names = tuple(str(v) for v in label_values)

    review = review_text(df, text_model, text_encoder)
    numerical, mean, std = numerical_features(df, train_idx)
    categorical_cols = ("Recommended IND", *HIERARCHY_COLUMNS) if key == "item" else ("Recommended IND",)
    encoded = [categorical_codes(df[c]) for c in categorical_cols]
    edge_index = None if key == "item" else same_item_graph(row_ids, max_neighbours, graph_rng)

    return MetricTask(
        name=f"clothing-{key}",
        task=key,
        text=review.text,
        text_mask=review.text_mask,
        title_missing=review.title_missing,
        review_missing=review.review_missing,
        texts=review.texts,
        numerical=numerical,
        numerical_mean=mean,
        numerical_std=std,
        categorical=torch.from_numpy(np.stack([c for c, _ in encoded], axis=1)),
        col_names_numerical=NUMERICAL_COLUMNS,
        col_names_categorical=categorical_cols,
        categories=tuple(cats for _, cats in encoded),
        edge_index=edge_index,
        labels=torch.from_numpy(labels.astype(np.int64)),
        label_names=label_names,
        item_ids=torch.from_numpy(row_ids),
        row_index=torch.from_numpy(df.index.to_numpy(np.int64, copy=True)),
        train_idx=train_idx,
        val_idx=val_idx,
        test_idx=test_idx,
    )
