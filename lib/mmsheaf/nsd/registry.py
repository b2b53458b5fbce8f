"""The registry of node classifiers: baselines (:mod:`mmsheaf.nsd.baselines`, configured by
:mod:`mmsheaf.nsd.baseline_configs`) and sheaf models
(:mod:`mmsheaf.sheaf.models`).

.. code-block:: python

    model = build_node_model("gcn", in_channels=F, out_channels=C, hidden_channels=64, layers=2)
    model = build_node_model("orth-nsd", F, C, d=3, layers=4)     # sheaf="orth" is filled in

Every entry of :data:`NODE_MODELS` is a :class:`ModelSpec` holding a model class with the signature
``Model(in_channels, out_channels, config)`` and its frozen config dataclass; hyperparameters are the config's
fields.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal

from torch import nn

from ..sheaf.models import ContinuousNSD, ContinuousNSDConfig, DiscreteNSD, NSDConfig
from .baseline_configs import GATConfig, GCNConfig, GCNIIConfig, GPRGNNConfig, MLPConfig, SAGEConfig
from .baselines import GAT, GCN, GCNII, GPRGNN, MLP, GraphSAGE

__all__ = [
    "NODE_MODELS",
    "ModelSpec",
    "build_node_model",
    "node_model_config",
    "node_model_names",
    "resolve_node_model",
]

Family = Literal["baseline", "sheaf"]


@dataclass(frozen=True)
class ModelSpec:
    """A registered node classifier.

    Args:
        name: Registry key (lower case, e.g. ``"orth-nsd"``).
        display: Name for tables and figures (e.g. ``"O(d)-NSD"``).
        family: ``"baseline"`` or ``"sheaf"``.
        model_cls: The model class, ``Model(in_channels, out_channels, config)``.
        config_cls: Its frozen config dataclass.
        fixed: Config fields this entry sets itself (e.g. ``{"sheaf": "orth"}``); passing a different value
            is an error.
    """

    name: str
    display: str
    family: Family
    model_cls: type[nn.Module]
    config_cls: type
    fixed: Mapping[str, Any] = field(default_factory=dict, hash=False)

    def hparam_names(self) -> list[str]:
        """The hyperparameters a user may set: the config's fields minus :attr:`fixed`."""
        return sorted(f.name for f in dataclasses.fields(self.config_cls) if f.name not in self.fixed)


def _sheaf(name: str, display: str, sheaf: str, continuous: bool) -> ModelSpec:
    model, config = (ContinuousNSD, ContinuousNSDConfig) if continuous else (DiscreteNSD, NSDConfig)
    return ModelSpec(name, display, "sheaf", model, config, MappingProxyType({"sheaf": sheaf}))


NODE_MODELS: Mapping[str, ModelSpec] = MappingProxyType(
    {
        spec.name: spec
        for spec in (
            ModelSpec("mlp", "MLP", "baseline", MLP, MLPConfig),
            ModelSpec("gcn", "GCN", "baseline", GCN, GCNConfig),
            ModelSpec("gat", "GAT", "baseline", GAT, GATConfig),
            ModelSpec("sage", "GraphSAGE", "baseline", GraphSAGE, SAGEConfig),
            ModelSpec("gcnii", "GCNII", "baseline", GCNII, GCNIIConfig),
            ModelSpec("gprgnn", "GPRGNN", "baseline", GPRGNN, GPRGNNConfig),
            _sheaf("diag-nsd", "Diag-NSD", "diag", continuous=False),
            _sheaf("orth-nsd", "O(d)-NSD", "orth", continuous=False),
            _sheaf("gen-nsd", "Gen-NSD", "gen", continuous=False),
            _sheaf("cont-diag-nsd", "Cont. Diag-NSD", "diag", continuous=True),
            _sheaf("cont-orth-nsd", "Cont. O(d)-NSD", "orth", continuous=True),
            _sheaf("cont-gen-nsd", "Cont. Gen-NSD", "gen", continuous=True),
        )
    }
)
"""Registered node classifiers by name (read-only)."""


def node_model_names(family: Family | None = None) -> list[str]:
    """Registered names, in registry order, optionally of one ``family`` (``"baseline"`` or ``"sheaf"``)."""
    if family is not None and family not in ("baseline", "sheaf"):
        raise ValueError(f"family must be 'baseline', 'sheaf' or None, got {family!r}.")
    return [name for name, spec in NODE_MODELS.items() if family is None or spec.family == family]


def resolve_node_model(name: str) -> ModelSpec:
    """The :class:`ModelSpec` of ``name`` (case-insensitive); ``ValueError`` listing the names if unknown."""
    spec = NODE_MODELS.get(name.lower()) if isinstance(name, str) else None
    if spec is None:
        raise ValueError(f"Unknown node model {name!r}: choose among {', '.join(NODE_MODELS)}.")
    return spec


def node_model_config(name: str, **hparams: Any) -> Any:
    """The validated config of model ``name`` with ``hparams`` (and the entry's :attr:`ModelSpec.fixed`).

    Raises:
        ValueError: unknown model, unknown hyperparameter (the message lists the valid ones), a fixed field
            given a different value, or a value the config rejects.
    """
    spec = resolve_node_model(name)
    valid = spec.hparam_names()
    conflicts = {k: v for k, v in hparams.items() if k in spec.fixed and v != spec.fixed[k]}
    if conflicts:
        raise ValueError(
            f"Model {spec.name!r} fixes {dict(spec.fixed)}; got {conflicts}: pick the registry entry "
            f"with the variant you want ({', '.join(node_model_names(spec.family))}) instead of overriding "
            "it."
        )
    unknown = sorted(k for k in hparams if k not in valid and k not in spec.fixed)
    if unknown:
        raise ValueError(
            f"Unknown hyperparameter(s) {unknown} for model {spec.name!r}: valid keys are {', '.join(valid)}."
        )
    return spec.config_cls(**{**hparams, **spec.fixed})


def build_node_model(name: str, in_channels: int, out_channels: int, **hparams: Any) -> nn.Module:
    """Build the registered node classifier ``name`` with the given hyperparameters.

    Args:
        name: A key of :data:`NODE_MODELS` (case-insensitive).
        in_channels: Input features :math:`F`.
        out_channels: Classes :math:`C`.
        **hparams: Fields of the model's config dataclass (defaults for the rest).

    Returns:
        ``ModelSpec.model_cls(in_channels, out_channels, config)``, a module mapping ``(x, edge_index)`` to
        logits :math:`(N, C)`.

    Raises:
        ValueError: unknown model or hyperparameter (the message lists the valid choices) or invalid value.
    """
    if in_channels < 1 or out_channels < 1:
        raise ValueError(f"in_channels and out_channels must be >= 1, got {in_channels} and {out_channels}.")
    config = node_model_config(name, **hparams)
    return resolve_node_model(name).model_cls(in_channels, out_channels, config)
