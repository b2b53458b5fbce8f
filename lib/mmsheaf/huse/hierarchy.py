r"""The class hierarchy of a HUSE study: its semantic graph and hierarchical precision.

`HUSE <https://arxiv.org/abs/1911.05978>`_ (Narayana et al., 2019) uses the class structure twice:

- **semantic graph** (Sec. 3.3, Eq. 4): :math:`A_{ij} = d(\psi(v_i), \psi(v_j))`, the cosine distance
  :math:`d(x, y) = 1 - \cos(x, y)` (Sec. 3.1) between sentence embeddings :math:`\psi` of the class names,
  the target distances of the semantic-graph loss (:func:`~mmsheaf.huse.losses.semantic_graph_loss`).
  Here :math:`\psi` embeds :meth:`ClassHierarchy.class_texts`, each class name with its ancestors (e.g.
  ``"Dresses, department Dresses, division General"``), so that two classes of one department are close;
- **hierarchical precision** HP@K (the paper's evaluation, after DeViSE, Frome et al., NeurIPS 2013):
  precision of the :math:`K` nearest neighbours of a query, where a retrieved item is relevant when its class
  lies in the query class's **ground-truth set** :math:`S_K(c)`: start from the class itself and move up the
  hierarchy, one level at a time, until the set of classes under the current ancestor holds at least
  :math:`K` classes (above the top level, the root holds every class):

  .. math::
      \mathrm{HP@K} = \frac{1}{|Q|} \sum_{q \in Q} \frac{1}{K} \sum_{j=1}^{K}
      \mathbb{1}\big[y_{r_j(q)} \in S_K(y_q)\big],
      \qquad S_K(c) = \{c' : a_{\ell^*}(c') = a_{\ell^*}(c)\},

  :math:`a_\ell(c)` the ancestor of :math:`c` at level :math:`\ell` and :math:`\ell^*` the deepest level whose
  group of :math:`c` has :math:`\ge K` classes. HP@1 is P@1; the set grows with :math:`K`, which is why the
  paper's HP@{2,5,10} increase with :math:`K`.

**Choices.** The paper builds its hierarchy for UPMC Food-101; here the hierarchy is given by a table of
(division, department, class) names. In the Women's Clothing reviews a department appears under two divisions
(``General`` and ``General Petite`` describe the review's size range, not the class), so
:meth:`ClassHierarchy.from_table` takes ``parents="majority"`` to keep each node's most frequent parent;
by default a node with two parents is an error. The neighbours are the cosine nearest neighbours in the
database; a query never retrieves itself when the query set is the database (``exclude_self``).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import pandas as pd
import torch
import torch.nn.functional as F
from torch import Tensor

from mmsheaf.data.clothing import HIERARCHY_COLUMNS

from .losses import pairwise_cosine_distance

__all__ = ["HUSE_LEVELS", "ClassHierarchy", "hierarchical_precision"]

HUSE_LEVELS: tuple[str, ...] = ("division", "department", "class")
"""The levels of the clothing hierarchy, top to bottom (the columns ``HIERARCHY_COLUMNS`` of the data)."""


def _is_missing(value: Any) -> bool:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return True
    return isinstance(value, str) and not value.strip()


@dataclass(frozen=True)
class ClassHierarchy:
    r"""A tree of class names, top level first, the classes (leaves) last.

    Args:
        names: The node names of each level, top to bottom; ``names[-1]`` are the classes, in label order
            (class index ``c`` is ``names[-1][c]``).
        parents: For each level below the top, the index of each node's parent in the level above
            (``parents[l - 1][i]`` is the parent of ``names[l][i]``).
        level_names: The name of each level, top to bottom (used in :meth:`class_texts` and metric keys).

    Build it with :meth:`from_table`. **Shapes:** :meth:`ancestors` and :meth:`group_sizes` :math:`(C, L)`,
    :meth:`relevant_classes` and :meth:`semantic_distance` :math:`(C, C)`.
    """

    names: tuple[tuple[str, ...], ...]
    parents: tuple[tuple[int, ...], ...]
    level_names: tuple[str, ...] = HUSE_LEVELS

    def __post_init__(self) -> None:
        levels = len(self.names)
        if levels == 0 or len(self.level_names) != levels or len(self.parents) != levels - 1:
            raise ValueError(f"A hierarchy needs one name tuple per level and one parent tuple per level "
                             f"below the top, got {levels} levels, {len(self.level_names)} level names and "
                             f"{len(self.parents)} parent tuples: build it with ClassHierarchy.from_table.")  # fmt: skip
        for level, names in zip(self.level_names, self.names, strict=True):
            if len(names) == 0 or len(set(names)) != len(names):
                raise ValueError(f"The {level} names must be non-empty and distinct, got {names}.")
        for lvl, parents in enumerate(self.parents, start=1):
            upper = len(self.names[lvl - 1])
            if len(parents) != len(self.names[lvl]) or any(not 0 <= p < upper for p in parents):
                raise ValueError(f"parents[{lvl - 1}] must give each of the {len(self.names[lvl])} "
                                 f"{self.level_names[lvl]} names a parent index in [0, {upper}), got {parents}.")

    # ------------------------------------------------------------------------------------ building
    @classmethod
    def from_table(
        cls,
        rows: pd.DataFrame | Iterable[Sequence[str]],
        *,
        classes: Sequence[str] | None = None,
        parents: Literal["unique", "majority"] = "unique",
        level_names: Sequence[str] = HUSE_LEVELS,
        columns: Sequence[str] = HIERARCHY_COLUMNS,
    ) -> ClassHierarchy:
        """The hierarchy of a table of names, one row per item (rows may repeat).

        Args:
            rows: A data frame (its ``columns``, top level first) or an iterable of name tuples such as
                ``("General", "Dresses", "Dresses")``. Names are stripped of surrounding spaces.
            classes: The class order (e.g. a task's ``label_names``, so that class ``c`` is label ``c``);
                rows of other classes are dropped. Default: the classes of the table, sorted (the order of
                ``np.unique``, the data module's label order).
            parents: ``"unique"``: a node listed under two parents is an error. ``"majority"``: keep the parent
                it is listed under most often (ties: the first name in sorted order).
            level_names: The level names, top to bottom.
            columns: The columns read from a data frame (default the clothing hierarchy columns).

        Raises:
            ValueError: an empty table, a row with a missing name or the wrong length, a class of ``classes``
                absent from the table, or (``parents="unique"``) a node with two parents.
        """
        level_names = tuple(level_names)
        if isinstance(rows, pd.DataFrame):
            missing_cols = [c for c in columns if c not in rows.columns]
            if missing_cols:
                raise ValueError(f"The data frame lacks the columns {missing_cols}: pass columns=(top, .., class).")
            table = [tuple(r) for r in rows[list(columns)].itertuples(index=False, name=None)]
        else:
            table = [tuple(r) for r in rows]
        if not table:
            raise ValueError(f"The table has no rows: pass one ({', '.join(level_names)}) name tuple per item, "
                             "e.g. df[list(HIERARCHY_COLUMNS)].dropna().")  # fmt: skip
        bad = [r for r in table if len(r) != len(level_names) or any(_is_missing(v) for v in r)]
        if bad:
            raise ValueError(f"{len(bad)} rows have a missing name or not {len(level_names)} names "
                             f"({', '.join(level_names)}), e.g. {bad[0]!r}: drop them first, e.g. "
                             "df.dropna(subset=list(HIERARCHY_COLUMNS)).")  # fmt: skip
        table = [tuple(str(v).strip() for v in r) for r in table]
        if parents not in ("unique", "majority"):
            raise ValueError(f"parents must be 'unique' or 'majority', got {parents!r}.")

        present = {r[-1] for r in table}
        if classes is None:
            order = sorted(present)
        else:
            order = [str(c).strip() for c in classes]
            absent = [c for c in order if c not in present]
            if absent or len(set(order)) != len(order):
                raise ValueError(f"classes must be distinct names of the table; not in the table: {absent}, "
                                 f"repeated: {sorted(c for c, n in Counter(order).items() if n > 1)}. Pass the "
                                 "label names of the task whose rows the table holds.")  # fmt: skip
            keep = set(order)
            table = [r for r in table if r[-1] in keep]

        names: list[tuple[str, ...]] = [tuple(order)]
        parent_idx: list[tuple[int, ...]] = []
        for lvl in range(len(level_names) - 1, 0, -1):  # bottom-up: each node's parent, then the level above
            counts: dict[str, Counter[str]] = {}
            for r in table:
                counts.setdefault(r[lvl], Counter())[r[lvl - 1]] += 1
            chosen = {}
            for node in names[0]:
                listed = counts[node]
                if len(listed) > 1 and parents == "unique":
                    raise ValueError(f"The {level_names[lvl]} {node!r} is listed under {len(listed)} "
                                     f"{level_names[lvl - 1]}s {dict(sorted(listed.items()))}: a "
                                     f"{level_names[lvl]} needs one {level_names[lvl - 1]}. Fix the table, or "
                                     "pass parents='majority' to keep the most frequent one.")  # fmt: skip
                chosen[node] = min(listed, key=lambda p, c=listed: (-c[p], p))
            upper = tuple(sorted(set(chosen.values())))
            position = {p: i for i, p in enumerate(upper)}
            parent_idx.insert(0, tuple(position[chosen[node]] for node in names[0]))
            names.insert(0, upper)
        return cls(names=tuple(names), parents=tuple(parent_idx), level_names=level_names)

    # ---------------------------------------------------------------------------------- structure
    @property
    def classes(self) -> tuple[str, ...]:
        """The class names in label order."""
        return self.names[-1]

    @property
    def num_classes(self) -> int:
        return len(self.names[-1])

    @property
    def num_levels(self) -> int:
        return len(self.names)

    def ancestors(self) -> Tensor:
        """``(C, L)`` long: column ``l`` is the index (in ``names[l]``) of each class's ancestor at level ``l``;
        the last column is ``arange(C)``."""
        cols = [torch.arange(self.num_classes)]
        for parents in reversed(self.parents):
            cols.insert(0, torch.tensor(parents, dtype=torch.long)[cols[0]])
        return torch.stack(cols, dim=1)

    def group_sizes(self) -> Tensor:
        """``(C, L)`` long: the number of classes that share each class's ancestor at each level (1 at the
        class level, non-increasing from top to bottom)."""
        anc = self.ancestors()
        return (anc[:, None, :] == anc[None, :, :]).sum(dim=1)

    def relevant_classes(self, k: int) -> Tensor:
        r"""``(C, C)`` bool: ``[c, c']`` is True when class ``c'`` is in the ground-truth set :math:`S_K(c)` of
        HP@K (the classes under the deepest ancestor of ``c`` with at least ``k`` classes; all classes when
        even the top level has fewer)."""
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}.")
        anc = self.ancestors()
        same = anc[:, None, :] == anc[None, :, :]  # (C, C, L)
        same = torch.cat([torch.ones_like(same[..., :1]), same], dim=-1)  # index 0: the root
        level = (self.group_sizes() >= k).sum(dim=1)  # 0 = root, l + 1 = level l (a prefix of True)
        return same.gather(2, level[:, None, None].expand(-1, self.num_classes, 1)).squeeze(2)

    def class_texts(self) -> tuple[str, ...]:
        """The text to embed per class (label order): the class name, then each ancestor with its level,
        bottom-up: ``"Dresses, department Dresses, division General"``."""
        anc = self.ancestors().tolist()
        out = []
        for c, row in enumerate(anc):
            parts = [self.classes[c]]
            for lvl in range(self.num_levels - 2, -1, -1):
                parts.append(f"{self.level_names[lvl]} {self.names[lvl][row[lvl]]}")
            out.append(", ".join(parts))
        return tuple(out)

    def semantic_distance(self, class_embeddings: Tensor) -> Tensor:
        r"""The semantic graph :math:`A` of HUSE (Eq. 4): :math:`A_{ij} = 1 - \cos(\psi_i, \psi_j)`, the cosine
        distance of the class embeddings (symmetric, zero diagonal, in :math:`[0, 2]`; not rescaled, so it is
        on the scale of the embedding distances it is compared with).

        Args:
            class_embeddings: One row per class in :attr:`classes` order, e.g.
                ``embed_texts(list(h.class_texts()))`` (:func:`mmsheaf.data.text_cache.embed_texts`).

        **Shapes:** input :math:`(C, E)`; output :math:`(C, C)`.
        """
        if class_embeddings.dim() != 2 or class_embeddings.size(0) != self.num_classes:
            raise ValueError(f"class_embeddings must be (C, E) with C = {self.num_classes} rows in the order "
                             f"of hierarchy.classes, got {tuple(class_embeddings.shape)}: embed "
                             "hierarchy.class_texts() with mmsheaf.data.text_cache.embed_texts.")  # fmt: skip
        dist = pairwise_cosine_distance(class_embeddings.float() if not class_embeddings.is_floating_point()
                                        else class_embeddings)  # fmt: skip
        dist = 0.5 * (dist + dist.T)
        dist.fill_diagonal_(0.0)
        return dist.clamp(0.0, 2.0)


# ----------------------------------------------------------------------------------- the metric
def _check_set(emb: Tensor, labels: Tensor, what: str, num_classes: int) -> None:
    if emb.dim() != 2 or labels.dim() != 1 or emb.size(0) != labels.numel() or emb.size(0) == 0:
        raise ValueError(f"{what} embeddings must be (N, D) with N >= 1 and labels (N,), got "
                         f"{tuple(emb.shape)} and {tuple(labels.shape)}.")  # fmt: skip
    if labels.min() < 0 or labels.max() >= num_classes:
        raise ValueError(f"{what} labels must lie in [0, {num_classes}) (the hierarchy's classes), got "
                         f"[{int(labels.min())}, {int(labels.max())}]: use the hierarchy built with the task's "
                         "label names.")  # fmt: skip


@torch.no_grad()
def hierarchical_precision(
    query_emb: Tensor,
    query_labels: Tensor,
    db_emb: Tensor,
    db_labels: Tensor,
    hierarchy: ClassHierarchy,
    ks: Sequence[int] = (2, 5, 10),
    exclude_self: bool | None = None,
    *,
    per_level: bool = False,
    per_query: bool = False,
    batch_size: int = 1024,
) -> dict[str, float | Tensor]:
    r"""Hierarchical precision HP@K of HUSE (see the module docstring) with cosine nearest neighbours.

    Args:
        query_emb: The queries (any norm; compared by cosine similarity).
        query_labels: Class index of each query.
        db_emb: The database searched (any modality; cross-modal retrieval passes another modality's rows).
        db_labels: Class index of each database row.
        hierarchy: The class tree; labels index ``hierarchy.classes``.
        ks: The values of :math:`K`.
        exclude_self: Drop database row ``i`` from the neighbours of query ``i`` (the query set is the
            database). Default (``None``): exclude when ``query_emb is db_emb`` or both embeddings and labels
            are equal. For a cross-modal search over the same rows, True also drops the row's own embedding
            in the other modality.
        per_level: Also return ``p_at_{k}_{level}``: the share of the top :math:`K` that shares the query's
            ancestor at each level (the class level is the plain P@K).
        per_query: Return ``(Q,)`` tensors instead of means.
        batch_size: Queries per block (memory :math:`O(\text{batch\_size} \cdot N)`).

    Returns:
        ``{"hp_at_{k}": value}`` for each ``k`` (and the per-level precisions when asked).

    **Shapes:** ``query_emb`` :math:`(Q, D)`, ``query_labels`` :math:`(Q,)`, ``db_emb`` :math:`(N, D)`,
    ``db_labels`` :math:`(N,)`.
    """
    _check_set(query_emb, query_labels, "query", hierarchy.num_classes)
    _check_set(db_emb, db_labels, "database", hierarchy.num_classes)
    if query_emb.size(1) != db_emb.size(1):
        raise ValueError(f"query and database embeddings must have the same width, got {query_emb.size(1)} and "
                         f"{db_emb.size(1)}: compare embeddings of one shared space.")  # fmt: skip
    ks = tuple(int(k) for k in ks)
    if not ks or min(ks) < 1:
        raise ValueError(f"ks must be a non-empty sequence of integers >= 1, got {ks}.")
    if exclude_self is None:
        exclude_self = query_emb is db_emb or (
            query_emb.shape == db_emb.shape and torch.equal(query_emb, db_emb)
            and torch.equal(query_labels.to(db_labels.device), db_labels)
        )  # fmt: skip
    if exclude_self and query_emb.size(0) != db_emb.size(0):
        raise ValueError(f"exclude_self pairs query i with database row i, so both need the same number of "
                         f"rows, got {query_emb.size(0)} and {db_emb.size(0)}.")  # fmt: skip
    k_max = max(ks)
    available = db_emb.size(0) - int(bool(exclude_self))
    if k_max > available:
        raise ValueError(f"K = {k_max} exceeds the {available} database rows a query can retrieve: lower ks.")

    device = db_emb.device
    qn, dn = F.normalize(query_emb.float().to(device), dim=1), F.normalize(db_emb.float(), dim=1)
    yq, yd = query_labels.long().to(device), db_labels.long().to(device)
    relevant = {k: hierarchy.relevant_classes(k).to(device) for k in ks}
    anc = hierarchy.ancestors().to(device)
    same_level = [anc[:, lvl, None] == anc[None, :, lvl] for lvl in range(hierarchy.num_levels)]
    names = [f"hp_at_{k}" for k in ks]
    if per_level:
        names += [f"p_at_{k}_{lvl}" for k in ks for lvl in hierarchy.level_names]
    parts: dict[str, list[Tensor]] = {n: [] for n in names}
    for start in range(0, qn.size(0), batch_size):  # blocks of queries, each batched
        q = qn[start : start + batch_size]
        sim = q @ dn.T
        if exclude_self:
            rows = torch.arange(q.size(0), device=device)
            sim[rows, rows + start] = float("-inf")
        nb_labels = yd[sim.topk(k_max, dim=1).indices]  # (q, k_max), nearest first
        y = yq[start : start + q.size(0), None]
        for k in ks:
            parts[f"hp_at_{k}"].append(relevant[k][y, nb_labels[:, :k]].float().mean(1))
            if per_level:
                for lvl, name in enumerate(hierarchy.level_names):
                    parts[f"p_at_{k}_{name}"].append(same_level[lvl][y, nb_labels[:, :k]].float().mean(1))
    values = {n: torch.cat(v) for n, v in parts.items()}
    if per_query:
        return dict(values)
    return {n: float(v.mean()) for n, v in values.items()}
