r"""The edge bookkeeping of a graph for sheaf Laplacians, built once per graph, and its caches.

`Neural Sheaf Diffusion <https://arxiv.org/abs/2202.04579>`_ (Bodnar et al., NeurIPS 2022) puts a stalk
:math:`\mathbb{R}^d` on every node and edge of an undirected graph and a restriction map on every incidence
:math:`v \trianglelefteq e`, so every undirected edge :math:`e = (u, v)` carries two maps, one per directed
copy. This module holds what depends on the graph alone:

- :class:`SheafIndex` (from :func:`build_index`): the directed edges in *undirected-major* order (edge
  :math:`e` and its reverse :math:`E + e`), the degrees, and cached CSR patterns of the off-diagonal part
  of the Laplacian for every stalk size;
- :class:`GraphIndexCache` / :class:`SheafIndexCache`: small LRU caches keyed by an ``edge_index`` tensor,
  so a layer called many times on one graph builds its index once.

CSR layout (measured on a squirrel-sized graph, see :mod:`mmsheaf.sheaf.kernels`): rows are numbered
stalk-major (``i * N + v``) and columns node-major (``u * d + j``). The non-zeros then come from the
per-edge blocks by one flat gather, column indices come out sorted, and a product returns to node-major
order by one cheap ``(d, N, C) -> (N, d, C)`` transpose. Indices are int32 (MKL's type: no conversion per
product).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import torch
from torch import Tensor

__all__ = [
    "CSRPattern",
    "GraphIndexCache",
    "SheafIndex",
    "SheafIndexCache",
    "build_index",
]


class CSRPattern(NamedTuple):
    """Sparsity pattern of the off-diagonal part: rows stalk-major ``i*N+v``, columns node-major ``u*d+j``."""

    crow: Tensor  # (d*N + 1,) int32
    col: Tensor  # (nnz,) int32
    gather: Tensor  # (nnz,) position in the flattened edge-last off-diagonal blocks
    first_use: Tensor  # (numel of blocks,) CSR position of the forward-edge copy of each block entry
    second_use: Tensor  # (numel of blocks,) CSR position of the reverse-edge copy
    num_rows: int


@dataclass(frozen=True, eq=False)
class SheafIndex:
    r"""Edge bookkeeping of an undirected graph, built once by :func:`build_index`.

    Directed edges are stored *undirected-major*: the first :math:`E` columns of :attr:`edge_index` are the
    undirected edges :math:`e = (u, v)` with :math:`u < v`, sorted by :math:`(u, v)`, and column
    :math:`E + e` is their reverse :math:`(v, u)`. So undirected edge :math:`e` has the directed copies
    :math:`e` and :math:`E + e`, and :attr:`reverse` maps every directed edge to its reverse. Restriction
    maps and edge weights "per directed edge" are in this order: row :math:`k` of the maps is
    :math:`\mathcal{F}_{s \trianglelefteq e}` for :math:`(s, t) =` ``edge_index[:, k]``.

    Attributes:
        edge_index: ``(2, 2E)`` directed edges in the order above.
        num_nodes: number of nodes :math:`N` (isolated nodes allowed).
        degree: ``(N,)`` number of neighbours of every node.
        perm: ``(2E,)`` position of every directed edge in the ``edge_index`` given to :func:`build_index`,
            to reorder per-edge inputs: ``edge_attr[index.perm]``.
    """

    edge_index: Tensor
    num_nodes: int
    degree: Tensor
    perm: Tensor
    _cache: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def num_edges(self) -> int:
        """Number :math:`E` of undirected edges."""
        return self.edge_index.size(1) // 2

    @property
    def num_directed_edges(self) -> int:
        """Number :math:`2E` of directed edges."""
        return self.edge_index.size(1)

    @property
    def src(self) -> Tensor:
        """``(2E,)`` source node of every directed edge."""
        return self.edge_index[0]

    @property
    def dst(self) -> Tensor:
        """``(2E,)`` target node of every directed edge."""
        return self.edge_index[1]

    @property
    def reverse(self) -> Tensor:
        """``(2E,)`` index of the reverse of every directed edge (``k -> k + E mod 2E``)."""
        n = self.num_edges
        ar = torch.arange(n, device=self.edge_index.device)
        return torch.cat([ar + n, ar])

    @property
    def device(self) -> torch.device:
        return self.edge_index.device

    def degree_as(self, dtype: torch.dtype) -> Tensor:
        """The degrees as a floating tensor of ``dtype`` (cached)."""
        key = ("degree", dtype)
        if key not in self._cache:
            self._cache[key] = self.degree.to(dtype)
        return self._cache[key]

    def csr_pattern(self, d: int, block: bool) -> CSRPattern:
        """The CSR pattern of the off-diagonal part for stalk size ``d`` (cached per ``(d, block)``)."""
        key = ("csr", d, block)
        if key not in self._cache:
            self._cache[key] = _build_csr_pattern(self, d, block)
        return self._cache[key]

    def normalised_adjacency(self, dtype: torch.dtype, normalised: bool) -> tuple[Tensor, Tensor]:
        r"""CSR values and diagonal of the fixed (graph) part used by ``add_lp`` / ``add_hp`` (cached).

        Returns the values of :math:`S A S` in the ``d=1`` CSR pattern and the diagonal :math:`S^2 \deg`, with
        :math:`S = (\deg+1)^{-1/2}` if ``normalised`` else :math:`S = 1`.
        """
        key = ("fixed", dtype, normalised)
        if key not in self._cache:
            deg = self.degree_as(dtype)
            pattern = self.csr_pattern(1, block=False)
            if normalised:
                s = (deg + 1.0).rsqrt()
                und = s[self.src[: self.num_edges]] * s[self.dst[: self.num_edges]]
                diag = deg / (deg + 1.0)
            else:
                und = torch.ones(self.num_edges, dtype=dtype, device=self.device)
                diag = deg
            self._cache[key] = (und[pattern.gather], diag)
        return self._cache[key]


def build_index(edge_index: Tensor, num_nodes: int | None = None) -> SheafIndex:
    r"""Validate an undirected ``edge_index`` and build its :class:`SheafIndex` (vectorised, once per graph).

    Args:
        edge_index: ``(2, 2E)`` integer tensor with both directions of every edge, no self-loops and no
            duplicates (PyG's convention for undirected graphs; order is free).
        num_nodes: number of nodes; defaults to ``edge_index.max() + 1``.

    Raises:
        ValueError: if the shape or dtype is wrong, a node id is out of range, there are self-loops or
            duplicate edges, or an edge misses its reverse; the message says how to fix the input.
    """
    if not isinstance(edge_index, Tensor):
        raise ValueError(
            f"edge_index must be a torch.Tensor of shape (2, E), got {type(edge_index).__name__}"
        )
    if edge_index.dim() != 2 or edge_index.size(0) != 2:
        raise ValueError(
            f"edge_index must have shape (2, E), got {tuple(edge_index.shape)}; transpose an (E, 2) edge "
            "list with edge_list.t()"
        )
    if edge_index.is_floating_point() or edge_index.is_complex() or edge_index.dtype == torch.bool:
        raise ValueError(f"edge_index must hold integer node ids, got dtype {edge_index.dtype}; use .long()")
    ei = edge_index.long()
    num_edges_dir = ei.size(1)
    if num_nodes is None:
        num_nodes = int(ei.max()) + 1 if num_edges_dir > 0 else 0
    num_nodes = int(num_nodes)
    if num_edges_dir > 0:
        lo, hi = int(ei.min()), int(ei.max())
        if lo < 0 or hi >= num_nodes:
            raise ValueError(
                f"edge_index has node ids in [{lo}, {hi}] but num_nodes={num_nodes}: ids must lie in "
                f"[0, num_nodes)"
            )
    src, dst = ei[0], ei[1]
    loops = src == dst
    if bool(loops.any()):
        k = int(loops.nonzero()[0, 0])
        raise ValueError(
            f"edge_index has {int(loops.sum())} self-loop(s), e.g. ({int(src[k])}, {int(dst[k])}); sheaf "
            "Laplacians are defined on simple graphs: drop them with "
            "torch_geometric.utils.remove_self_loops(edge_index)"
        )
    key = src * num_nodes + dst
    sorted_key, order = torch.sort(key)
    dup = sorted_key[1:] == sorted_key[:-1]
    if bool(dup.any()):
        k = int(sorted_key[1:][dup][0])
        raise ValueError(
            f"edge_index has {int(dup.sum())} duplicate edge(s), e.g. ({k // num_nodes}, {k % num_nodes}); "
            "remove them with torch_geometric.utils.coalesce(edge_index)"
        )
    fwd = order[src[order] < dst[order]]  # forward edges, sorted by (u, v)
    rkey = dst[fwd] * num_nodes + src[fwd]
    pos = torch.searchsorted(sorted_key, rkey).clamp_max(max(num_edges_dir - 1, 0))
    found = sorted_key[pos] == rkey if num_edges_dir > 0 else torch.zeros(0, dtype=torch.bool)
    if not bool(found.all()) or 2 * fwd.numel() != num_edges_dir:
        if not bool(found.all()):
            k = int((~found).nonzero()[0, 0])
            example = (
                f"({int(src[fwd[k]])}, {int(dst[fwd[k]])}) has no ({int(dst[fwd[k]])}, {int(src[fwd[k]])})"
            )
        else:
            bwd_only = src > dst
            k = int(bwd_only.nonzero()[0, 0])
            example = f"({int(src[k])}, {int(dst[k])}) has no ({int(dst[k])}, {int(src[k])})"
        raise ValueError(
            f"edge_index is not undirected: edge {example}. Sheaf Laplacians need both directions of every "
            "edge: use torch_geometric.utils.to_undirected(edge_index)"
        )
    perm = torch.cat([fwd, order[pos]])
    return SheafIndex(
        edge_index=ei[:, perm].contiguous(),
        num_nodes=num_nodes,
        degree=torch.bincount(src, minlength=num_nodes),
        perm=perm,
    )


class GraphIndexCache:
    """A small LRU cache of an index built from an ``edge_index`` tensor, keyed by the tensor's memory and shape.

    The key is ``(data_ptr, shape, stride, device, num_nodes)``; an entry keeps a reference to its tensor (so
    the memory cannot be reused by another tensor) and is invalidated when the tensor is modified in place
    (its version counter changes). Indices are therefore built once per graph, however often a layer is
    called on it. Copies and pickles of a model start with an empty cache. Subclasses set :meth:`build`.
    """

    def __init__(self, maxsize: int = 4) -> None:
        self.maxsize = maxsize
        self._entries: OrderedDict[tuple, tuple[Tensor, int, Any]] = OrderedDict()

    def build(self, edge_index: Tensor, num_nodes: int) -> Any:
        raise NotImplementedError

    def cached(self, edge_index: Tensor, num_nodes: int) -> Any:
        """The index of ``edge_index`` (built on a miss)."""
        key = (
            edge_index.data_ptr(),
            tuple(edge_index.shape),
            tuple(edge_index.stride()),
            str(edge_index.device),
            int(num_nodes),
        )
        hit = self._entries.get(key)
        if hit is not None and hit[1] == edge_index._version:
            self._entries.move_to_end(key)
            return hit[2]
        index = self.build(edge_index, num_nodes)
        self._entries[key] = (edge_index, edge_index._version, index)
        while len(self._entries) > self.maxsize:
            self._entries.popitem(last=False)
        return index

    def clear(self) -> None:
        self._entries.clear()

    def __deepcopy__(self, memo: dict) -> GraphIndexCache:  # copies of a model start with an empty cache
        return type(self)(self.maxsize)

    def __getstate__(self) -> dict:  # pickled models do not carry graphs
        return {"maxsize": self.maxsize}

    def __setstate__(self, state: dict) -> None:
        self.maxsize = state["maxsize"]
        self._entries = OrderedDict()


class SheafIndexCache(GraphIndexCache):
    """:class:`GraphIndexCache` of :class:`SheafIndex`; a :class:`SheafIndex` passed in is returned as is."""

    def build(self, edge_index: Tensor, num_nodes: int) -> SheafIndex:
        return build_index(edge_index, num_nodes)

    def __call__(self, edge_index: Tensor | SheafIndex, num_nodes: int) -> SheafIndex:
        if isinstance(edge_index, SheafIndex):
            if edge_index.num_nodes != num_nodes:
                raise ValueError(
                    f"the SheafIndex was built for {edge_index.num_nodes} nodes but x has {num_nodes} rows"
                )
            return edge_index
        if not isinstance(edge_index, Tensor):
            raise ValueError(f"edge_index must be a Tensor or a SheafIndex, got {type(edge_index).__name__}")
        return self.cached(edge_index, num_nodes)


def _build_csr_pattern(index: SheafIndex, d: int, block: bool) -> CSRPattern:
    """Vectorised construction of the off-diagonal CSR pattern and of the gathers that fill it."""
    n, e = index.num_nodes, index.num_edges
    dev = index.device
    src, dst = index.src, index.dst
    order = torch.argsort(src * max(n, 1) + dst)  # directed edges in CSR order (source, target)
    t_o = dst[order]
    und = torch.where(order < e, order, order - e)  # undirected id of each directed edge in CSR order
    is_fwd = order < e
    deg = index.degree
    ar_d = torch.arange(d, device=dev)
    row_len = (deg * (d if block else 1)).repeat(d)  # rows i*N + v
    crow = torch.zeros(d * n + 1, dtype=torch.long, device=dev)
    crow[1:] = torch.cumsum(row_len, 0)
    if block:
        # entries (i, edge, j): row i*N + s, column t*d + j; blocks stored edge-last (d, d, E) -> flat
        # i*d*E + j*E + und for a forward edge, the transpose j*d*E + i*E + und for a reverse edge.
        i_ = ar_d.view(d, 1, 1)
        j_ = ar_d.view(1, 1, d)
        col = (t_o.view(1, -1, 1) * d + j_).expand(d, -1, d)
        fwd_pos = i_ * d * e + j_ * e + und.view(1, -1, 1)
        bwd_pos = j_ * d * e + i_ * e + und.view(1, -1, 1)
        gather = torch.where(is_fwd.view(1, -1, 1), fwd_pos, bwd_pos)
        fwd_mask = is_fwd.view(1, -1, 1).expand(d, -1, d)
        numel = d * d * e
    else:
        col = t_o.view(1, -1) * d + ar_d.view(d, 1)
        gather = ar_d.view(d, 1) * e + und.view(1, -1)
        fwd_mask = is_fwd.view(1, -1).expand(d, -1)
        numel = d * e
    col = col.reshape(-1).to(torch.int32)  # MKL's index type: no conversion per product
    crow = crow.to(torch.int32)
    gather = gather.reshape(-1)
    fwd_mask = fwd_mask.reshape(-1)
    positions = torch.arange(gather.numel(), device=dev)
    first_use = torch.empty(numel, dtype=torch.long, device=dev)
    second_use = torch.empty(numel, dtype=torch.long, device=dev)
    first_use[gather[fwd_mask]] = positions[fwd_mask]
    second_use[gather[~fwd_mask]] = positions[~fwd_mask]
    return CSRPattern(crow, col, gather, first_use, second_use, d * n)
