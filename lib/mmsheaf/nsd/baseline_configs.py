r"""The configurations of the baseline node classifiers (:mod:`mmsheaf.nsd.baselines`): one frozen dataclass
per model, validated on construction.

.. code-block:: python

    GCNConfig(hidden_channels=64, layers=2)          # fields shared by every baseline, then the model's own
    GATConfig(heads=0)                               # ValueError: GATConfig: heads must be >= 1, got 0.

Every config shares ``hidden_channels``, ``layers``, ``dropout`` and ``input_dropout``
(:class:`BaselineConfig`) and adds the model's own knobs; a bad value raises one ``ValueError`` naming the
config and the field. The registry (:mod:`mmsheaf.nsd.registry`) validates a run's hyperparameters through
these classes before anything trains.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

import torch
from torch import Tensor

__all__ = [
    "GPR_INITS",
    "SAGE_AGGREGATIONS",
    "BaselineConfig",
    "GATConfig",
    "GCNConfig",
    "GCNIIConfig",
    "GPRGNNConfig",
    "MLPConfig",
    "SAGEConfig",
]


def _validate(name: str, checks: list[tuple[bool, str]]) -> None:
    """Raise one ``ValueError`` naming the config and the first failed check."""
    for ok, message in checks:
        if not ok:
            raise ValueError(f"{name}: {message}.")


def _probability(value: float) -> bool:
    return 0.0 <= value < 1.0


@dataclass(frozen=True)
class BaselineConfig:
    """Fields shared by every baseline (validated on construction).

    Args:
        hidden_channels: Width of the hidden representations.
        layers: Depth (``>= 1``); what counts as a layer is stated by each model.
        dropout: Dropout probability on hidden representations, in :math:`[0, 1)`.
        input_dropout: Dropout probability on the input features, in :math:`[0, 1)`.
    """

    hidden_channels: int = 64
    layers: int = 2
    dropout: float = 0.5
    input_dropout: float = 0.0

    def __post_init__(self) -> None:
        _validate(type(self).__name__, self._checks())

    def _checks(self) -> list[tuple[bool, str]]:
        return [
            (self.hidden_channels >= 1, f"hidden_channels must be >= 1, got {self.hidden_channels}"),
            (self.layers >= 1, f"layers must be >= 1, got {self.layers}"),
            (_probability(self.dropout), f"dropout must lie in [0, 1), got {self.dropout}"),
            (_probability(self.input_dropout), f"input_dropout must lie in [0, 1), got {self.input_dropout}"),
        ]


@dataclass(frozen=True)
class MLPConfig(BaselineConfig):
    """Configuration of :class:`~mmsheaf.nsd.baselines.MLP`: ``layers`` linear layers (``layers = 1`` is
    logistic regression)."""


@dataclass(frozen=True)
class GCNConfig(BaselineConfig):
    """Configuration of :class:`~mmsheaf.nsd.baselines.GCN`: ``layers`` graph convolutions.

    Args:
        add_self_loops: Add self-loops before normalising (the renormalisation trick of Kipf & Welling).
        improved: Self-loops of weight 2 (:math:`\\hat{A} = A + 2I`).
    """

    add_self_loops: bool = True
    improved: bool = False


@dataclass(frozen=True)
class GATConfig(BaselineConfig):
    """Configuration of :class:`~mmsheaf.nsd.baselines.GAT`: ``layers`` attention layers (defaults of the GAT
    paper on Cora).

    Args:
        hidden_channels: Width of each head in the hidden layers (the hidden representation has
            ``heads * hidden_channels`` features).
        heads: Attention heads of the hidden layers (concatenated).
        output_heads: Attention heads of the last layer (averaged).
        attention_dropout: Dropout on the normalised attention coefficients.
        negative_slope: Slope of the LeakyReLU inside the attention score.
    """

    hidden_channels: int = 8
    dropout: float = 0.6
    input_dropout: float = 0.6
    heads: int = 8
    output_heads: int = 1
    attention_dropout: float = 0.6
    negative_slope: float = 0.2

    def _checks(self) -> list[tuple[bool, str]]:
        return super()._checks() + [
            (self.heads >= 1, f"heads must be >= 1, got {self.heads}"),
            (self.output_heads >= 1, f"output_heads must be >= 1, got {self.output_heads}"),
            (
                _probability(self.attention_dropout),
                f"attention_dropout must lie in [0, 1), got {self.attention_dropout}",
            ),
            (self.negative_slope >= 0.0, f"negative_slope must be >= 0, got {self.negative_slope}"),
        ]


SAGE_AGGREGATIONS: tuple[str, ...] = ("mean", "max", "sum")


@dataclass(frozen=True)
class SAGEConfig(BaselineConfig):
    """Configuration of :class:`~mmsheaf.nsd.baselines.GraphSAGE`: ``layers`` SAGE convolutions.

    Args:
        aggr: Neighbourhood aggregation, one of :data:`SAGE_AGGREGATIONS`.
        normalize: :math:`\\ell_2`-normalise the output of every hidden layer (as in the GraphSAGE paper).
    """

    aggr: str = "mean"
    normalize: bool = False

    def _checks(self) -> list[tuple[bool, str]]:
        return super()._checks() + [
            (self.aggr in SAGE_AGGREGATIONS, f"aggr must be one of {SAGE_AGGREGATIONS}, got {self.aggr!r}"),
        ]


@dataclass(frozen=True)
class GCNIIConfig(BaselineConfig):
    """Configuration of :class:`~mmsheaf.nsd.baselines.GCNII`: ``layers`` GCNII convolutions between input and
    output linear layers.

    Args:
        alpha: Strength :math:`\\alpha` of the initial residual, in :math:`[0, 1]`.
        theta: :math:`\\lambda` of the identity mapping, :math:`\\beta_\\ell = \\log(\\lambda / \\ell + 1)`.
        shared_weights: One weight matrix for the propagated and the initial representation (GCNII);
            ``False`` gives two (GCNII*).
    """

    layers: int = 8
    dropout: float = 0.6
    input_dropout: float = 0.6
    alpha: float = 0.1
    theta: float = 0.5
    shared_weights: bool = True

    def _checks(self) -> list[tuple[bool, str]]:
        return super()._checks() + [
            (0.0 <= self.alpha <= 1.0, f"alpha must lie in [0, 1], got {self.alpha}"),
            (self.theta > 0.0, f"theta must be > 0, got {self.theta}"),
        ]


def _ppr_coefficients(K: int, alpha: float) -> Tensor:
    """PPR initialisation of GPRGNN.

    :math:`\\gamma_k = \\alpha (1 - \\alpha)^k` for :math:`k < K` and :math:`\\gamma_K = (1 - \\alpha)^K`.
    """
    gamma = alpha * (1.0 - alpha) ** torch.arange(K + 1, dtype=torch.float64)
    gamma[-1] = (1.0 - alpha) ** K
    return gamma


def _random_coefficients(K: int, alpha: float) -> Tensor:
    """Random initialisation of GPRGNN: uniform in :math:`\\pm\\sqrt{3 / (K + 1)}`, scaled to unit l1 norm."""
    bound = math.sqrt(3.0 / (K + 1))
    gamma = torch.empty(K + 1, dtype=torch.float64).uniform_(-bound, bound)
    return gamma / gamma.abs().sum().clamp_min(1e-12)


GPR_INITS: Mapping[str, Callable[[int, float], Tensor]] = MappingProxyType(
    {"ppr": _ppr_coefficients, "random": _random_coefficients}
)
"""Initialisations of the GPRGNN coefficients :math:`\\gamma_k` (name -> function of ``(K, alpha)``)."""


@dataclass(frozen=True)
class GPRGNNConfig(BaselineConfig):
    """Configuration of :class:`~mmsheaf.nsd.baselines.GPRGNN`: an MLP of ``layers`` linear layers, then ``K``
    propagation steps.

    Args:
        K: Number of propagation steps (``>= 1``).
        alpha: Teleport probability of the PPR initialisation, in :math:`(0, 1]`.
        init: Initialisation of the coefficients, a key of :data:`GPR_INITS`.
        dprate: Dropout on the MLP output, before the propagation.
    """

    dropout: float = 0.5
    input_dropout: float = 0.5
    K: int = 10
    alpha: float = 0.1
    init: str = "ppr"
    dprate: float = 0.5

    def _checks(self) -> list[tuple[bool, str]]:
        return super()._checks() + [
            (self.K >= 1, f"K must be >= 1, got {self.K}"),
            (0.0 < self.alpha <= 1.0, f"alpha must lie in (0, 1], got {self.alpha}"),
            (self.init in GPR_INITS, f"init must be one of {tuple(GPR_INITS)}, got {self.init!r}"),
            (_probability(self.dprate), f"dprate must lie in [0, 1), got {self.dprate}"),
        ]
