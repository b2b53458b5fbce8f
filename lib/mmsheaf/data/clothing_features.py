r"""The inputs of a clothing review: text, tabular columns and the same-item graph, built from the table.

The Women's E-Commerce Clothing Reviews table (:func:`~mmsheaf.data.tables.load_clothing_reviews`) gives
every review three modalities, as in the multimodal metric-learning tasks of :mod:`mmsheaf.data.clothing`:

- text: the sentence embedding of ``"Title. Review Text"`` (:func:`review_text`);
- tabular: the numerical columns with their training mean and std (:func:`numerical_features`) and
  categorical columns as integer codes (:func:`categorical_codes`);
- graph: reviews of the same product (``Clothing ID``) linked with a bounded degree
  (:func:`same_item_graph`).

This module builds those tensors from rows already chosen; which rows, labels and splits make a task is
:func:`~mmsheaf.data.clothing.load_clothing_task`'s job.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from mmsheaf.data.text_cache import embed_texts

__all__ = [
    "NUMERICAL_COLUMNS",
    "ReviewText",
    "categorical_codes",
    "missing_mask",
    "numerical_features",
    "review_text",
    "same_item_graph",
]

NUMERICAL_COLUMNS: tuple[str, ...] = ("Age", "Rating", "Positive Feedback Count")
"""The numerical input columns of every clothing task."""


def missing_mask(values: pd.Series) -> np.ndarray:
    """``True`` where a value is NaN, ``None`` or a blank string.

    Shapes:
        - **output:** :math:`(N,)` bool
    """
    return np.array(values.isna() | values.astype(str).str.strip().eq(""), dtype=bool)


class ReviewText(NamedTuple):
    """The text input of every review (fields named as in :class:`~mmsheaf.data.clothing.MetricTask`).

    Shapes:
        - **text:** :math:`(N, D)` float32, zero rows where ``text_mask`` is ``False``
        - **text_mask / title_missing / review_missing:** :math:`(N,)` bool
    """

    texts: tuple[str, ...]
    text: Tensor
    text_mask: Tensor
    title_missing: Tensor
    review_missing: Tensor


def _join_text(title: object, review: object, title_missing: bool, review_missing: bool) -> str:
    parts = []
    if not title_missing:
        t = str(title).strip()
        parts.append(t if t[-1] in ".!?" or review_missing else t + ".")
    if not review_missing:
        parts.append(str(review).strip())
    return " ".join(parts)


def review_text(
    df: pd.DataFrame, text_model: str | None, text_encoder: Callable[[list[str]], Any] | None
) -> ReviewText:
    """Embed ``"Title. Review Text"`` of every row (the title or the text alone where only one is present).

    Rows with neither have the string ``""``, a zero embedding and ``text_mask`` ``False``; only the other
    rows are embedded, by :func:`~mmsheaf.data.text_cache.embed_texts` with ``text_model`` (or
    ``text_encoder``).

    Args:
        df: Rows of :func:`~mmsheaf.data.tables.load_clothing_reviews` (columns ``Title``, ``Review Text``).
        text_model: Sentence-transformers model, or the cache identifier of ``text_encoder``.
        text_encoder: A callable ``list[str] -> (n, D)`` array used instead of the model.
    """
    title_missing, review_missing = missing_mask(df["Title"]), missing_mask(df["Review Text"])
    texts = tuple(
        _join_text(t, r, tm, rm)
        for t, r, tm, rm in zip(df["Title"], df["Review Text"], title_missing, review_missing, strict=True)
    )
    has_text = ~(title_missing & review_missing)
    embedded = embed_texts([t for t, h in zip(texts, has_text, strict=True) if h], text_model,
                           encoder=text_encoder)  # fmt: skip
    text = torch.zeros(len(df), embedded.size(1) if embedded.numel() else 0)
    text[torch.from_numpy(has_text)] = embedded
    return ReviewText(
        texts=texts,
        text=text,
        text_mask=torch.from_numpy(has_text),
        title_missing=torch.from_numpy(title_missing),
        review_missing=torch.from_numpy(review_missing),
    )


def numerical_features(df: pd.DataFrame, train_idx: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """:data:`NUMERICAL_COLUMNS` as floats (NaN where missing) with their mean and std over the training rows.

    NaN are ignored in the statistics; a column with no training value has mean 0, and a std that is 0 or
    undefined becomes 1, so that ``(x - mean) / std`` is always defined.

    Returns:
        ``(numerical, mean, std)``.

    Shapes:
        - **numerical:** :math:`(N, 3)` float32; **mean / std:** :math:`(3,)` float32
    """
    numerical = torch.from_numpy(
        np.stack(
            [pd.to_numeric(df[c], errors="coerce").to_numpy(np.float64) for c in NUMERICAL_COLUMNS], axis=1
        )
    ).float()
    train_values = numerical[train_idx].double().numpy()
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN column
        mean = np.nan_to_num(np.nanmean(train_values, axis=0), nan=0.0)
        std = np.nanstd(train_values, axis=0)
    std = np.where(np.isfinite(std) & (std > 0), std, 1.0)
    return numerical, torch.from_numpy(mean).float(), torch.from_numpy(std).float()


def categorical_codes(values: pd.Series) -> tuple[np.ndarray, tuple[str, ...]]:
    """Integer codes of a categorical column (-1 where :func:`missing_mask`) and its sorted categories.

    Returns:
        ``(codes, categories)``: code ``c`` of a row is ``categories[c]`` (values stripped, as strings).
    """
    present = ~missing_mask(values)
    strings = values.where(present).map(lambda v: None if pd.isna(v) else str(v).strip())
    categories = tuple(sorted(set(strings[present])))
    codes = pd.Categorical(strings, categories=list(categories)).codes.astype(np.int64)
    return codes, categories


def same_item_graph(item_of_row: np.ndarray, max_neighbours: int | None, rng: np.random.Generator) -> Tensor:
    """Undirected graph linking the rows of the same item, every row with at most ``max_neighbours``.

    The reviews of an item with at most ``max_neighbours + 1`` of them form a clique (all of them if
    ``max_neighbours`` is ``None``); a larger item gets the union of ``max_neighbours // 2`` random
    Hamiltonian cycles over its reviews, plus a random matching if ``max_neighbours`` is odd.

    Args:
        item_of_row: The item (``Clothing ID``) of every row.
        max_neighbours: Largest degree, or ``None`` for whole cliques.
        rng: Source of the random cycles and matchings.

    Shapes:
        - **item_of_row:** :math:`(N,)`
        - **output:** :math:`(2, E)` long, both directions, sorted, no self loops
    """
    num_rows = len(item_of_row)
    order = np.argsort(item_of_row, kind="stable")
    starts = np.flatnonzero(np.r_[True, item_of_row[order][1:] != item_of_row[order][:-1]])
    src: list[np.ndarray] = []
    dst: list[np.ndarray] = []
    for rows in np.split(order, starts[1:]):
        n = len(rows)
        if n < 2:
            continue
        if max_neighbours is None or n <= max_neighbours + 1:
            a, b = np.triu_indices(n, 1)
            src.append(rows[a])
            dst.append(rows[b])
            continue
        for _ in range(max_neighbours // 2):
            cycle = rows[rng.permutation(n)]
            src.append(cycle)
            dst.append(np.roll(cycle, -1))
        if max_neighbours % 2:
            matched = rows[rng.permutation(n)][: n - n % 2]
            src.append(matched[0::2])
            dst.append(matched[1::2])
    if not src:
        return torch.zeros(2, 0, dtype=torch.long)
    s, d = np.concatenate(src).astype(np.int64), np.concatenate(dst).astype(np.int64)
    keys = np.unique(np.concatenate([s * num_rows + d, d * num_rows + s]))
    return torch.from_numpy(np.stack([keys // num_rows, keys % num_rows]))
