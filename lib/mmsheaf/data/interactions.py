"""Multimodal user-item interaction data: the container every recommender and the ranking evaluation share.

Users are ``0 .. U-1`` and items ``0 .. I-1`` (local ids). Each side carries zero or more *modalities*
(``"id"``, ``"text"``, ``"tabular"``, ...): a feature matrix per modality and a boolean mask saying, per node,
whether that modality is observed. A missing modality is a ``False`` in the mask; its feature row is kept (zeros
or anything) but models must not read it as an observation.

The interactions are split into ``train``, ``val`` and ``test`` edge lists of shape :math:`(2, E)` (row 0 users,
row 1 items). ``candidates`` restricts ranking to a subset of items (the cold-start protocol ranks the held-out
items only); ``None`` ranks all items. ``val_candidates``, when given, are the items ranked on the validation
split instead (the cold validation items of a benchmark whose cold items are split into validation and test
sets).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field

import torch
from torch import Tensor

__all__ = ["MODALITIES", "InteractionData"]

#: The modality names used across the project, in stalk order.
MODALITIES: tuple[str, ...] = ("id", "text", "tabular")


@dataclass(frozen=True, eq=False)
class InteractionData:
    """Implicit-feedback interactions with multimodal user and item features.

    Args:
        name: Dataset (and split) name, e.g. ``"ml100k"`` or ``"ml100k-cold"``.
        num_users: :math:`U`.
        num_items: :math:`I`.
        train: Training interactions, :math:`(2, E_{train})` long, row 0 user ids, row 1 item ids.
        val: Validation interactions, :math:`(2, E_{val})`.
        test: Test interactions, :math:`(2, E_{test})`.
        user_features: ``modality -> (U, F_m)`` float features (``"id"`` needs none).
        item_features: ``modality -> (I, F_m)`` float features.
        user_mask: ``modality -> (U,)`` bool, ``True`` where observed; a modality absent from this mapping is
            missing for every user.
        item_mask: ``modality -> (I,)`` bool.
        candidates: Items that may be ranked, :math:`(C,)` long, or ``None`` for all items.
        val_candidates: Items ranked on the validation split, :math:`(C_v,)` long, or ``None``: the same as
            ``candidates`` (see :meth:`candidates_of`).
        item_labels: Optional ``(I, G)`` multi-hot item categories (e.g. genres), for plots only.
        label_names: Names of the ``G`` categories.
        item_names: Optional item names (e.g. titles), length :math:`I`.
    """

    name: str
    num_users: int
    num_items: int
    train: Tensor
    val: Tensor
    test: Tensor
    user_features: Mapping[str, Tensor] = field(default_factory=dict)
    item_features: Mapping[str, Tensor] = field(default_factory=dict)
    user_mask: Mapping[str, Tensor] = field(default_factory=dict)
    item_mask: Mapping[str, Tensor] = field(default_factory=dict)
    candidates: Tensor | None = None
    val_candidates: Tensor | None = None
    item_labels: Tensor | None = None
    label_names: tuple[str, ...] = ()
    item_names: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for split in ("train", "val", "test"):
            edges = getattr(self, split)
            if edges.dim() != 2 or edges.size(0) != 2 or edges.dtype != torch.long:
                raise ValueError(f"{split} must be a (2, E) long tensor of [user; item] ids, got {tuple(edges.shape)}"
                                 f" {edges.dtype}.")  # fmt: skip
            if edges.numel() and (edges[0].max() >= self.num_users or edges[1].max() >= self.num_items
                                  or edges.min() < 0):  # fmt: skip
                raise ValueError(f"{split} has ids outside 0..num_users-1 / 0..num_items-1: renumber them first.")
        for side, n, feats, masks in (
            ("user", self.num_users, self.user_features, self.user_mask),
            ("item", self.num_items, self.item_features, self.item_mask),
        ):
            for mod, x in feats.items():
                if x.size(0) != n:
                    raise ValueError(f"{side}_features[{mod!r}] has {x.size(0)} rows, expected {n}.")
            for mod, m in masks.items():
                if m.shape != (n,) or m.dtype != torch.bool:
                    raise ValueError(f"{side}_mask[{mod!r}] must be a ({n},) bool tensor, got {tuple(m.shape)} {m.dtype}.")

    # ------------------------------------------------------------------------------------------ helpers
    @property
    def num_nodes(self) -> int:
        """:math:`U + I`: users first, then items (offset by :math:`U`) in the homogeneous graph."""
        return self.num_users + self.num_items

    def edge_index(self, split: str = "train") -> Tensor:
        """The interactions of ``split`` as an undirected homogeneous graph over :math:`U + I` nodes.

        Returns:
            :math:`(2, 2E)` long: every (user, item) pair in both directions, items offset by :math:`U`.
        """
        edges = getattr(self, split)
        u, i = edges[0], edges[1] + self.num_users
        return torch.stack([torch.cat([u, i]), torch.cat([i, u])])

    def has(self, side: str, modality: str) -> Tensor:
        """The ``(U,)`` or ``(I,)`` bool mask of ``modality`` on ``side`` (``"user"`` or ``"item"``)."""
        if side not in ("user", "item"):
            raise ValueError(f"side must be 'user' or 'item', got {side!r}.")
        n = self.num_users if side == "user" else self.num_items
        masks = self.user_mask if side == "user" else self.item_mask
        return masks.get(modality, torch.zeros(n, dtype=torch.bool))

    def candidates_of(self, split: str) -> Tensor | None:
        """The items ranked on ``split``: :attr:`val_candidates` for ``"val"`` when given, else
        :attr:`candidates` (``None``: all items)."""
        if split == "val" and self.val_candidates is not None:
            return self.val_candidates
        return self.candidates

    def replace(self, **changes) -> InteractionData:
        """A copy with some fields changed (``dataclasses.replace``)."""
        return dataclasses.replace(self, **changes)

    def drop_modality(self, side: str, modality: str, nodes: Tensor) -> InteractionData:
        """A copy in which ``modality`` is missing for ``nodes`` (long ids or a bool mask) on ``side``."""
        mask = self.has(side, modality).clone()
        mask[nodes] = False
        masks = dict(self.user_mask if side == "user" else self.item_mask)
        masks[modality] = mask
        return self.replace(**{f"{side}_mask": masks})

    def __repr__(self) -> str:
        mods = lambda f: ",".join(f"{k}:{tuple(v.shape)[1:] or ''}" for k, v in f.items()) or "-"  # noqa: E731
        return (f"InteractionData({self.name}: {self.num_users} users, {self.num_items} items, "
                f"train/val/test={self.train.size(1)}/{self.val.size(1)}/{self.test.size(1)}, "
                f"user[{mods(self.user_features)}], item[{mods(self.item_features)}])")  # fmt: skip
