r"""The inputs of :class:`~mmsheaf.encoders.fusion.MultimodalEncoder`: one row per item, three modalities.

.. code-block:: python

    inputs = ModalityInputs(
        text=emb, text_mask=has_text,                  # (N, 384) float, (N,) bool
        x_num=num, x_cat=cat, num_categories=(3, 5),   # (N, 3) float with NaN, (N, 2) long with -1
        edge_index=edges,                              # (2, E) long, or None
        texts=strings,                                 # optional raw strings, for text="finetune"
    )
    inputs, labels = synthetic_inputs(num_rows=2000, num_classes=10, seed=0)   # a toy set for tests

**Missing values.** A row's *modality* is missing when its mask is ``False``: the encoders then use a learned
"missing" token for that row and never read its features (so whatever is stored there is irrelevant). Inside
an observed tabular row, single *cells* may be missing (``NaN`` numerics, ``-1`` categories): pytorch-frame's
NA strategies handle them (:class:`~mmsheaf.encoders.tabular.TabularEncoder`).

=============  ==============================================================================================
modality       observed where
=============  ==============================================================================================
``text``       ``text_mask`` (default: every row)
``tabular``    ``tabular_mask`` (default: rows with at least one non-missing numerical or categorical cell)
``graph``      ``graph_mask`` (default: nodes with at least one incoming edge other than a self-loop)
=============  ==============================================================================================
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from functools import cached_property

import torch
from torch import Tensor

from mmsheaf.data.clothing import MetricTask

__all__ = ["MODALITIES", "EmptyModalityError", "ModalityInputs", "synthetic_inputs", "task_inputs"]

MODALITIES: tuple[str, ...] = ("text", "tabular", "graph")
"""The modality names, in the order their tokens are concatenated."""


class EmptyModalityError(ValueError):
    """A modality the encoder should fuse has no observed value in any row (:meth:`ModalityInputs.empty_reason`).

    Attributes:
        modality: The empty modality.
        reason: Why it is empty, e.g. ``"the text embeddings have 0 columns"``.
    """

    def __init__(self, modality: str, reason: str, message: str) -> None:
        super().__init__(message)
        self.modality, self.reason = modality, reason


@dataclass(frozen=True, eq=False)
class ModalityInputs:
    r"""Per-row inputs of the multimodal encoder (all rows of the data set, on one device).

    Args:
        text: Cached sentence embeddings :math:`(N, D_{text})`, float; ``None``: no text modality.
        text_mask: :math:`(N,)` bool, ``False`` where the text is really missing (default: all ``True``).
        x_num: Numerical columns :math:`(N, F_{num})`, float, ``NaN`` for a missing cell; ``None``: none.
        x_cat: Categorical columns :math:`(N, F_{cat})`, long codes in ``[0, K_j)``, ``-1`` for a missing
            cell; ``None``: none.
        num_categories: :math:`K_j` per categorical column (default: ``max code + 1`` of each column).
        num_names / cat_names: Column names (default ``num_0, ...`` / ``cat_0, ...``).
        edge_index: :math:`(2, E)` long, messages flow ``edge_index[0] -> edge_index[1]`` (give both
            directions of an undirected graph); ``None``: no graph modality.
        tabular_mask: :math:`(N,)` bool, ``False`` where the whole tabular record is missing (default: rows
            with at least one non-missing cell).
        graph_mask: :math:`(N,)` bool, ``False`` where the node's graph context is missing (default: nodes
            with an incoming edge that is not a self-loop).
        texts: Optional raw strings, one per row (``N`` of them), that ``text`` embeds; only the encoder's
            ``text="finetune"`` option reads them (never where ``text_mask`` is ``False``).

    Raises:
        ValueError: inconsistent row counts, wrong dtypes or ranks, codes ``>= num_categories`` or
            ``< -1``, edges outside ``[0, N)``; the message says which field to fix.
    """

    text: Tensor | None = None
    text_mask: Tensor | None = None
    x_num: Tensor | None = None
    x_cat: Tensor | None = None
    num_categories: tuple[int, ...] | None = None
    num_names: tuple[str, ...] | None = None
    cat_names: tuple[str, ...] | None = None
    edge_index: Tensor | None = None
    tabular_mask: Tensor | None = None
    graph_mask: Tensor | None = None
    texts: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        n = self.num_rows

        def check(ok: bool, message: str) -> None:
            if not ok:
                raise ValueError(f"ModalityInputs: {message}.")

        check(n > 0, "give at least one of text, x_num, x_cat with one or more rows")
        for name in ("text", "x_num", "x_cat"):
            value = getattr(self, name)
            if value is not None:
                check(isinstance(value, Tensor) and value.dim() == 2 and value.size(0) == n,
                      f"{name} must be a 2-d tensor with {n} rows, got "
                      f"{tuple(value.shape) if isinstance(value, Tensor) else type(value).__name__}")  # fmt: skip
        if self.text is not None:
            check(self.text.is_floating_point(), f"text must be float, got {self.text.dtype}")
        if self.x_num is not None:
            check(self.x_num.is_floating_point(), f"x_num must be float (NaN = missing), got {self.x_num.dtype}")
            object.__setattr__(self, "num_names", self._names("num_names", self.x_num.size(1), "num"))
        if self.x_cat is not None:
            check(self.x_cat.dtype == torch.long, f"x_cat must be long codes (-1 = missing), got {self.x_cat.dtype}")
            check(self.x_cat.numel() == 0 or int(self.x_cat.min()) >= -1, "x_cat codes must be >= -1 (-1 = missing)")
            inferred = (tuple(int(k) + 1 for k in self.x_cat.max(0).values.clamp(min=0)) if self.x_cat.size(0)
                        else (0,) * self.x_cat.size(1))  # fmt: skip
            cats = tuple(int(k) for k in self.num_categories) if self.num_categories is not None else inferred
            check(len(cats) == self.x_cat.size(1),
                  f"num_categories has {len(cats)} entries for {self.x_cat.size(1)} categorical columns")
            bad = [j for j, (k, seen) in enumerate(zip(cats, inferred, strict=True)) if seen > k]
            check(not bad, f"x_cat column(s) {bad} hold codes >= num_categories {cats}: raise num_categories "
                           "or recode the column")  # fmt: skip
            object.__setattr__(self, "num_categories", cats)
            object.__setattr__(self, "cat_names", self._names("cat_names", self.x_cat.size(1), "cat"))
        for name in ("text_mask", "tabular_mask", "graph_mask"):
            value = getattr(self, name)
            if value is not None:
                check(isinstance(value, Tensor) and value.dtype == torch.bool and tuple(value.shape) == (n,),
                      f"{name} must be a bool tensor of shape ({n},)")  # fmt: skip
        if self.edge_index is not None:
            ei = self.edge_index
            check(isinstance(ei, Tensor) and ei.dim() == 2 and ei.size(0) == 2 and ei.dtype == torch.long,
                  "edge_index must be a (2, E) long tensor")  # fmt: skip
            check(ei.numel() == 0 or (int(ei.min()) >= 0 and int(ei.max()) < n),
                  f"edge_index holds node ids outside [0, {n})")
        if self.texts is not None:
            check(not isinstance(self.texts, str | bytes), "texts must be a sequence of strings, not a str")
            texts = tuple(self.texts)
            check(
                len(texts) == n and all(isinstance(t, str) for t in texts),
                f"texts must hold {n} strings (one per row, e.g. '' where text_mask is False)",
            )
            object.__setattr__(self, "texts", texts)

    def _names(self, field: str, count: int, prefix: str) -> tuple[str, ...]:
        names = getattr(self, field)
        names = tuple(f"{prefix}_{j}" for j in range(count)) if names is None else tuple(map(str, names))
        if len(names) != count or len(set(names)) != count:
            raise ValueError(f"ModalityInputs: {field} must be {count} distinct names, got {names}.")
        return names

    @property
    def num_rows(self) -> int:
        """:math:`N`, the number of rows."""
        for value in (self.text, self.x_num, self.x_cat):
            if value is not None:
                return int(value.size(0))
        return 0

    @property
    def device(self) -> torch.device:
        return next(v for v in (self.text, self.x_num, self.x_cat) if v is not None).device

    @property
    def has_tabular(self) -> bool:
        """Whether there is at least one numerical or categorical column."""
        return any(x is not None and x.size(1) > 0 for x in (self.x_num, self.x_cat))

    def available(self) -> tuple[str, ...]:
        """The modalities these inputs can feed, in :data:`MODALITIES` order."""
        have = {
            "text": self.text is not None or self.texts is not None,
            "tabular": self.has_tabular,
            "graph": self.edge_index is not None,
        }
        return tuple(m for m in MODALITIES if have[m])

    @cached_property
    def _default_masks(self) -> dict[str, Tensor]:
        n, device = self.num_rows, self.device
        masks = {"text": torch.ones(n, dtype=torch.bool, device=device)}
        observed = torch.zeros(n, dtype=torch.bool, device=device)
        if self.x_num is not None and self.x_num.size(1):
            observed |= ~torch.isnan(self.x_num).all(1)
        if self.x_cat is not None and self.x_cat.size(1):
            observed |= (self.x_cat >= 0).any(1)
        masks["tabular"] = observed
        has_edge = torch.zeros(n, dtype=torch.bool, device=device)
        if self.edge_index is not None:
            src, dst = self.edge_index
            has_edge[dst[src != dst]] = True
        masks["graph"] = has_edge
        return masks

    def mask(self, modality: str) -> Tensor:
        """:math:`(N,)` bool: where ``modality`` is observed (the given mask or the default of the table above)."""
        if modality not in MODALITIES:
            raise ValueError(f"Unknown modality {modality!r}: choose among {MODALITIES}.")
        given = {"text": self.text_mask, "tabular": self.tabular_mask, "graph": self.graph_mask}[modality]
        return given if given is not None else self._default_masks[modality]

    def empty_reason(self, modality: str) -> str | None:
        """Why no row observes ``modality`` (e.g. every text cell blank), or ``None`` when some row does or the
        inputs do not have the modality at all (:meth:`available`)."""
        if modality == "text" and self.text is not None and self.text.size(1) == 0:
            return "the text embeddings have 0 columns (no row had a text to embed)"
        have = {"text": self.text is not None or self.texts is not None, "tabular": self.has_tabular,
                "graph": self.edge_index is not None}  # fmt: skip
        if not have[modality] or bool(self.mask(modality).any()):
            return None
        return {"text": "text_mask is False in every row (no row has a text)",
                "tabular": "every numerical and categorical cell is missing (or tabular_mask is False everywhere)",
                "graph": "no row has a neighbour other than itself (or graph_mask is False everywhere)"}[modality]

    def to(self, device: torch.device | str) -> ModalityInputs:
        """These inputs with every tensor on ``device`` (``self`` when they already are)."""
        device = torch.device(device)
        fields = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        if all(not isinstance(v, Tensor) or v.device == device for v in fields.values()):
            return self
        return ModalityInputs(**{k: v.to(device) if isinstance(v, Tensor) else v for k, v in fields.items()})

    def permute(self, perm: Tensor) -> ModalityInputs:
        """The same data with row ``perm[i]`` moved to row ``i`` (edges relabelled): for equivariance tests."""
        inverse = torch.empty_like(perm)
        inverse[perm] = torch.arange(perm.numel(), device=perm.device)
        fields = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        out = {k: (v[perm] if isinstance(v, Tensor) and k != "edge_index" else v) for k, v in fields.items()}
        if self.texts is not None:
            out["texts"] = tuple(self.texts[i] for i in perm.tolist())
        if self.edge_index is not None:
            out["edge_index"] = inverse[self.edge_index]
        return ModalityInputs(**out)


def synthetic_inputs(
    num_rows: int = 2000,
    num_classes: int = 10,
    text_dim: int = 384,
    num_numerical: int = 3,
    num_categorical: int = 4,
    num_categories: int = 6,
    avg_degree: float = 10.0,
    homophily: float = 0.8,
    signal: float = 1.0,
    missing_text: float = 0.1,
    missing_cell: float = 0.1,
    missing_tabular: float = 0.05,
    seed: int = 0,
) -> tuple[ModalityInputs, Tensor]:
    r"""A toy multimodal data set with ``num_classes`` classes that every modality reveals (noisily).

    Row :math:`i` has class :math:`y_i` uniform in ``[0, num_classes)``. Text embeddings are
    :math:`\operatorname{normalise}(\text{signal}\cdot\mu_{y_i} + \varepsilon_i)` with a random unit centroid
    :math:`\mu_c` and noise of norm about 1 (like cached sentence embeddings); numerical columns are
    :math:`\text{signal}\cdot\nu_{y_i} + \mathcal{N}(0, 1)` on arbitrary scales; categorical column :math:`j`
    takes the class's preferred code with probability :math:`\min(1, 0.3\,\text{signal})`, else a uniform one;
    each node draws about ``avg_degree`` undirected neighbours, a ``homophily`` fraction in its own class.
    A ``missing_text`` fraction of rows has no text, ``missing_cell`` of the tabular cells are ``NaN``/``-1``,
    a ``missing_tabular`` fraction of rows has a wholly missing record (``tabular_mask`` ``False``, cells
    ``NaN``/``-1``), and isolated nodes have no graph context.

    Returns:
        ``(inputs, labels)``: :class:`ModalityInputs` on CPU and :math:`(N,)` long labels.
    """
    if num_rows < 2 or num_classes < 1:
        raise ValueError(f"need num_rows >= 2 and num_classes >= 1, got {num_rows=}, {num_classes=}.")
    g = torch.Generator().manual_seed(seed)
    n = num_rows
    labels = torch.randint(num_classes, (n,), generator=g)
    mu = torch.nn.functional.normalize(torch.randn(num_classes, text_dim, generator=g), dim=1)
    noise = torch.randn(n, text_dim, generator=g) / math.sqrt(text_dim)
    text = torch.nn.functional.normalize(signal * mu[labels] + noise, dim=1)
    text_mask = torch.rand(n, generator=g) >= missing_text

    scales = 10.0 ** torch.arange(num_numerical, dtype=torch.float32)  # columns on different scales
    nu = torch.randn(num_classes, num_numerical, generator=g)
    x_num = (signal * nu[labels] + torch.randn(n, num_numerical, generator=g)) * scales + 3.0 * scales
    preferred = torch.randint(num_categories, (num_classes, num_categorical), generator=g)
    uniform = torch.randint(num_categories, (n, num_categorical), generator=g)
    keep = torch.rand(n, num_categorical, generator=g) < min(1.0, 0.3 * signal)
    x_cat = torch.where(keep, preferred[labels], uniform)
    x_num[torch.rand(x_num.shape, generator=g) < missing_cell] = float("nan")
    x_cat[torch.rand(x_cat.shape, generator=g) < missing_cell] = -1
    tabular_mask = torch.rand(n, generator=g) >= missing_tabular
    x_num[~tabular_mask] = float("nan")
    x_cat[~tabular_mask] = -1

    m = max(0, round(n * avg_degree / 2))
    src = torch.randint(n, (m,), generator=g)
    same = torch.rand(m, generator=g) < homophily
    order = torch.argsort(labels, stable=True)
    counts = torch.bincount(labels, minlength=num_classes)
    starts = torch.cumsum(counts, 0) - counts
    pick = (torch.rand(m, generator=g) * counts[labels[src]]).long()
    dst_same = order[starts[labels[src]] + pick]
    dst = torch.where(same, dst_same, torch.randint(n, (m,), generator=g))
    keep_edge = src != dst
    src, dst = src[keep_edge], dst[keep_edge]
    pairs = torch.unique(torch.stack([torch.minimum(src, dst), torch.maximum(src, dst)]), dim=1)
    edge_index = torch.cat([pairs, pairs.flip(0)], dim=1)
    inputs = ModalityInputs(
        text=text, text_mask=text_mask, x_num=x_num, x_cat=x_cat,
        num_categories=(num_categories,) * num_categorical, edge_index=edge_index, tabular_mask=tabular_mask,
    )  # fmt: skip
    return inputs, labels


def task_inputs(task: MetricTask) -> ModalityInputs:
    """The encoder inputs of a clothing task: text embeddings (masked where really missing) and the raw texts
    (for ``EncoderConfig(text="finetune")``), the numerical and categorical columns with their missing cells, and
    the same-item graph (``category`` only)."""
    return ModalityInputs(
        text=task.text, text_mask=task.text_mask, x_num=task.numerical, x_cat=task.categorical,
        num_categories=task.num_categories, num_names=task.col_names_numerical,
        cat_names=task.col_names_categorical, edge_index=task.edge_index, texts=task.texts,
    )  # fmt: skip
