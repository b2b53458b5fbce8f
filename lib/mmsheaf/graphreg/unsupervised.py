r"""Unsupervised embeddings of the images' kNN graph: the reference points of the semi-supervised experiment.

Neural Graph Machines' graph carries information without any label; an unsupervised embedding of the same
neighbourhoods shows how much. **UMAP** (McInnes, Healy & Melville 2018, `arXiv:1802.03426
<https://arxiv.org/abs/1802.03426>`_; ``umap-learn``) embeds the images from their ``n_neighbors`` nearest
neighbours (the cosine kNN graph of :func:`~mmsheaf.data.semi_supervised.load_semi_supervised`, ``k`` and metric
alike); a k-nearest-neighbour vote of the labelled images then scores it, beside the same vote on the raw
pixels. Minimum-distortion embedding (``pymde``) would be the source study's other reference; it declares a
``torchvision`` dependency, which would install a second torch build, so it is left out (the project's rule).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from sklearn.neighbors import KNeighborsClassifier
from torch import Tensor

__all__ = ["UmapConfig", "knn_accuracy", "umap_embedding"]


@dataclass(frozen=True)
class UmapConfig:
    """UMAP's settings.

    Args:
        n_components: Embedding dimension.
        n_neighbors: Neighbours of the graph UMAP builds (the semi-supervised graph's ``k``).
        metric: Its metric (the semi-supervised graph's).
        min_dist: UMAP's ``min_dist``.
        seed: ``random_state``.
    """

    n_components: int = 16
    n_neighbors: int = 10
    metric: str = "cosine"
    min_dist: float = 0.1
    seed: int = 0

    def __post_init__(self) -> None:
        if self.n_components < 1 or self.n_neighbors < 2 or not 0.0 <= self.min_dist <= 1.0:
            raise ValueError(f"need n_components >= 1, n_neighbors >= 2 and min_dist in [0, 1], got {self}.")


def umap_embedding(x: Tensor, cfg: UmapConfig = UmapConfig()) -> Tensor:
    r"""UMAP of the rows of ``x`` (no labels).

    **Shapes:** ``x`` :math:`(N, F)`; output :math:`(N, \text{n\_components})` float32.
    """
    import umap  # imported here: umap-learn compiles numba kernels on import (seconds)

    reducer = umap.UMAP(n_components=cfg.n_components, n_neighbors=cfg.n_neighbors, metric=cfg.metric,
                        min_dist=cfg.min_dist, random_state=cfg.seed, n_jobs=1)  # fmt: skip
    return torch.from_numpy(np.asarray(reducer.fit_transform(x.numpy()), dtype=np.float32))


def knn_accuracy(emb: Tensor, y: Tensor, labelled: Tensor, test: Tensor, k: int = 5) -> float:
    """Accuracy on ``test`` of a ``k``-nearest-neighbour vote (Euclidean, distance-weighted) of the ``labelled``
    rows (``k`` at most the number of labelled rows).

    **Shapes:** ``emb`` :math:`(N, D)`; ``y``, ``labelled``, ``test`` :math:`(N,)`.
    """
    if not bool(labelled.any()) or not bool(test.any()):
        raise ValueError("knn_accuracy needs at least one labelled and one test row.")
    clf = KNeighborsClassifier(n_neighbors=min(k, int(labelled.sum())), weights="distance")
    clf.fit(emb[labelled].numpy(), y[labelled].numpy())
    return float((clf.predict(emb[test].numpy()) == y[test].numpy()).mean())
