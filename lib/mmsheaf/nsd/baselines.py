r"""Baseline node classifiers of the Neural Sheaf Diffusion table: MLP, GCN, GAT, GraphSAGE, GCNII, GPRGNN.

Every model has the same interface, so the registry (:mod:`mmsheaf.nsd.registry`) and the training loop
(:mod:`mmsheaf.nsd.train`) treat them alike:

.. code-block:: python

    model = GCN(in_channels=F, out_channels=C, config=GCNConfig(hidden_channels=64, layers=2))
    logits = model(x, edge_index)          # raw logits (N, C); apply softmax / cross-entropy outside
    model.reset_parameters()               # fresh initialisation from the global torch RNG

Each model is configured by a frozen dataclass of :mod:`mmsheaf.nsd.baseline_configs` (validated on
construction, ``ValueError`` on bad values) that shares ``hidden_channels``, ``layers``, ``dropout`` and
``input_dropout`` and adds the model's own knobs.
Every model works for any depth ``layers >= 1`` (depth sweeps go to 32 layers). Message passing uses PyG's
layers (:class:`~torch_geometric.nn.conv.GCNConv`, :class:`~torch_geometric.nn.conv.GATConv`,
:class:`~torch_geometric.nn.conv.SAGEConv`, :class:`~torch_geometric.nn.conv.GCN2Conv`) on plain
``edge_index`` tensors; GPRGNN, which PyG does not ship, is a small
:class:`~torch_geometric.nn.conv.MessagePassing` over PyG's
:func:`~torch_geometric.nn.conv.gcn_conv.gcn_norm`.
Nothing needs ``torch-sparse`` or ``pyg-lib``.
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import pairwise

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.nn import GATConv, GCN2Conv, GCNConv, MessagePassing, SAGEConv
from torch_geometric.nn.conv.gcn_conv import gcn_norm

from ..sheaf.operators import OperatorCache, csr_adjacency, gcn_adjacency, gcn_adjacency_with_loops
from .baseline_configs import (
    GPR_INITS,
    BaselineConfig,
    GATConfig,
    GCNConfig,
    GCNIIConfig,
    GPRGNNConfig,
    MLPConfig,
    SAGEConfig,
)

__all__ = ["GAT", "GCN", "GCNII", "GPRGNN", "MLP", "GPRProp", "GraphSAGE"]


def _widths(in_channels: int, hidden: int, out_channels: int, layers: int) -> list[tuple[int, int]]:
    """``(in, out)`` of each of ``layers`` stacked layers: ``in -> hidden -> ... -> hidden -> out``."""
    dims = [in_channels] + [hidden] * (layers - 1) + [out_channels]
    return list(pairwise(dims))


class _LayerStack(nn.Module):
    """Shared forward of the stacked baselines (MLP, GCN, GAT, GraphSAGE): dropout on the input, then the
    layers in ``self.convs`` with ``activation`` and dropout between them and nothing after the last."""

    activation: Callable[[Tensor], Tensor] = staticmethod(F.relu)
    uses_graph: bool = True
    config_cls: type[BaselineConfig] = BaselineConfig

    def __init__(self, in_channels: int, out_channels: int, config: BaselineConfig | None = None) -> None:
        super().__init__()
        self.config = config if config is not None else self.config_cls()
        widths = _widths(in_channels, self.config.hidden_channels, out_channels, self.config.layers)
        self.convs = nn.ModuleList(self.layer(k, i, o) for k, (i, o) in enumerate(widths))
        self._operator = OperatorCache()

    def layer(self, k: int, in_channels: int, out_channels: int) -> nn.Module:
        """Layer ``k`` (from 0) of the stack, from ``in_channels`` to ``out_channels`` features."""
        raise NotImplementedError(f"{type(self).__name__} must define layer()")

    def operator(self, edge_index: Tensor, num_nodes: int, dtype: torch.dtype = torch.float32) -> Tensor:
        """What the layers are called with: ``edge_index`` itself unless a subclass builds a sparse operator."""
        return edge_index

    def reset_parameters(self) -> None:
        for conv in self.convs:
            conv.reset_parameters()

    def forward(self, x: Tensor, edge_index: Tensor | None = None) -> Tensor:
        graph = self.operator(edge_index, x.size(0), x.dtype) if self.uses_graph else None
        x = F.dropout(x, self.config.input_dropout, self.training)
        for i, conv in enumerate(self.convs):
            if i > 0:
                x = F.dropout(self.activation(x), self.config.dropout, self.training)
            x = conv(x, graph) if self.uses_graph else conv(x)
        return x


class MLP(_LayerStack):
    r"""A multilayer perceptron that ignores the graph (the structure-free baseline).

    .. math::
        \mathbf{H}^{(\ell)} = \mathrm{ReLU}\big(\mathbf{H}^{(\ell-1)} \mathbf{W}^{(\ell)}
        + \mathbf{b}^{(\ell)}\big),
        \qquad \text{logits} = \mathbf{H}^{(L-1)} \mathbf{W}^{(L)} + \mathbf{b}^{(L)}

    with dropout on the input (``input_dropout``) and on every hidden representation (``dropout``).

    Args:
        in_channels: Input features :math:`F`.
        out_channels: Classes :math:`C`.
        config: :class:`~mmsheaf.nsd.baseline_configs.MLPConfig`.

    Shapes:
        - **input:** node features :math:`(N, F)`, edge indices :math:`(2, |E|)` (unused)
        - **output:** logits :math:`(N, C)`
    """

    uses_graph = False

    config_cls = MLPConfig

    def layer(self, k: int, in_channels: int, out_channels: int) -> nn.Module:
        return nn.Linear(in_channels, out_channels)  # named like the graph models' layers for the shared forward



class GCN(_LayerStack):
    r"""Graph convolutional network from `"Semi-supervised Classification with Graph Convolutional Networks"
    <https://arxiv.org/abs/1609.02907>`_ (Kipf & Welling, ICLR 2017), with PyG's
    :class:`~torch_geometric.nn.conv.GCNConv`.

    .. math::
        \mathbf{H}^{(\ell)} = \sigma\big(\hat{\mathbf{D}}^{-1/2} \hat{\mathbf{A}} \hat{\mathbf{D}}^{-1/2}
        \mathbf{H}^{(\ell-1)} \mathbf{W}^{(\ell)}\big), \qquad \hat{\mathbf{A}} = \mathbf{A} + \mathbf{I}

    with :math:`\sigma = \mathrm{ReLU}` between layers and none after the last (logits).

    Args:
        in_channels: Input features :math:`F`.
        out_channels: Classes :math:`C`.
        config: :class:`~mmsheaf.nsd.baseline_configs.GCNConfig` (``layers`` graph convolutions).

    Shapes:
        - **input:** node features :math:`(N, F)`, edge indices :math:`(2, |E|)`
        - **output:** logits :math:`(N, C)`
    """

    config_cls = GCNConfig

    def layer(self, k: int, in_channels: int, out_channels: int) -> nn.Module:
        return GCNConv(in_channels, out_channels, normalize=False)  # normalised once per graph in operator()

    def operator(self, edge_index: Tensor, num_nodes: int, dtype: torch.dtype = torch.float32) -> Tensor:
        return self._operator.get(edge_index, num_nodes, dtype, self._build)

    def _build(self, edge_index: Tensor, num_nodes: int, dtype: torch.dtype) -> Tensor:
        c = self.config
        return gcn_adjacency(edge_index, num_nodes, c.add_self_loops, c.improved, dtype)


class GAT(_LayerStack):
    r"""Graph attention network from `"Graph Attention Networks" <https://arxiv.org/abs/1710.10903>`_
    (Veličković et al., ICLR 2018), with PyG's :class:`~torch_geometric.nn.conv.GATConv`.

    .. math::
        \mathbf{h}_i' = \big\Vert_{k=1}^{K} \mathrm{ELU}\Big(\sum_{j \in \mathcal{N}(i) \cup \{i\}}
        \alpha_{ij}^{k} \mathbf{W}^{k} \mathbf{h}_j\Big), \qquad
        \alpha_{ij}^{k} = \operatorname{softmax}_j\big(\mathrm{LeakyReLU}(\mathbf{a}^{k\top}
        [\mathbf{W}^{k}\mathbf{h}_i \,\Vert\, \mathbf{W}^{k}\mathbf{h}_j])\big)

    Hidden layers concatenate ``heads`` heads; the last layer averages ``output_heads`` heads into logits.

    Args:
        in_channels: Input features :math:`F`.
        out_channels: Classes :math:`C`.
        config: :class:`~mmsheaf.nsd.baseline_configs.GATConfig` (``layers`` attention layers).

    Shapes:
        - **input:** node features :math:`(N, F)`, edge indices :math:`(2, |E|)`
        - **output:** logits :math:`(N, C)`
    """

    activation = staticmethod(F.elu)

    config_cls = GATConfig

    def layer(self, k: int, in_channels: int, out_channels: int) -> nn.Module:
        c, last = self.config, k == self.config.layers - 1
        return GATConv(
            in_channels if k == 0 else c.heads * c.hidden_channels,  # the heads of the layer below, concatenated
            out_channels,
            heads=c.output_heads if last else c.heads,
            concat=not last,
            negative_slope=c.negative_slope,
            dropout=c.attention_dropout,
        )



class GraphSAGE(_LayerStack):
    r"""GraphSAGE from `"Inductive Representation Learning on Large Graphs"
    <https://arxiv.org/abs/1706.02216>`_ (Hamilton et al., NeurIPS 2017), full batch, with PyG's
    :class:`~torch_geometric.nn.conv.SAGEConv`.

    .. math::
        \mathbf{h}_i' = \mathbf{W}_1 \mathbf{h}_i + \mathbf{W}_2 \cdot
        \operatorname{aggr}_{j \in \mathcal{N}(i)} \mathbf{h}_j

    with ReLU between layers and none after the last (logits).

    Args:
        in_channels: Input features :math:`F`.
        out_channels: Classes :math:`C`.
        config: :class:`~mmsheaf.nsd.baseline_configs.SAGEConfig` (``layers`` SAGE convolutions).

    Shapes:
        - **input:** node features :math:`(N, F)`, edge indices :math:`(2, |E|)`
        - **output:** logits :math:`(N, C)`
    """

    config_cls = SAGEConfig

    def layer(self, k: int, in_channels: int, out_channels: int) -> nn.Module:
        c = self.config
        return SAGEConv(in_channels, out_channels, aggr=c.aggr, normalize=c.normalize and k < c.layers - 1)

    def operator(self, edge_index: Tensor, num_nodes: int, dtype: torch.dtype = torch.float32) -> Tensor:
        return self._operator.get(edge_index, num_nodes, dtype, csr_adjacency)


class GCNII(nn.Module):
    r"""GCNII from `"Simple and Deep Graph Convolutional Networks" <https://arxiv.org/abs/2007.02133>`_
    (Chen et al., ICML 2020), with PyG's :class:`~torch_geometric.nn.conv.GCN2Conv`.

    A linear layer maps the features to :math:`\mathbf{H}^{(0)} = \mathrm{ReLU}(\mathbf{X}\mathbf{W}_{in})`;
    ``layers`` GCNII convolutions with initial residual and identity mapping follow (Eq. 5 of the paper),

    .. math::
        \mathbf{H}^{(\ell)} = \mathrm{ReLU}\Big(\big((1 - \alpha)\tilde{\mathbf{P}}\mathbf{H}^{(\ell-1)}
        + \alpha \mathbf{H}^{(0)}\big)\big((1 - \beta_\ell)\mathbf{I}
        + \beta_\ell \mathbf{W}^{(\ell)}\big)\Big),
        \qquad \beta_\ell = \log(\lambda / \ell + 1),

    with :math:`\tilde{\mathbf{P}} = \tilde{\mathbf{D}}^{-1/2}(\mathbf{A} + \mathbf{I})
    \tilde{\mathbf{D}}^{-1/2}`,
    and a linear layer maps :math:`\mathbf{H}^{(L)}` to logits. Dropout precedes every layer.

    Args:
        in_channels: Input features :math:`F`.
        out_channels: Classes :math:`C`.
        config: :class:`~mmsheaf.nsd.baseline_configs.GCNIIConfig` (``layers`` = number of GCNII
            convolutions).

    Shapes:
        - **input:** node features :math:`(N, F)`, edge indices :math:`(2, |E|)`
        - **output:** logits :math:`(N, C)`
    """

    def __init__(self, in_channels: int, out_channels: int, config: GCNIIConfig | None = None) -> None:
        super().__init__()
        self.config = config if config is not None else GCNIIConfig()
        c = self.config
        self.lin_in = nn.Linear(in_channels, c.hidden_channels)
        self.convs = nn.ModuleList(
            GCN2Conv(
                c.hidden_channels, alpha=c.alpha, theta=c.theta, layer=layer, shared_weights=c.shared_weights,
                normalize=False,  # normalised once per graph (see gcn_adjacency)
            )
            for layer in range(1, c.layers + 1)
        )
        self.lin_out = nn.Linear(c.hidden_channels, out_channels)
        self._operator = OperatorCache()

    def reset_parameters(self) -> None:
        self.lin_in.reset_parameters()
        for conv in self.convs:
            conv.reset_parameters()
        self.lin_out.reset_parameters()

    def forward(self, x: Tensor, edge_index: Tensor) -> Tensor:
        adj_t = self._operator.get(edge_index, x.size(0), x.dtype, gcn_adjacency_with_loops)
        x = F.dropout(x, self.config.input_dropout, self.training)
        x = x_0 = F.relu(self.lin_in(x))
        for conv in self.convs:
            x = F.dropout(x, self.config.dropout, self.training)
            x = F.relu(conv(x, x_0, adj_t))
        x = F.dropout(x, self.config.dropout, self.training)
        return self.lin_out(x)


class GPRProp(MessagePassing):
    r"""Generalized PageRank propagation of GPRGNN (Eq. 3 of Chien et al., ICLR 2021).

    .. math::
        \mathbf{Z} = \sum_{k=0}^{K} \gamma_k \tilde{\mathbf{A}}^{k} \mathbf{H}, \qquad
        \tilde{\mathbf{A}} = \tilde{\mathbf{D}}^{-1/2}(\mathbf{A} + \mathbf{I})\tilde{\mathbf{D}}^{-1/2}

    with learnable :math:`\gamma_0, \dots, \gamma_K` (attribute ``gamma``) initialised by
    :data:`~mmsheaf.nsd.baseline_configs.GPR_INITS` ``[init]``. The normalisation is PyG's
    :func:`~torch_geometric.nn.conv.gcn_conv.gcn_norm`.

    Args:
        K: Propagation steps.
        alpha: Teleport probability of the PPR initialisation.
        init: A key of :data:`~mmsheaf.nsd.baseline_configs.GPR_INITS`.

    Shapes:
        - **input:** node features :math:`(N, C)`, edge indices :math:`(2, |E|)`
        - **output:** :math:`(N, C)`
    """

    def __init__(self, K: int, alpha: float, init: str = "ppr") -> None:
        super().__init__(aggr="add")
        if init not in GPR_INITS:
            raise ValueError(f"GPRProp: init must be one of {tuple(GPR_INITS)}, got {init!r}.")
        self.K, self.alpha, self.init = K, alpha, init
        self.gamma = nn.Parameter(torch.empty(K + 1))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        super().reset_parameters()
        with torch.no_grad():
            self.gamma.copy_(GPR_INITS[self.init](self.K, self.alpha).to(self.gamma.dtype))

    def forward(self, x: Tensor, edge_index: Tensor) -> Tensor:
        edge_index, norm = gcn_norm(edge_index, None, x.size(0), add_self_loops=True, dtype=x.dtype)
        out = self.gamma[0] * x
        for k in range(1, self.K + 1):
            x = self.propagate(edge_index, x=x, norm=norm)
            out = out + self.gamma[k] * x
        return out

    def message(self, x_j: Tensor, norm: Tensor) -> Tensor:
        return norm.view(-1, 1) * x_j

    def __repr__(self) -> str:
        return f"{type(self).__name__}(K={self.K}, alpha={self.alpha}, init={self.init!r})"


class GPRGNN(nn.Module):
    r"""GPRGNN from `"Adaptive Universal Generalized PageRank Graph Neural Network"
    <https://arxiv.org/abs/2006.07988>`_ (Chien et al., ICLR 2021): predict, then propagate.

    .. math::
        \mathbf{H} = \mathrm{MLP}(\mathbf{X}), \qquad
        \text{logits} = \sum_{k=0}^{K} \gamma_k \tilde{\mathbf{A}}^{k} \mathbf{H}

    An MLP of ``layers`` linear layers (ReLU, dropout) maps features to class scores, dropout ``dprate``
    follows, then :class:`GPRProp` propagates them with learnable coefficients :math:`\gamma_k`.

    Args:
        in_channels: Input features :math:`F`.
        out_channels: Classes :math:`C`.
        config: :class:`~mmsheaf.nsd.baseline_configs.GPRGNNConfig` (``layers`` = linear layers of the MLP;
            ``K`` propagation steps).

    Shapes:
        - **input:** node features :math:`(N, F)`, edge indices :math:`(2, |E|)`
        - **output:** logits :math:`(N, C)`
    """

    def __init__(self, in_channels: int, out_channels: int, config: GPRGNNConfig | None = None) -> None:
        super().__init__()
        self.config = config if config is not None else GPRGNNConfig()
        c = self.config
        self.lins = nn.ModuleList(
            nn.Linear(i, o) for i, o in _widths(in_channels, c.hidden_channels, out_channels, c.layers)
        )
        self.prop = GPRProp(c.K, c.alpha, c.init)

    def reset_parameters(self) -> None:
        for lin in self.lins:
            lin.reset_parameters()
        self.prop.reset_parameters()

    def forward(self, x: Tensor, edge_index: Tensor) -> Tensor:
        x = F.dropout(x, self.config.input_dropout, self.training)
        for i, lin in enumerate(self.lins):
            if i > 0:
                x = F.dropout(F.relu(x), self.config.dropout, self.training)
            x = lin(x)
        x = F.dropout(x, self.config.dprate, self.training)
        return self.prop(x, edge_index)
