"""MovieLens 100K as multimodal implicit feedback (:class:`~mmsheaf.data.interactions.InteractionData`).

Every rating, whatever its value, is a positive interaction (the MMRec protocol). Modalities:

===========  ==========================================================  ==========================================
modality     users                                                       items
===========  ==========================================================  ==========================================
``id``       all observed                                                all observed, except the cold items
``text``     none (users have no text)                                   title embedding, except ``unknown``
``tabular``  standardised age, gender, occupation (21), zip region (11)  19 genre flags, standardised year, no-year
===========  ==========================================================  ==========================================

Item 267 of the raw data has neither title (``"unknown"``), date nor genre (only ``unknown``): its text and
tabular modalities are marked missing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from mmsheaf.data.interactions import InteractionData
from mmsheaf.data.movielens1m import join_side_information
from mmsheaf.data.tables import load_movielens100k
from mmsheaf.data.text_cache import embed_texts

__all__ = ["ML100K_SPLITS", "ML100K_TEXTS", "ZIP_REGIONS", "load_ml100k"]

ML100K_SPLITS: tuple[str, ...] = ("random", "cold")
"""The interaction splits of :func:`load_ml100k`."""

ML100K_TEXTS: tuple[str, ...] = ("title", "title+plot")
"""What the item text modality of :func:`load_ml100k` embeds."""

ZIP_REGIONS: tuple[str, ...] = (*(str(d) for d in range(10)), "other")
"""Zip regions: the first digit of a US zip code, ``"other"`` for non-numeric (e.g. Canadian) codes."""

_UNKNOWN_TITLE = "unknown"


def _check_args(
    split: str, ratios: Sequence[float], cold_fraction: float, num_users: int | None
) -> np.ndarray:
    if split not in ML100K_SPLITS:
        raise ValueError(f"Unknown split {split!r}: choose one of {', '.join(ML100K_SPLITS)}.")
    r = np.asarray(ratios, dtype=np.float64)
    if r.shape != (3,) or (r < 0).any() or r[0] <= 0 or not np.isfinite(r).all():
        raise ValueError(f"ratios must be three non-negative (train, val, test) proportions with train > 0, got "
                         f"{tuple(ratios)} (e.g. (0.8, 0.1, 0.1)).")  # fmt: skip
    if split == "cold" and not 0.0 < cold_fraction < 1.0:
        raise ValueError(f"cold_fraction must lie strictly between 0 and 1, got {cold_fraction} (e.g. 0.1).")
    if num_users is not None and num_users < 1:
        raise ValueError(f"num_users must be a positive number of users or None for all, got {num_users}.")
    return r / r.sum()


def _per_user_split(users: np.ndarray, ratios: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Assign each interaction of ``users`` to 0 (train), 1 (val) or 2 (test), per user in ``ratios``.

    Each user's interactions are shuffled; the first ``n - n_val - n_test`` go to train, where ``n_val`` and
    ``n_test`` are ``round(n * ratio)`` but leave at least one training interaction.
    """
    order = np.lexsort((rng.random(len(users)), users))  # grouped by user, random within a user
    sorted_users = users[order]
    starts = np.flatnonzero(np.r_[True, sorted_users[1:] != sorted_users[:-1]])
    counts = np.diff(np.r_[starts, len(users)])
    rank = np.arange(len(users)) - np.repeat(starts, counts)
    n_val = np.rint(counts * ratios[1]).astype(np.int64)
    n_test = np.rint(counts * ratios[2]).astype(np.int64)
    over = np.maximum(n_val + n_test - (counts - 1), 0)  # keep >= 1 for training: take from test, then val
    cut = np.minimum(over, n_test)
    n_test -= cut
    n_val -= over - cut
    n_train = counts - n_val - n_test
    rank_train, rank_val = np.repeat(n_train, counts), np.repeat(n_train + n_val, counts)
    part = np.where(rank < rank_train, 0, np.where(rank < rank_val, 1, 2))
    out = np.empty(len(users), dtype=np.int64)
    out[order] = part
    return out


def _edges(users: np.ndarray, items: np.ndarray) -> Tensor:
    order = np.lexsort((items, users))
    return torch.from_numpy(np.stack([users[order], items[order]]).astype(np.int64))


def _standardise(values: np.ndarray) -> np.ndarray:
    std = values.std()
    return (values - values.mean()) / (std if std > 0 else 1.0)


def _one_hot(values: pd.Series, categories: Sequence[str]) -> np.ndarray:
    codes = pd.Categorical(values, categories=list(categories)).codes
    if (codes < 0).any():
        raise ValueError(
            f"Unexpected values {sorted(set(values[codes < 0]))}: expected one of {list(categories)}."
        )
    return np.eye(len(categories), dtype=np.float32)[codes]


def _user_tabular(users: pd.DataFrame, occupations: Sequence[str]) -> tuple[np.ndarray, list[str]]:
    age = _standardise(users["age"].to_numpy(np.float64))[:, None].astype(np.float32)
    gender = _one_hot(users["gender"], ("F", "M"))
    occupation = _one_hot(users["occupation"], occupations)
    first = users["zip_code"].astype(str).str.strip().str[0]
    region = _one_hot(first.where(first.str.isdigit(), "other"), ZIP_REGIONS)
    names = ["age", "gender=F", "gender=M", *(f"occupation={o}" for o in occupations),
             *(f"zip={z}" for z in ZIP_REGIONS)]  # fmt: skip
    return np.concatenate([age, gender, occupation, region], axis=1), names


def _item_tabular(items: pd.DataFrame, genres: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """``(features, observed)``: genre flags, standardised year, year-missing flag; an item with no date and no
    genre other than ``unknown`` has no tabular information."""
    flags = items[list(genres)].to_numpy(np.float32)
    dates = pd.to_datetime(items["release_date"], format="%d-%b-%Y", errors="coerce")
    year = dates.dt.year.to_numpy(np.float64)
    missing = np.isnan(year)
    z = np.zeros_like(year)
    if (~missing).any():
        z[~missing] = _standardise(year[~missing])
    known_genres = [g for g in genres if g != "unknown"]
    no_genre = items[known_genres].to_numpy().sum(axis=1) == 0
    features = np.concatenate(
        [flags, z[:, None].astype(np.float32), missing[:, None].astype(np.float32)], axis=1
    )
    return features, ~(missing & no_genre)


def load_ml100k(
    root: str | Path | None = None,
    *,
    split: str = "random",
    seed: int = 0,
    ratios: Sequence[float] = (0.8, 0.1, 0.1),
    cold_fraction: float = 0.1,
    text_model: str | None = None,
    text_encoder: Callable[[list[str]], Any] | None = None,
    num_users: int | None = None,
    text: str = "title",
) -> InteractionData:
    r"""MovieLens 100K as implicit feedback with id, text (title, or title and plot) and tabular modalities.

    Every rating is a positive interaction; users and items are renumbered ``0 .. U-1`` / ``0 .. I-1`` in the
    order of their original ids.

    Splits (deterministic given ``seed``):

    - ``"random"``: each user's interactions are shuffled and cut in ``ratios`` (train:val:test); every user
      keeps at least one training interaction. ``candidates`` is ``None`` (rank all items).
    - ``"cold"``: ``cold_fraction`` of the items (random) are held out with **all** their interactions, which
      form ``test``; ``candidates`` are these items and their ``"id"`` modality is missing. The remaining
      interactions are split per user into train:val as ``ratios[0]:ratios[1]``. A user all of whose
      interactions are with cold items would have no training interaction (does not happen on the full data).

    Args:
        root: The data root (default :func:`mmsheaf.paths.data_root`); files under ``MovieLens100K/raw/``.
        split: ``"random"`` or ``"cold"``.
        seed: Seed of the split (and of the cold items).
        ratios: ``(train, val, test)`` proportions (normalised to sum 1).
        cold_fraction: Share of items held out by ``split="cold"``.
        text_model: Sentence-transformers model of the title embeddings (default
            :func:`~mmsheaf.data.text_cache.default_text_model`, 384-d); with ``text_encoder``, its cache
            identifier.
        text_encoder: A callable ``list[str] -> (n, D)`` array used instead of the model (see
            :func:`~mmsheaf.data.text_cache.embed_texts`; tests pass a fake one).
        num_users: Keep only the first ``num_users`` users (original ids ``1 .. num_users``) and the items they
            rated (a fast smoke profile); ``None`` keeps all 943.
        text: What the text modality embeds, one of :data:`ML100K_TEXTS`: ``"title"``, or ``"title+plot"``:
            ``"<title>. <plot>"`` with the IMDb plot of MeLU's side information, joined on title and year as
            :func:`~mmsheaf.data.movielens1m.join_side_information` does (the title alone where no plot was
            joined).

    Returns:
        An :class:`InteractionData` named ``"ml100k"`` or ``"ml100k-cold"`` with ``user_features =
        {"tabular"}``, ``item_features = {"text", "tabular"}``, masks for ``"id"`` and ``"tabular"`` on both
        sides and ``"text"`` on items, the genres as ``item_labels``/``label_names`` and the titles (whitespace
        stripped) as ``item_names``.

    Shapes:
        - **train / val / test:** :math:`(2, E_s)` long, :math:`\sum_s E_s` = 100,000 on the full data
        - **user_features["tabular"]:** :math:`(U, 35)`: age, gender (2), occupation (21), zip region (11)
        - **item_features["tabular"]:** :math:`(I, 21)`: 19 genres, year, year missing
        - **item_features["text"]:** :math:`(I, D)`, zero rows where the title is unknown
        - **item_labels:** :math:`(I, 19)` float multi-hot

    Raises:
        DatasetNotFoundError: The raw files are missing (see :func:`~mmsheaf.data.tables.load_movielens100k`).
    """
    r = _check_args(split, ratios, cold_fraction, num_users)
    if text not in ML100K_TEXTS:
        raise ValueError(f"Unknown text {text!r}: choose one of {', '.join(ML100K_TEXTS)}.")
    tables = load_movielens100k(root)
    ratings, users, items = tables["ratings"], tables["users"], tables["items"]
    genres = [str(c) for c in items.columns[5:]]
    occupations = sorted(users["occupation"].astype(str).unique())  # from all users: stable columns

    users = users.sort_values("user_id").reset_index(drop=True)
    if num_users is not None:
        users = users.iloc[:num_users]
        ratings = ratings[ratings["user_id"].isin(users["user_id"])]
    items = items[items["item_id"].isin(ratings["item_id"])].sort_values("item_id").reset_index(drop=True)
    ratings = ratings[ratings["item_id"].isin(items["item_id"])]
    user_index = pd.Series(np.arange(len(users)), index=users["user_id"].to_numpy())
    item_index = pd.Series(np.arange(len(items)), index=items["item_id"].to_numpy())
    u = user_index.loc[ratings["user_id"].to_numpy()].to_numpy().astype(np.int64)
    i = item_index.loc[ratings["item_id"].to_numpy()].to_numpy().astype(np.int64)
    num_u, num_i = len(users), len(items)

    rng = np.random.default_rng(seed)
    id_mask = torch.ones(num_i, dtype=torch.bool)
    candidates = None
    if split == "random":
        part = _per_user_split(u, r, rng)
        name = "ml100k"
    else:
        n_cold = round(cold_fraction * num_i)
        if not 1 <= n_cold < num_i:
            raise ValueError(f"cold_fraction={cold_fraction} of {num_i} items holds out {n_cold}: choose a "
                             "fraction that leaves at least one cold and one warm item.")  # fmt: skip
        cold = np.sort(rng.permutation(num_i)[:n_cold])
        is_cold = np.isin(i, cold)
        part = np.full(len(u), 2, dtype=np.int64)
        warm_ratios = np.array([r[0], r[1], 0.0]) / (r[0] + r[1])
        part[~is_cold] = _per_user_split(u[~is_cold], warm_ratios, rng)
        candidates = torch.from_numpy(cold.astype(np.int64))
        id_mask[candidates] = False
        name = "ml100k-cold"
    train, val, test = (_edges(u[part == s], i[part == s]) for s in range(3))

    user_tab, _ = _user_tabular(users, occupations)
    item_tab, item_tab_mask = _item_tabular(items, genres)
    titles = items["title"].fillna("").astype(str).str.strip()
    has_text = np.array((titles != "") & (titles.str.lower() != _UNKNOWN_TITLE), dtype=bool)
    texts = titles
    if text == "title+plot":
        plots = join_side_information(titles, root)[0]["plot"].where(lambda p: p.ne("N/A"))
        texts = titles.where(plots.isna(), titles + ". " + plots.fillna("").str.strip())
    embedded = embed_texts(texts[has_text].tolist(), text_model, encoder=text_encoder)
    text = torch.zeros(num_i, embedded.size(1) if embedded.numel() else 0)
    text[torch.from_numpy(has_text)] = embedded

    return InteractionData(
        name=name,
        num_users=num_u,
        num_items=num_i,
        train=train,
        val=val,
        test=test,
        user_features={"tabular": torch.from_numpy(user_tab)},
        item_features={"text": text, "tabular": torch.from_numpy(item_tab)},
        user_mask={"id": torch.ones(num_u, dtype=torch.bool), "tabular": torch.ones(num_u, dtype=torch.bool)},
        item_mask={
            "id": id_mask,
            "text": torch.from_numpy(has_text),
            "tabular": torch.from_numpy(item_tab_mask),
        },
        candidates=candidates,
        item_labels=torch.tensor(items[genres].to_numpy(np.float32)),
        label_names=tuple(genres),
        item_names=tuple(titles),
    )
