r"""Graph encoders: a row's token from its *neighbours'* content, on per-row ego graphs.

The graph token of row :math:`v` must carry what :math:`v` itself lacks, so it summarises the content
(text and tabular tokens, each neighbour with its own masking) of the rows around :math:`v` and never
:math:`v`'s own features. For a batch of centre rows :func:`ego_graphs` builds one copy of the
``num_hops``-hop neighbourhood of every centre (gathered from an in-neighbour CSR built once per graph,
:class:`NeighbourIndex`: the cost is that of the neighbourhoods, never of all :math:`N` rows):

* its nodes are the centre and every row within ``num_hops`` incoming hops, each once;
* its edges are all edges :math:`w \to u` of the graph with :math:`u` within ``num_hops - 1`` hops (the
  edges a ``num_hops``-layer message-passing network uses to reach the centre);
* the **centre's own content is replaced** by a zero vector (``"sage"``, ``"gcn"``) or by a learned
  constant state shared by all rows (``"sheaf-*"``), in its own ego graph only. Messages that come back to the
  centre through a 2-hop path therefore carry no trace of its features either.

Because every centre gets its own copy, a row's graph token does not depend on the other rows of the batch
(a batch of ``[v, u]`` gives ``v`` the same token as ``[v]``), and two centres that are neighbours still see
each other's content. The encoders (:data:`GRAPH_ENCODERS`) run on the union of the ego graphs and read the
centres out.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.nn import GCNConv, SAGEConv
from torch_geometric.utils import coalesce, remove_self_loops, to_undirected

from mmsheaf.sheaf.conv import SheafDiffusionConv
from mmsheaf.sheaf.index import GraphIndexCache, build_index
from mmsheaf.sheaf.maps import validate_sheaf

__all__ = [
    "GRAPH_ENCODERS",
    "EgoGraphs",
    "GCNEgoEncoder",
    "NeighbourIndex",
    "NeighbourIndexCache",
    "SAGEEgoEncoder",
    "SheafEgoEncoder",
    "build_graph_encoder",
    "ego_graphs",
]


# ----------------------------------------------------------------------------------------------------------
# Neighbourhoods
# ----------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class NeighbourIndex:
    r"""In-neighbour CSR of a graph: the sources :math:`w` of the edges :math:`w \to v` of node :math:`v` are
    ``col[rowptr[v]:rowptr[v + 1]]`` (sorted; self-loops and duplicate edges dropped).

    Attributes:
        rowptr: :math:`(N + 1,)` long.
        col: :math:`(E,)` long.
        degree: :math:`(N,)` long in-degree.
        num_nodes: :math:`N`.
    """

    rowptr: Tensor
    col: Tensor
    degree: Tensor
    num_nodes: int

    @classmethod
    def build(cls, edge_index: Tensor, num_nodes: int) -> NeighbourIndex:
        """The CSR of ``edge_index`` (messages ``edge_index[0] -> edge_index[1]``) over ``num_nodes`` nodes."""
        ei, _ = remove_self_loops(edge_index.long())
        ei = coalesce(ei, num_nodes=num_nodes, sort_by_row=False)  # sorted by target, then source
        degree = torch.bincount(ei[1], minlength=num_nodes)
        rowptr = torch.zeros(num_nodes + 1, dtype=torch.long, device=ei.device)
        rowptr[1:] = torch.cumsum(degree, 0)
        return cls(rowptr=rowptr, col=ei[0].contiguous(), degree=degree, num_nodes=num_nodes)

    def neighbours(
        self, nodes: Tensor, max_neighbours: int | None = None, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor]:
        """``(position, neighbour)``: the in-neighbours of every entry of ``nodes`` with the entry's position;
        with ``max_neighbours``, at most that many per entry, drawn uniformly without replacement."""
        deg = self.degree[nodes]
        position = torch.repeat_interleave(torch.arange(nodes.numel(), device=nodes.device), deg)
        first = torch.cumsum(deg, 0) - deg
        offset = torch.arange(position.numel(), device=nodes.device) - first[position]
        neighbour = self.col[self.rowptr[nodes][position] + offset]
        if max_neighbours is None or position.numel() == 0 or int(deg.max()) <= max_neighbours:
            return position, neighbour
        noise = torch.rand(position.numel(), generator=generator, device=nodes.device, dtype=torch.float64)
        order = torch.argsort(position.double() + noise)  # random order within each entry's neighbours
        position, neighbour = position[order], neighbour[order]
        keep = torch.arange(position.numel(), device=nodes.device) - first[position] < max_neighbours
        return position[keep], neighbour[keep]


class NeighbourIndexCache(GraphIndexCache):
    """A small LRU cache of :class:`NeighbourIndex` keyed by an ``edge_index`` tensor's memory, shape and
    version (:class:`~mmsheaf.sheaf.index.GraphIndexCache`): the CSR is built once per graph."""

    def build(self, edge_index: Tensor, num_nodes: int) -> NeighbourIndex:
        return NeighbourIndex.build(edge_index, num_nodes)

    def __call__(self, edge_index: Tensor, num_nodes: int) -> NeighbourIndex:
        return self.cached(edge_index, num_nodes)


@dataclass(frozen=True, eq=False)
class EgoGraphs:
    r"""The disjoint union of one ego graph per centre (see the module docstring).

    Attributes:
        node: :math:`(M,)` row of every node copy.
        owner: :math:`(M,)` position (in ``centres``) of the centre whose ego graph holds the copy.
        is_centre: :math:`(M,)` bool, ``True`` for the centres' own copies.
        centre: :math:`(B,)` copy id of every centre.
        edge_index: :math:`(2, E_{ego})` directed edges between copies, messages towards the centre.
        degree: :math:`(M,)` in-degree of every copy's row in the *whole* graph (for GCN normalisation).
    """

    node: Tensor
    owner: Tensor
    is_centre: Tensor
    centre: Tensor
    edge_index: Tensor
    degree: Tensor

    @property
    def num_nodes(self) -> int:
        return int(self.node.numel())

    @property
    def num_centres(self) -> int:
        return int(self.centre.numel())


def ego_graphs(
    index: NeighbourIndex,
    centres: Tensor,
    num_hops: int = 1,
    max_neighbours: int | None = None,
    generator: torch.Generator | None = None,
) -> EgoGraphs:
    r"""One ``num_hops``-hop in-neighbourhood copy per entry of ``centres`` (duplicates get their own copies).

    With ``max_neighbours``, every expanded node keeps at most that many of its in-neighbours, drawn at random
    (GraphSAGE's neighbour sampling, `Hamilton et al., 2017 <https://arxiv.org/abs/1706.02216>`_).

    **Shapes:** ``centres`` :math:`(B,)` long; the :class:`EgoGraphs` have :math:`M \le B (1 + \bar d +
    \dots + \bar d^{\,h})` node copies.
    """
    if num_hops < 1:
        raise ValueError(f"num_hops must be >= 1, got {num_hops}.")
    if max_neighbours is not None and max_neighbours < 1:
        raise ValueError(f"max_neighbours must be None (all) or >= 1, got {max_neighbours}.")
    n = index.num_nodes
    device = centres.device
    owner = torch.arange(centres.numel(), device=device)
    centre_keys = owner * n + centres
    seen = centre_keys
    frontier_owner, frontier_node = owner, centres
    src_keys, dst_keys = [], []
    for hop in range(num_hops):
        pos, nbr = index.neighbours(frontier_node, max_neighbours, generator)
        o = frontier_owner[pos]
        src, dst = o * n + nbr, o * n + frontier_node[pos]
        src_keys.append(src)
        dst_keys.append(dst)
        if hop + 1 < num_hops:
            new = torch.unique(src[~torch.isin(src, seen)])
            seen = torch.cat([seen, new])
            frontier_owner, frontier_node = new // n, new % n
    keys = torch.unique(torch.cat([centre_keys, *src_keys]))  # sorted (owner, node)
    src, dst = torch.cat(src_keys), torch.cat(dst_keys)
    edge_index = torch.stack([torch.searchsorted(keys, src), torch.searchsorted(keys, dst)])
    centre = torch.searchsorted(keys, centre_keys)
    is_centre = torch.zeros(keys.numel(), dtype=torch.bool, device=device)
    is_centre[centre] = True
    node = keys % n
    return EgoGraphs(
        node=node,
        owner=keys // n,
        is_centre=is_centre,
        centre=centre,
        edge_index=edge_index,
        degree=index.degree[node],
    )


# ----------------------------------------------------------------------------------------------------------
# Encoders
# ----------------------------------------------------------------------------------------------------------


class EgoGraphEncoder(nn.Module):
    """Base class: ``forward(x, ego)`` with ``x`` the :math:`(M, F_{in})` content of every node copy (the
    centres' rows ignored) returns the :math:`(B, F_{out})` tokens of the centres. Subclasses keep their
    layers in ``self.convs`` (:meth:`_conv_stack` builds the usual stack), which :meth:`reset_parameters`
    resets."""

    def __init__(
        self, in_channels: int, out_channels: int, num_layers: int = 1, dropout: float = 0.0
    ) -> None:
        super().__init__()
        if min(in_channels, out_channels, num_layers) < 1:
            raise ValueError(f"need positive sizes, got {in_channels=}, {out_channels=}, {num_layers=}.")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.num_layers, self.dropout = num_layers, dropout

    def _conv_stack(self, make: Callable[[int, int], nn.Module]) -> nn.ModuleList:
        """``num_layers`` convolutions ``make(in, out)``: the first from ``in_channels``, all to ``out_channels``."""
        sizes = [self.in_channels] + [self.out_channels] * self.num_layers
        return nn.ModuleList(make(sizes[i], sizes[i + 1]) for i in range(self.num_layers))

    def reset_parameters(self) -> None:
        for conv in self.convs:
            conv.reset_parameters()

    def _neutral_centres(self, x: Tensor, ego: EgoGraphs, centre_state: Tensor | None = None) -> Tensor:
        fill = x.new_zeros(()) if centre_state is None else centre_state.unsqueeze(0)
        return torch.where(ego.is_centre.unsqueeze(1), fill, x)

    def extra_repr(self) -> str:
        return f"{self.in_channels}, {self.out_channels}, num_layers={self.num_layers}"


class SAGEEgoEncoder(EgoGraphEncoder):
    r"""GraphSAGE (`Hamilton et al., NeurIPS 2017 <https://arxiv.org/abs/1706.02216>`_) with mean
    aggregation, PyG's :class:`~torch_geometric.nn.conv.SAGEConv`, on ego graphs whose centre content is zero:

    .. math::
        \mathbf{h}_v^{(\ell+1)} = \mathbf{W}_1^{(\ell)} \frac{1}{|\mathcal{N}(v)|}
        \sum_{u \in \mathcal{N}(v)} \mathbf{h}_u^{(\ell)} \;\big[+\; \mathbf{W}_2^{(\ell)}
        \mathbf{h}_v^{(\ell)}\big],
        \qquad \mathbf{h}^{(0)}_u = \mathbf{x}_u \;(u \ne v),\; \mathbf{h}^{(0)}_v = \mathbf{0},

    with GELU and dropout between layers. With one layer the root term is left out, so the token is a linear
    map of the **mean of the neighbours' content**; with more layers every layer has it (the centre's state is
    then built from its neighbourhood only). The last layer only computes the centres (bipartite
    ``SAGEConv``).

    Args:
        in_channels: Content size :math:`F_{in}`; out_channels: token size; num_layers: hops; dropout.

    **Shapes:** ``x`` :math:`(M, F_{in})`, :class:`EgoGraphs` with :math:`B` centres -> :math:`(B, F_{out})`.
    """

    def __init__(
        self, in_channels: int, out_channels: int, num_layers: int = 1, dropout: float = 0.0
    ) -> None:
        super().__init__(in_channels, out_channels, num_layers, dropout)
        self.convs = self._conv_stack(lambda i, o: SAGEConv(i, o, aggr="mean", root_weight=num_layers > 1))
        self.reset_parameters()

    def forward(self, x: Tensor, ego: EgoGraphs) -> Tensor:
        h = self._neutral_centres(x, ego)
        for conv in self.convs[:-1]:
            h = F.dropout(F.gelu(conv(h, ego.edge_index)), p=self.dropout, training=self.training)
        last = ego.is_centre[ego.edge_index[1]]  # edges into the centres
        src = ego.edge_index[0, last]
        dst = ego.owner[ego.edge_index[1, last]]  # centre position
        return self.convs[-1]((h, h[ego.centre]), torch.stack([src, dst]), size=(h.size(0), ego.num_centres))


class GCNEgoEncoder(EgoGraphEncoder):
    r"""Graph convolution (`Kipf & Welling, ICLR 2017 <https://arxiv.org/abs/1609.02907>`_), PyG's
    :class:`~torch_geometric.nn.conv.GCNConv`, on ego graphs whose centre content is zero:

    .. math::
        \mathbf{h}_v^{(\ell+1)} = \mathbf{W}^{(\ell)} \sum_{u \in \mathcal{N}(v) \cup \{v\}}
        \frac{\mathbf{h}_u^{(\ell)}}{\sqrt{(\deg u + 1)(\deg v + 1)}} + \mathbf{b}^{(\ell)},

    with the degrees of the **whole** graph (so a row's token does not depend on which ego graph holds it),
    :math:`\mathbf{h}^{(0)}_v = \mathbf{0}` for the centre, GELU and dropout between layers.

    Args:
        in_channels: Content size :math:`F_{in}`; out_channels: token size; num_layers: hops; dropout.

    **Shapes:** ``x`` :math:`(M, F_{in})`, :class:`EgoGraphs` with :math:`B` centres -> :math:`(B, F_{out})`.
    """

    def __init__(
        self, in_channels: int, out_channels: int, num_layers: int = 1, dropout: float = 0.0
    ) -> None:
        super().__init__(in_channels, out_channels, num_layers, dropout)
        self.convs = self._conv_stack(lambda i, o: GCNConv(i, o, add_self_loops=False, normalize=False))
        self.reset_parameters()

    def forward(self, x: Tensor, ego: EgoGraphs) -> Tensor:
        h = self._neutral_centres(x, ego)
        inv = (ego.degree.to(h.dtype) + 1.0).rsqrt()
        loops = torch.arange(ego.num_nodes, device=h.device)
        edge_index = torch.cat([ego.edge_index, torch.stack([loops, loops])], dim=1)
        weight = inv[edge_index[0]] * inv[edge_index[1]]
        for i, conv in enumerate(self.convs):
            h = conv(h, edge_index, weight)
            if i + 1 < self.num_layers:
                h = F.dropout(F.gelu(h), p=self.dropout, training=self.training)
        return h[ego.centre]


class SheafEgoEncoder(EgoGraphEncoder):
    r"""Neural Sheaf Diffusion (`Bodnar et al., NeurIPS 2022 <https://arxiv.org/abs/2202.04579>`_) on ego
    graphs, with this project's :class:`~mmsheaf.sheaf.conv.SheafDiffusionConv`:

    .. math::
        \mathbf{X}^{(0)}_u = \operatorname{dropout}(\operatorname{ELU}(\mathbf{W}_{in} \mathbf{x}_u)) \;
        (u \ne v), \qquad \mathbf{X}^{(0)}_v = \mathbf{s},\qquad
        \mathbf{X}^{(\ell+1)} = \operatorname{SheafDiffusionConv}(\mathbf{X}^{(\ell)}),\qquad
        \mathbf{t}_v = \mathbf{W}_{out}\, \mathbf{X}^{(L)}_v,

    where :math:`\mathbf{X}_u \in \mathbb{R}^{d \times C}` (:math:`C` = ``out_channels // d``) and the centre
    :math:`v` starts from a learned state :math:`\mathbf{s}` shared by all rows (neutral: it holds nothing of
    :math:`v`). The ego graph is made undirected (the sheaf Laplacian is symmetric) and its sheaf Laplacian
    (restriction maps learned from the states of each edge's ends, degrees of the ego graph) diffuses the
    neighbours' content into the centre's stalk.

    Args:
        in_channels: Content size :math:`F_{in}`; out_channels: token size (divisible by ``d``).
        num_layers: diffusion steps; dropout: on the lifted content and inside each step.
        sheaf: ``"diag"``, ``"orth"`` or ``"gen"`` restriction maps; d: stalk dimension.

    **Shapes:** ``x`` :math:`(M, F_{in})`, :class:`EgoGraphs` with :math:`B` centres -> :math:`(B, F_{out})`.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        num_layers: int = 1,
        dropout: float = 0.0,
        sheaf: str = "diag",
        d: int = 2,
    ) -> None:
        super().__init__(in_channels, out_channels, num_layers, dropout)
        validate_sheaf(sheaf, d)
        if out_channels % d != 0:
            raise ValueError(
                f"token_dim ({out_channels}) must be divisible by the stalk dimension sheaf_d ({d})."
            )
        self.sheaf, self.d, self.channels = sheaf, d, out_channels // d
        width = d * self.channels
        self.lift = nn.Linear(in_channels, width)
        self.centre_state = nn.Parameter(torch.empty(width))
        self.convs = nn.ModuleList(
            SheafDiffusionConv(self.channels, d, sheaf, dropout=dropout) for _ in range(num_layers)
        )
        self.readout = nn.Linear(width, out_channels)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        self.lift.reset_parameters()
        nn.init.normal_(self.centre_state, std=0.1)
        super().reset_parameters()
        self.readout.reset_parameters()

    def forward(self, x: Tensor, ego: EgoGraphs) -> Tensor:
        h = F.dropout(F.elu(self.lift(x)), p=self.dropout, training=self.training)
        h = self._neutral_centres(h, ego, self.centre_state)
        index = build_index(to_undirected(ego.edge_index, num_nodes=ego.num_nodes), ego.num_nodes)
        for conv in self.convs:
            h = conv(h, index)
        return self.readout(h[ego.centre])

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, sheaf={self.sheaf!r}, d={self.d}"


def _sheaf(kind: str) -> Callable[..., EgoGraphEncoder]:
    def make(
        in_channels: int, out_channels: int, num_layers: int = 1, dropout: float = 0.0, d: int = 2
    ) -> EgoGraphEncoder:
        return SheafEgoEncoder(in_channels, out_channels, num_layers, dropout, sheaf=kind, d=d)

    return make


def _plain(cls: type[EgoGraphEncoder]) -> Callable[..., EgoGraphEncoder]:
    def make(
        in_channels: int, out_channels: int, num_layers: int = 1, dropout: float = 0.0, d: int = 2
    ) -> EgoGraphEncoder:
        return cls(in_channels, out_channels, num_layers, dropout)

    return make


GRAPH_ENCODERS: dict[str, Callable[..., EgoGraphEncoder]] = {
    "sage": _plain(SAGEEgoEncoder),
    "gcn": _plain(GCNEgoEncoder),
    "sheaf-diag": _sheaf("diag"),
    "sheaf-orth": _sheaf("orth"),
    "sheaf-gen": _sheaf("gen"),
}
"""Graph encoders by name: ``make(in_channels, out_channels, num_layers, dropout, d)`` (``d``: sheaf stalks)."""

SHEAF_GRAPH_ENCODERS: dict[str, str] = {"sheaf-diag": "diag", "sheaf-orth": "orth", "sheaf-gen": "gen"}
"""The sheaf options of :data:`GRAPH_ENCODERS` and their restriction-map families."""


def build_graph_encoder(
    name: str, in_channels: int, out_channels: int, num_layers: int = 1, dropout: float = 0.0, d: int = 2
) -> EgoGraphEncoder:
    """The graph encoder ``name`` of :data:`GRAPH_ENCODERS`; ``ValueError`` for an unknown name."""
    if name not in GRAPH_ENCODERS:
        raise ValueError(f"Unknown graph encoder {name!r}: choose one of {tuple(GRAPH_ENCODERS)}.")
    return GRAPH_ENCODERS[name](in_channels, out_channels, num_layers, dropout, d)
