r"""MovieLens-1M item cold start as :class:`~mmsheaf.data.interactions.InteractionData`: three protocols.

The benchmark (:func:`~mmsheaf.data.movielens1m.load_ml1m_coldstart`) splits the 3,018 items into 1,811 warm
items (all their interactions in ``train_df.csv``), 302 cold validation items and 905 cold test items. Every
protocol keeps all 6,018 users and all 3,018 items as nodes (the same ids in every protocol); what changes is
which interactions train, which select and which test, and which items are ranked:

===========  ===============================  ==========================================  =========================
protocol     train                            validation (ranked items)                   test (ranked items)
===========  ===============================  ==========================================  =========================
``cold``     every warm interaction           cold validation items (302)                 cold test items (905)
``warm``     per-user 80 % of warm            per-user 10 % of warm (warm items)          10 % of warm (warm items)
``hybrid``   per-user 80 % of warm            10 % of warm + cold validation              10 % of warm + cold test
                                              (warm + cold validation items)              (warm + cold test items)
===========  ===============================  ==========================================  =========================

``cold`` is the cold-start literature's protocol (rank the cold test items for every test user; Recall@20 and
NDCG@20), with selection on the cold validation items; ``hybrid`` asks whether a model that handles both kinds
of item has to trade one for the other. A cold item has no training interaction and its ``"id"`` modality is
missing (``item_mask["id"]`` is ``False``): a model must score it from content.

Modalities: users have ids only (the benchmark's user ids cannot be joined with ML-1M's ``users.dat``). Items:

============  ===================================================================================================
``text``      one sentence embedding of "title. plot Directed by … Written by … Starring …" (MeLU's IMDb side
              information); missing (masked) for the items without a plot
``tabular``   the benchmark's genres (multi-hot), the title's year (standardised) and the MPAA rating (one-hot,
              ``unknown`` where the title join found no movie): observed for every item
============  ===================================================================================================
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
from mmsheaf.data.movielens import _edges, _per_user_split, _standardise
from mmsheaf.data.movielens1m import ML1M_COLD_COUNTS, ML1MColdStart, load_ml1m_coldstart
from mmsheaf.data.text_cache import embed_texts

__all__ = ["ML1M_PROTOCOLS", "ML1M_TEXTS", "MPAA_RATINGS", "item_text", "load_ml1m"]

ML1M_PROTOCOLS: tuple[str, ...] = ("cold", "warm", "hybrid")
"""The protocols of :func:`load_ml1m`."""

ML1M_TEXTS: tuple[str, ...] = ("full", "title")
"""What the item text of :func:`load_ml1m` embeds."""

MPAA_RATINGS: tuple[str, ...] = ("G", "PG", "PG-13", "R", "NC-17", "UNRATED", "unknown")
"""The MPAA rating categories of the tabular modality (``unknown``: no side information joined)."""


def item_text(row: pd.Series) -> str:
    """An item's text: ``"<title>. <plot> Directed by <director>. Written by <writers>. Starring <actors>."``,
    leaving out the fields the side information lacks (``N/A`` or empty)."""

    def field(name: str) -> str:
        value = row.get(name)
        return "" if value is None or pd.isna(value) or str(value).strip() in ("", "N/A") else str(value).strip()

    parts = [f"{row['title']}.", field("plot")]
    for label, name in (("Directed by", "director"), ("Written by", "writers"), ("Starring", "actors")):
        if value := field(name):
            parts.append(f"{label} {value}.")
    return " ".join(p for p in parts if p)


def _genres(items: pd.DataFrame) -> tuple[list[str], np.ndarray]:
    """The benchmark's genre names (sorted) and the items' multi-hot flags, ``(I, G)``."""
    genres = sorted({g for gs in items["genres"] for g in str(gs).split("|") if g and g != "(no genres listed)"})
    flags = np.array([[g in str(gs).split("|") for g in genres] for gs in items["genres"]], dtype=np.float32)
    return genres, flags


def _item_tabular(items: pd.DataFrame, flags: np.ndarray) -> np.ndarray:
    year = items["title"].str.extract(r"\((\d{4})\)\s*$")[0].astype(float).to_numpy()
    if np.isnan(year).any():
        raise ValueError("ml1m-coldstart: every benchmark title ends with its year '(dddd)'; some do not.")
    mpaa = items["mpaa"].fillna("unknown").where(items["mpaa"].fillna("unknown").isin(MPAA_RATINGS), "unknown")
    rating = np.eye(len(MPAA_RATINGS), dtype=np.float32)[pd.Categorical(mpaa, categories=MPAA_RATINGS).codes]
    return np.concatenate([flags, _standardise(year)[:, None].astype(np.float32), rating], axis=1)


def _subsample(users: np.ndarray, items: np.ndarray, fraction: float,
               rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Keep ``fraction`` of each user's interactions (at least one), drawn with ``rng``."""
    if fraction >= 1.0:
        return users, items
    part = _per_user_split(users, np.array([fraction, 1.0 - fraction, 0.0]), rng)
    return users[part == 0], items[part == 0]


def load_ml1m(
    root: str | Path | None = None,
    *,
    protocol: str = "cold",
    seed: int = 0,
    ratios: Sequence[float] = (0.8, 0.1, 0.1),
    train_fraction: float = 1.0,
    num_users: int | None = None,
    text: str = "full",
    text_model: str | None = None,
    text_encoder: Callable[[list[str]], Any] | None = None,
    benchmark: ML1MColdStart | None = None,
) -> InteractionData:
    r"""MovieLens-1M item cold start under one of :data:`ML1M_PROTOCOLS` (see the module docstring).

    Args:
        root: The data root (default :func:`mmsheaf.paths.data_root`).
        protocol: ``"cold"``, ``"warm"`` or ``"hybrid"``.
        seed: Seed of the per-user warm split (``"warm"``, ``"hybrid"``) and of ``train_fraction``'s draw.
        ratios: The warm split's ``(train, val, test)`` proportions.
        train_fraction: Share of each user's training interactions kept (at least one each), for the curve of
            a metric against the amount of interaction data; ``1.0`` keeps all.
        num_users: Keep only users ``0 .. num_users-1`` (a fast smoke profile); ``None`` keeps all 6,018.
        text: ``"full"`` (:func:`item_text`: title, plot and credits) or ``"title"`` (the title alone, for the
            same items: a fast smoke profile, 3,000 short texts instead of paragraphs).
        text_model, text_encoder: As :func:`~mmsheaf.data.text_cache.embed_texts` (tests pass a fake encoder).
        benchmark: The raw tables, if already loaded.

    Returns:
        :class:`InteractionData` named ``"ml1m-<protocol>"`` with ``item_features = {"text", "tabular"}``,
        masks ``"id"`` (``False`` on cold items) and ``"text"`` (``False`` without a plot) and ``"tabular"`` on
        items, ``"id"`` on users, ``candidates`` (and ``val_candidates``) as in the module's table, the genres
        as ``item_labels`` and the titles as ``item_names``.

    Shapes:
        - **item_features["text"]:** :math:`(3018, D)`, zero rows where the text is missing
        - **item_features["tabular"]:** :math:`(3018, G + 1 + 7)`: genres, year, MPAA rating

    Raises:
        ValueError: an unknown protocol, or ratios / fractions out of range.
    """
    if text not in ML1M_TEXTS:
        raise ValueError(f"unknown text {text!r}: choose one of {', '.join(ML1M_TEXTS)}.")
    if protocol not in ML1M_PROTOCOLS:
        raise ValueError(f"unknown ML-1M protocol {protocol!r}: choose one of {', '.join(ML1M_PROTOCOLS)}.")
    r = np.asarray(ratios, dtype=np.float64)
    if r.shape != (3,) or (r <= 0).any():
        raise ValueError(f"ratios must be three positive (train, val, test) proportions, got {tuple(ratios)}.")
    r = r / r.sum()
    if not 0.0 < train_fraction <= 1.0:
        raise ValueError(f"train_fraction must be in (0, 1], got {train_fraction}.")
    if num_users is not None and num_users < 1:
        raise ValueError(f"num_users must be a positive number of users or None for all, got {num_users}.")
    b = benchmark if benchmark is not None else load_ml1m_coldstart(root)
    items = b.items
    num_u = num_users if num_users is not None else ML1M_COLD_COUNTS["users"]  # ids checked by the loader
    num_i = len(items)

    def pairs(df: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        if num_users is not None:
            df = df[df["uid"] < num_users]
        return df["uid"].to_numpy(np.int64), df["iid"].to_numpy(np.int64)

    rng = np.random.default_rng(seed)
    warm_u, warm_i = pairs(b.train)
    cold_val, cold_test = pairs(b.val), pairs(b.test)
    val_items = np.unique(b.val["iid"].to_numpy(np.int64))
    test_items = np.unique(b.test["iid"].to_numpy(np.int64))
    warm_items = np.unique(b.train["iid"].to_numpy(np.int64))
    if protocol == "cold":
        train_u, train_i = _subsample(warm_u, warm_i, train_fraction, rng)
        val, test = _edges(*cold_val), _edges(*cold_test)
        val_cands, cands = val_items, test_items
    else:
        part = _per_user_split(warm_u, r, rng)
        train_u, train_i = _subsample(warm_u[part == 0], warm_i[part == 0], train_fraction, rng)
        if protocol == "warm":
            val, test = _edges(warm_u[part == 1], warm_i[part == 1]), _edges(warm_u[part == 2], warm_i[part == 2])
            val_cands = cands = warm_items
        else:
            val = _edges(np.r_[warm_u[part == 1], cold_val[0]], np.r_[warm_i[part == 1], cold_val[1]])
            test = _edges(np.r_[warm_u[part == 2], cold_test[0]], np.r_[warm_i[part == 2], cold_test[1]])
            val_cands, cands = np.union1d(warm_items, val_items), np.union1d(warm_items, test_items)

    id_mask = torch.zeros(num_i, dtype=torch.bool)
    id_mask[torch.from_numpy(warm_items)] = True
    has_text = items["has_text"].to_numpy(bool).copy()
    texts = [item_text(row) if text == "full" else str(row["title"]) for _, row in items[has_text].iterrows()]
    embedded = embed_texts(texts, text_model, encoder=text_encoder)
    text = torch.zeros(num_i, embedded.size(1) if embedded.numel() else 0)
    text[torch.from_numpy(has_text)] = embedded.float()
    genres, flags = _genres(items)

    def long(x: np.ndarray) -> Tensor:
        return torch.from_numpy(np.asarray(x, dtype=np.int64))

    return InteractionData(
        name=f"ml1m-{protocol}",
        num_users=num_u,
        num_items=num_i,
        train=_edges(train_u, train_i),
        val=val,
        test=test,
        user_mask={"id": torch.ones(num_u, dtype=torch.bool)},
        item_features={"text": text, "tabular": torch.from_numpy(_item_tabular(items, flags))},
        item_mask={"id": id_mask, "text": torch.from_numpy(has_text),
                   "tabular": torch.ones(num_i, dtype=torch.bool)},  # fmt: skip
        candidates=long(cands),
        val_candidates=long(val_cands),
        item_labels=torch.from_numpy(flags),
        label_names=tuple(genres),
        item_names=tuple(items["title"].astype(str)),
    )
