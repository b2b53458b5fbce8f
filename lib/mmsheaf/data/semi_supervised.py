"""k-nearest-neighbour similarity graphs over features, and the semi-supervised MNIST-5k graph built from them.

The setting of the image experiment of
`"Neural Graph Machines: Learning Neural Networks Using Graphs" <https://arxiv.org/abs/1703.04818>`_
(Bui, Ravi and Ramavajjala, WSDM 2018): a few labelled images per class (10, 50 or 100), the rest of the
training images unlabelled, and a kNN similarity graph over all images built from their pixels, *without*
labels. Its edges are labelled-labelled, labelled-unlabelled or unlabelled-unlabelled, and a graph
regulariser pulls the hidden representations of neighbours together on all three kinds.

- :func:`knn_graph`: the undirected kNN graph of a feature matrix (cosine or Euclidean, registry
  :data:`METRICS`), computed in chunks of rows with :func:`torch.topk`, with cosine or Gaussian-kernel
  edge weights (the kernel's width the median k-th-neighbour distance, the self-tuning heuristic of
  `Zelnik-Manor and Perona, NeurIPS 2004 <https://papers.nips.cc/paper/2619-self-tuning-spectral-clustering>`_
  made global).
- :func:`labelled_subset`: a seeded draw of ``per_class`` labelled rows of every class.
- :func:`load_semi_supervised` (:class:`SemiSupervisedConfig`): the image set of
  :func:`~mmsheaf.data.images.load_images` as one transductive graph with labelled, unlabelled,
  validation and test masks.

.. code-block:: python

    data = load_semi_supervised(SemiSupervisedConfig(per_class=10, k=10))
    data.x, data.edge_index, data.edge_weight  # (5000, 784), (2, E), (E,)
    data.train_mask.sum()                      # 100 labelled images, 10 per class
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor
from torch_geometric.data import Data
from torch_geometric.utils import to_undirected

from mmsheaf.data.images import IMAGE_DATASETS, load_images

__all__ = [
    "METRICS",
    "KnnMetric",
    "SemiSupervisedConfig",
    "knn_graph",
    "labelled_subset",
    "load_semi_supervised",
]


# ------------------------------------------------------------------------------------------------------------
# Metrics
# ------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class KnnMetric:
    """How :func:`knn_graph` ranks neighbours and weighs edges under one metric (an entry of :data:`METRICS`).

    Args:
        prepare: Features -> the features the other two functions see (e.g. rows scaled to unit norm).
        scores: ``(queries, keys)`` -> a score per pair, larger for nearer pairs (used only to rank).
        pair_values: ``(a, b)`` -> the exact per-pair value the weights are made of (cosine similarity,
            squared distance), computed row by row so that it is the same for ``(a, b)`` and ``(b, a)``.
        to_weight: ``(values, neighbour_values)`` -> edge weights, from the pair values of the edges and
            those of every node's ``k`` directed nearest neighbours.

    Shapes:
        - **scores:** :math:`(B, D), (N, D) \\to (B, N)`
        - **pair_values:** :math:`(E, D), (E, D) \\to (E,)`
        - **to_weight:** :math:`(E,), (N, k) \\to (E,)`
    """

    prepare: Callable[[Tensor], Tensor]
    scores: Callable[[Tensor, Tensor], Tensor]
    pair_values: Callable[[Tensor, Tensor], Tensor]
    to_weight: Callable[[Tensor, Tensor], Tensor]


def _unit_rows(x: Tensor) -> Tensor:
    return F.normalize(x, p=2.0, dim=1)  # a zero row stays zero: cosine 0 with every row


def _cosine_weight(values: Tensor, neighbour_values: Tensor) -> Tensor:
    del neighbour_values
    return values.clamp(0.0, 1.0)


def _squared_distance_scores(queries: Tensor, keys: Tensor) -> Tensor:
    # -||q - k||^2 + ||q||^2: the same order per query row, one matrix product instead of a (B, N, D) tensor.
    return 2.0 * queries @ keys.t() - keys.pow(2).sum(dim=1)


def _gaussian_weight(values: Tensor, neighbour_values: Tensor) -> Tensor:
    # sigma = median k-th-neighbour distance; torch.median takes the lower middle value, so the median of
    # the squared distances is the square of the median distance.
    sigma2 = neighbour_values.max(dim=1).values.median()
    if not float(sigma2) > 0.0:
        raise ValueError(
            "knn_graph(metric='euclidean'): the median distance to the k-th nearest neighbour is 0 (more than "
            "half of the rows have k exact duplicates), so the Gaussian kernel has no width: raise k, drop "
            "duplicate rows or use metric='cosine'."
        )
    # Floor at the smallest normal float: a far outlier's edges keep a positive weight.
    return torch.exp(-values / sigma2).clamp_min(torch.finfo(values.dtype).tiny)


METRICS: dict[str, KnnMetric] = {
    "cosine": KnnMetric(
        prepare=_unit_rows,
        scores=lambda queries, keys: queries @ keys.t(),
        pair_values=lambda a, b: (a * b).sum(dim=1),
        to_weight=_cosine_weight,
    ),
    "euclidean": KnnMetric(
        prepare=lambda x: x,
        scores=_squared_distance_scores,
        pair_values=lambda a, b: (a - b).pow(2).sum(dim=1),
        to_weight=_gaussian_weight,
    ),
}
"""Registry of :func:`knn_graph`'s metrics: ``"cosine"`` (weight: the cosine similarity clamped to
:math:`[0, 1]`) and ``"euclidean"`` (weight: :math:`\\exp(-d^2 / \\sigma^2)`, :math:`\\sigma` the median
distance of a node to its k-th nearest neighbour)."""


# ------------------------------------------------------------------------------------------------------------
# kNN graph
# ------------------------------------------------------------------------------------------------------------


def _top_k_lowest_index_ties(scores: Tensor, k: int) -> Tensor:
    """Boolean mask of each row's ``k`` largest scores; among equal scores at the cut the lowest columns win."""
    kth = torch.topk(scores, k, dim=1).values[:, -1:]
    above = scores > kth
    ties = scores == kth
    missing = k - above.sum(dim=1, keepdim=True)
    return above | (ties & (ties.cumsum(dim=1) <= missing))


def _pair_values_chunked(metric: KnnMetric, xp: Tensor, row: Tensor, col: Tensor, block: int) -> Tensor:
    parts = [
        metric.pair_values(xp[row[start : start + block]], xp[col[start : start + block]])
        for start in range(0, row.numel(), block)
    ]
    return torch.cat(parts) if parts else xp.new_zeros(0)


def knn_graph(x: Tensor, k: int, *, metric: str = "cosine", chunk_size: int = 1024) -> tuple[Tensor, Tensor]:
    """The undirected, weighted k-nearest-neighbour graph of the rows of ``x``.

    Every row is joined to its ``k`` nearest *other* rows under ``metric`` (its own row excluded; among
    equally near rows the lower row indices win, so the graph is deterministic). The scores of ``chunk_size``
    query rows against all rows are computed at a time (memory :math:`O(\\text{chunk\\_size} \\cdot N)`)
    and ranked with :func:`torch.topk`. The directed kNN relation is then made symmetric: ``i`` and ``j``
    are joined when either is among the other's ``k`` nearest, so every node has degree :math:`\\ge k`.

    Edge weights: ``"cosine"``: the cosine similarity, clamped to :math:`[0, 1]`; ``"euclidean"``:
    :math:`\\exp(-d_{ij}^2 / \\sigma^2)` with :math:`\\sigma` the median over the nodes of the distance to
    their k-th nearest neighbour, floored at the smallest normal float so that it lies in :math:`(0, 1]`.
    The weights are computed per edge from its two end rows, so both directions carry the same weight and
    the chunking does not change them. No labels enter: the graph depends on ``x`` alone.

    Args:
        x: Features, one row per node (integer features are cast to float32).
        k: Number of neighbours per node, :math:`1 \\le k \\le N - 1`.
        metric: A key of :data:`METRICS`: ``"cosine"`` or ``"euclidean"``.
        chunk_size: Number of query rows scored at a time.

    Returns:
        ``(edge_index, edge_weight)``: both directions of every edge, no self-loops, no duplicates, sorted
        by source then target (as :func:`torch_geometric.utils.coalesce`), on ``x``'s device.

    Shapes:
        - **x:** :math:`(N, D)`
        - **edge_index:** :math:`(2, E)` int64, :math:`N k \\le E \\le 2 N k`
        - **edge_weight:** :math:`(E,)` float (``x``'s dtype, float32 for integer ``x``)
    """
    if metric not in METRICS:
        raise ValueError(f"Unknown knn_graph metric {metric!r}: choose one of {', '.join(METRICS)}.")
    if x.dim() != 2:
        raise ValueError(
            f"knn_graph needs a 2-D feature matrix (N, D), got shape {tuple(x.shape)}: flatten the "
            "features of each node into one row (e.g. x.flatten(1))."
        )
    num_nodes = x.shape[0]
    if not 1 <= k <= num_nodes - 1:
        raise ValueError(
            f"knn_graph needs 1 <= k <= N - 1 = {num_nodes - 1} (a node is never its own neighbour), got "
            f"k={k}: lower k or pass more rows."
        )
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive number of rows, got {chunk_size}.")
    if not x.is_floating_point():
        x = x.float()
    if not bool(torch.isfinite(x).all()):
        raise ValueError("knn_graph: x has NaN or infinite entries: clean or impute the features first.")

    spec = METRICS[metric]
    with torch.no_grad():
        xp = spec.prepare(x.detach())
        sources, targets = [], []
        for start in range(0, num_nodes, chunk_size):
            stop = min(start + chunk_size, num_nodes)
            scores = spec.scores(xp[start:stop], xp)
            rows = torch.arange(stop - start, device=x.device)
            scores[rows, rows + start] = float("-inf")  # never one's own neighbour
            chosen = _top_k_lowest_index_ties(scores, k).nonzero()  # row-major: k per query row
            sources.append(chosen[:, 0] + start)
            targets.append(chosen[:, 1])
        source, target = torch.cat(sources), torch.cat(targets)
        block = chunk_size * k
        neighbour_values = _pair_values_chunked(spec, xp, source, target, block).view(num_nodes, k)
        edge_index = to_undirected(torch.stack([source, target]), num_nodes=num_nodes)
        values = _pair_values_chunked(spec, xp, edge_index[0], edge_index[1], block)
        edge_weight = spec.to_weight(values, neighbour_values)
    return edge_index, edge_weight


# ------------------------------------------------------------------------------------------------------------
# Labelled subset
# ------------------------------------------------------------------------------------------------------------


def labelled_subset(labels: Tensor, per_class: int, *, seed: int, candidates: Tensor | None = None) -> Tensor:
    """A seeded draw of exactly ``per_class`` labelled rows of every class.

    For every class present in ``labels``, ``per_class`` rows are drawn uniformly without replacement
    among the candidate rows of that class (one seeded :func:`torch.randperm` of the sorted, deduplicated
    candidates, so the order in which they are passed does not matter).

    Args:
        labels: Class label of every row.
        per_class: Number of rows to draw per class, :math:`\\ge 1`.
        seed: Seed of the :class:`torch.Generator`; the same inputs and seed give the same mask.
        candidates: Row indices to draw from (default: all rows).

    Returns:
        A boolean mask with ``per_class`` ``True`` rows per class, all among ``candidates``.

    Shapes:
        - **labels:** :math:`(N,)` int
        - **candidates:** :math:`(M,)` int64
        - **output:** :math:`(N,)` bool
    """
    if labels.dim() != 1:
        raise ValueError(f"labels must be a 1-D tensor of class labels, got shape {tuple(labels.shape)}.")
    if per_class < 1:
        raise ValueError(f"per_class must be a positive number of labelled rows per class, got {per_class}.")
    num_rows = labels.shape[0]
    labels = labels.cpu()
    if candidates is None:
        candidates = torch.arange(num_rows)
    else:
        candidates = torch.unique(candidates.cpu().long().flatten())  # sorted, deduplicated
        if candidates.numel() and (int(candidates.min()) < 0 or int(candidates.max()) >= num_rows):
            raise ValueError(
                f"candidates must be row indices in 0 .. {num_rows - 1}, got values in "
                f"{int(candidates.min())} .. {int(candidates.max())}."
            )
    classes = torch.unique(labels)
    generator = torch.Generator().manual_seed(seed)
    shuffled = candidates[torch.randperm(candidates.numel(), generator=generator)]
    shuffled_labels = labels[shuffled]
    counts = (shuffled_labels.unsqueeze(1) == classes.unsqueeze(0)).sum(dim=0)
    short = classes[counts < per_class]
    if short.numel():
        found = ", ".join(
            f"{int(c)}: {int(n)}" for c, n in zip(classes, counts, strict=True) if n < per_class
        )
        raise ValueError(
            f"labelled_subset: per_class={per_class} rows are needed from every class, but some classes "
            f"have fewer candidates (class: count) {found}: lower per_class or pass more candidates."
        )
    # Stable sort by class keeps the random order within each class; take the first per_class of each.
    sorted_labels, order = torch.sort(shuffled_labels, stable=True)
    starts = torch.searchsorted(sorted_labels, sorted_labels, side="left")
    rank = torch.arange(sorted_labels.numel()) - starts
    mask = torch.zeros(num_rows, dtype=torch.bool)
    mask[shuffled[order[rank < per_class]]] = True
    return mask


# ------------------------------------------------------------------------------------------------------------
# Semi-supervised image graph
# ------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SemiSupervisedConfig:
    """Configuration of :func:`load_semi_supervised` (validated on construction).

    Args:
        dataset: A key of :data:`~mmsheaf.data.images.IMAGE_DATASETS` (NGM: ``"mnist5k"``).
        per_class: Labelled training images per class (NGM: 10, 50 or 100).
        k: Neighbours per node of the kNN graph.
        metric: A key of :data:`METRICS`.
        seed: Seed of the labelled subset (:func:`labelled_subset`).
        split_seed: Seed of the train/val/test split of the images (:func:`~mmsheaf.data.images.load_images`).
        max_rows: Keep a seeded, stratified subset of this many images (the smoke profile); ``None``: all.
    """

    dataset: str = "mnist5k"
    per_class: int = 10
    k: int = 10
    metric: str = "cosine"
    seed: int = 0
    split_seed: int = 0
    max_rows: int | None = None

    def __post_init__(self) -> None:
        checks = [
            (
                self.dataset in IMAGE_DATASETS,
                f"dataset must be one of {', '.join(IMAGE_DATASETS)}, got {self.dataset!r}",
            ),
            (self.per_class >= 1, f"per_class must be >= 1, got {self.per_class}"),
            (self.k >= 1, f"k must be >= 1, got {self.k}"),
            (self.metric in METRICS, f"metric must be one of {', '.join(METRICS)}, got {self.metric!r}"),
            (self.seed >= 0, f"seed must be >= 0, got {self.seed}"),
            (self.split_seed >= 0, f"split_seed must be >= 0, got {self.split_seed}"),
            (
                self.max_rows is None or self.max_rows >= 1,
                f"max_rows must be a positive number of images or None (all), got {self.max_rows}",
            ),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(f"SemiSupervisedConfig: {message}.")


def load_semi_supervised(cfg: SemiSupervisedConfig, *, root: str | Path | None = None) -> Data:
    """An image set as one transductive kNN graph with a few labelled training images per class (NGM).

    The images of ``load_images(cfg.dataset, seed=cfg.split_seed, max_rows=cfg.max_rows)`` become the
    nodes, training rows first, then validation, then test rows. The kNN graph
    (:func:`knn_graph`, ``cfg.k``, ``cfg.metric``) is built over the pixels of *all* nodes and never sees a
    label. Validation and test images are therefore nodes of the graph: their pixels shape it (and they
    take part in graph regularisation as unlabelled neighbours), but their labels are never used in
    training, as in the transductive setting of Neural Graph Machines. The labelled subset is drawn from
    the training split only (:func:`labelled_subset`, ``cfg.seed``, from the training labels alone); the
    remaining training images are the unlabelled ones.

    Args:
        cfg: The configuration.
        root: The data root (default :func:`mmsheaf.paths.data_root`), passed to
            :func:`~mmsheaf.data.images.load_images`.

    Returns:
        A :class:`~torch_geometric.data.Data` with ``x``, ``y``, ``edge_index``, ``edge_weight``, the
        disjoint boolean masks ``train_mask`` (labelled), ``unlabelled_mask`` (the rest of the training
        split), ``val_mask`` and ``test_mask`` (together covering every node), and the ints
        ``num_classes`` and ``labelled_per_class``.

    Shapes:
        - **x:** :math:`(N, 784)` float32 in :math:`[0, 1]` (flattened 28x28 pixels)
        - **y:** :math:`(N,)` int64
        - **edge_index:** :math:`(2, E)` int64; **edge_weight:** :math:`(E,)` float32
        - **<name>_mask:** :math:`(N,)` bool
    """
    splits = load_images(cfg.dataset, seed=cfg.split_seed, max_rows=cfg.max_rows, root=root)
    x = torch.cat([splits.train_x, splits.val_x, splits.test_x]).flatten(1)
    y = torch.cat([splits.train_y, splits.val_y, splits.test_y])
    sizes = splits.sizes
    num_train, num_val, num_nodes = sizes["train"], sizes["val"], x.shape[0]

    edge_index, edge_weight = knn_graph(x, cfg.k, metric=cfg.metric)  # pixels only: no labels

    train_mask = torch.zeros(num_nodes, dtype=torch.bool)
    train_mask[:num_train] = labelled_subset(splits.train_y, cfg.per_class, seed=cfg.seed)
    unlabelled_mask = torch.zeros(num_nodes, dtype=torch.bool)
    unlabelled_mask[:num_train] = ~train_mask[:num_train]
    val_mask = torch.zeros(num_nodes, dtype=torch.bool)
    val_mask[num_train : num_train + num_val] = True
    test_mask = torch.zeros(num_nodes, dtype=torch.bool)
    test_mask[num_train + num_val :] = True
    return Data(
        x=x,
        y=y,
        edge_index=edge_index,
        edge_weight=edge_weight,
        train_mask=train_mask,
        unlabelled_mask=unlabelled_mask,
        val_mask=val_mask,
        test_mask=test_mask,
        num_classes=splits.num_classes,
        labelled_per_class=cfg.per_class,
    )
