"""A contextual stochastic block model (CSBM) with a set edge homophily: the embedded default dataset.

It needs no files, runs in milliseconds and lets experiments sweep homophily from 0 (every edge joins two
classes) to 1 (every edge stays inside a class), as in the synthetic experiments of
`"Neural Sheaf Diffusion" <https://arxiv.org/abs/2202.04579>`_ (Bodnar et al., NeurIPS 2022) and the CSBM of
`"Contextual Stochastic Block Models" <https://arxiv.org/abs/1807.09596>`_ (Deshpande et al., NeurIPS 2018).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import torch
from torch import Tensor
from torch_geometric.data import Data
from torch_geometric.utils import to_undirected

__all__ = ["CSBMConfig", "contextual_sbm", "random_split_masks"]

_MAX_ROUNDS = 64  # edge-sampling rounds before giving up on a too-dense configuration


@dataclass(frozen=True)
class CSBMConfig:
    """Configuration of :func:`contextual_sbm` (validated on construction).

    Args:
        num_nodes: Number of nodes :math:`N`.
        num_classes: Number of classes :math:`C` (labels balanced: class sizes differ by at most one).
        edge_homophily: Probability that a sampled edge joins two nodes of the same class, in :math:`[0, 1]`.
        mean_degree: Target mean degree; the graph has ``round(mean_degree * N / 2)`` undirected edges.
        num_features: Feature dimension :math:`F`.
        feature_signal: Norm of each class mean (random unit directions times this); the noise is
            :math:`\\mathcal{N}(0, I_F)`. ``0`` gives features that carry no label information.
        num_splits: Number of random train/val/test splits (mask columns).
        train_frac: Fraction of nodes in each training set (geom-gcn: 0.48).
        val_frac: Fraction of nodes in each validation set (geom-gcn: 0.32); the rest is the test set.
        seed: Seed of the generator; the same config gives identical tensors.
    """

    num_nodes: int = 1000
    num_classes: int = 5
    edge_homophily: float = 0.2
    mean_degree: float = 8.0
    num_features: int = 32
    feature_signal: float = 1.0
    num_splits: int = 10
    train_frac: float = 0.48
    val_frac: float = 0.32
    seed: int = 0

    def __post_init__(self) -> None:
        checks = [
            (self.num_classes >= 2, f"num_classes must be >= 2, got {self.num_classes}"),
            (
                self.num_nodes >= 2 * self.num_classes,
                f"num_nodes must be >= 2 * num_classes = {2 * self.num_classes}, got {self.num_nodes}",
            ),
            (
                0.0 <= self.edge_homophily <= 1.0,
                f"edge_homophily must lie in [0, 1], got {self.edge_homophily}",
            ),
            (
                0.0 < self.mean_degree <= (self.num_nodes / self.num_classes - 1) / 2,
                f"mean_degree must lie in (0, (num_nodes / num_classes - 1) / 2] = "
                f"(0, {(self.num_nodes / self.num_classes - 1) / 2:g}] so that edges can be sampled "
                f"without exhausting the node pairs of a class, got {self.mean_degree}",
            ),
            (self.num_features >= 1, f"num_features must be >= 1, got {self.num_features}"),
            (self.feature_signal >= 0.0, f"feature_signal must be >= 0, got {self.feature_signal}"),
            (self.num_splits >= 1, f"num_splits must be >= 1, got {self.num_splits}"),
            (
                0.0 < self.train_frac and 0.0 < self.val_frac and self.train_frac + self.val_frac < 1.0,
                "train_frac and val_frac must be > 0 with train_frac + val_frac < 1 (the rest is the test "
                f"set), got {self.train_frac} and {self.val_frac}",
            ),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(f"CSBMConfig: {message}.")

    @property
    def num_edges(self) -> int:
        """Number of undirected edges the graph will have: ``round(mean_degree * num_nodes / 2)``."""
        return max(1, round(self.mean_degree * self.num_nodes / 2))


def random_split_masks(
    num_nodes: int,
    num_splits: int,
    train_frac: float,
    val_frac: float,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor, Tensor]:
    """Random node splits laid out like the geom-gcn ones: boolean masks with one column per split.

    Each column is an independent random permutation cut into ``floor(train_frac * N)`` training,
    ``floor(val_frac * N)`` validation and the remaining test nodes, so the three masks of a column are
    disjoint and cover all nodes.

    Args:
        num_nodes: Number of nodes :math:`N`.
        num_splits: Number of splits :math:`S`.
        train_frac: Fraction of training nodes.
        val_frac: Fraction of validation nodes.
        generator: Source of randomness (seed it for reproducible splits).

    Returns:
        ``(train_mask, val_mask, test_mask)``.

    Shapes:
        - **outputs:** three boolean tensors :math:`(N, S)`.
    """
    num_train = math.floor(train_frac * num_nodes)
    num_val = math.floor(val_frac * num_nodes)
    if num_train < 1 or num_val < 1 or num_train + num_val >= num_nodes:
        raise ValueError(
            f"Splitting {num_nodes} nodes with train_frac={train_frac}, val_frac={val_frac} leaves an empty "
            "set: use more nodes or fractions with train_frac + val_frac < 1."
        )
    # rank[s, v] = position of node v in the random permutation of split s.
    rank = torch.rand(num_splits, num_nodes, generator=generator).argsort(dim=1).argsort(dim=1)
    train = rank < num_train
    val = (rank >= num_train) & (rank < num_train + num_val)
    test = rank >= num_train + num_val
    return train.t().contiguous(), val.t().contiguous(), test.t().contiguous()


def _sample_in_class(
    classes: Tensor, order: Tensor, offsets: Tensor, sizes: Tensor, generator: torch.Generator
) -> Tensor:
    """One node drawn uniformly from each class in ``classes`` (``order`` lists the nodes sorted by class)."""
    u = torch.rand(classes.numel(), generator=generator)
    pos = offsets[classes] + (u * sizes[classes]).long().clamp_max(sizes[classes] - 1)
    return order[pos]


def _first_occurrences(keys: Tensor) -> Tensor:
    """Positions of the first occurrence of each distinct value of ``keys``, in increasing order."""
    _, inverse = torch.unique(keys, return_inverse=True)
    positions = torch.arange(keys.numel())
    first = torch.full((int(inverse.max()) + 1,), keys.numel(), dtype=torch.long)
    first = first.scatter_reduce(0, inverse, positions, reduce="amin")
    return first.sort().values


def contextual_sbm(config: CSBMConfig | None = None, **overrides) -> Data:
    r"""Sample a contextual stochastic block model with a set edge homophily.

    Every undirected edge is drawn independently: with probability :math:`h` (``edge_homophily``) its two
    classes are equal, otherwise the second class is uniform among the :math:`C - 1` others; the first class
    is uniform and each endpoint is uniform within its class. Self-loops and duplicate edges are dropped and
    edges are drawn again until the graph has ``config.num_edges`` distinct edges, so the measured edge
    homophily is :math:`h` up to sampling noise (about :math:`\sqrt{h(1-h)/|E|}`). Features are
    :math:`x_v = \mu_{y_v} + \varepsilon_v` with class means :math:`\mu_c` random directions of norm
    ``feature_signal`` and :math:`\varepsilon_v \sim \mathcal{N}(0, I_F)`. Masks are random 48/32/20 splits
    like the geom-gcn ones (:func:`random_split_masks`). Everything is drawn from one generator seeded with
    ``config.seed``.

    Args:
        config: The configuration (default :class:`CSBMConfig()`).
        **overrides: Fields of :class:`CSBMConfig` to replace, e.g. ``contextual_sbm(edge_homophily=0.9)``.

    Returns:
        A :class:`~torch_geometric.data.Data` with ``x``, ``y``, ``edge_index`` (undirected: both directions,
        coalesced, no self-loops), ``train_mask``, ``val_mask``, ``test_mask`` and ``name = "csbm"``.

    Shapes:
        - **x:** :math:`(N, F)` float32
        - **y:** :math:`(N,)` int64
        - **edge_index:** :math:`(2, 2|E|)` int64
        - **train_mask / val_mask / test_mask:** :math:`(N, S)` bool
    """
    config = config if config is not None else CSBMConfig()
    if overrides:
        known = {f.name for f in dataclasses.fields(CSBMConfig)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise ValueError(
                f"Unknown CSBMConfig field(s) {unknown}: choose among {', '.join(sorted(known))}."
            )
        config = dataclasses.replace(config, **overrides)

    n, c = config.num_nodes, config.num_classes
    gen = torch.Generator().manual_seed(config.seed)

    # Balanced labels in random order.
    y = (torch.arange(n) % c)[torch.randperm(n, generator=gen)]
    order = torch.argsort(y, stable=True)
    sizes = torch.bincount(y, minlength=c)
    offsets = torch.cumsum(sizes, 0) - sizes

    # Edges: sample in rounds until `num_edges` distinct, self-loop-free pairs are found.
    target = config.num_edges
    rows, cols = torch.empty(0, dtype=torch.long), torch.empty(0, dtype=torch.long)
    for _ in range(_MAX_ROUNDS):
        need = target - rows.numel()
        if need <= 0:
            break
        k = int(need * 1.1) + 16
        a = torch.randint(c, (k,), generator=gen)
        intra = torch.rand(k, generator=gen) < config.edge_homophily
        b = torch.where(intra, a, (a + torch.randint(1, c, (k,), generator=gen)) % c)
        u = _sample_in_class(a, order, offsets, sizes, gen)
        v = _sample_in_class(b, order, offsets, sizes, gen)
        rows, cols = torch.cat([rows, torch.minimum(u, v)]), torch.cat([cols, torch.maximum(u, v)])
        keep = rows != cols
        rows, cols = rows[keep], cols[keep]
        first = _first_occurrences(rows * n + cols)
        rows, cols = rows[first], cols[first]
    if rows.numel() < target:  # pragma: no cover - prevented by the mean_degree check
        raise ValueError(
            f"Could not sample {target} distinct edges for {config}: lower mean_degree or raise num_nodes."
        )
    rows, cols = rows[:target], cols[:target]
    edge_index = to_undirected(torch.stack([rows, cols]), num_nodes=n)

    # Features: class means of norm `feature_signal` plus standard Gaussian noise.
    means = torch.randn(c, config.num_features, generator=gen)
    means = config.feature_signal * means / means.norm(dim=1, keepdim=True).clamp_min(1e-12)
    x = means[y] + torch.randn(n, config.num_features, generator=gen)

    train_mask, val_mask, test_mask = random_split_masks(
        n, config.num_splits, config.train_frac, config.val_frac, generator=gen
    )
    data = Data(
        x=x, y=y, edge_index=edge_index, train_mask=train_mask, val_mask=val_mask, test_mask=test_mask
    )
    data.name = "csbm"
    return data
