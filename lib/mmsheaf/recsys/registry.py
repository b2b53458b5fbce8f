r"""The :class:`Recommender` interface and the registry of recommenders by name.

.. code-block:: python

    model = build_recommender("lightgcn", data, dim=64, layers=3)
    user_emb, item_emb = model(data)          # (U, D), (I, D): the score of (u, i) is <user_emb[u], item_emb[i]>

Every recommender subclasses :class:`Recommender`: it is built as ``Model(data, **hparams)`` (sizes and
feature widths are read from ``data``; the hyperparameters are the keyword arguments of ``__init__``), and
``forward(data)`` returns the final user and item embeddings. Graph models propagate over the training
interactions ``data.train`` only; :meth:`Recommender.propagation_matrix` builds the normalised adjacency once
per training graph and caches it. Models join the registry with the :func:`register_recommender` decorator
(the baselines of :mod:`mmsheaf.recsys.models` and the sheaf recommenders of :mod:`mmsheaf.recsys.sheaf` do).

Missing modalities are never zero-filled as if observed: :func:`modality_mask` tells a model which nodes
observe a modality (``data.has(side, m)``, ids everywhere unless masked).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, TypeVar

import torch
from torch import Tensor, nn

from mmsheaf.data.interactions import InteractionData
from mmsheaf.recsys.losses import bpr_loss
from mmsheaf.sheaf.operators import gcn_adjacency

__all__ = [
    "RECOMMENDERS",
    "Recommender",
    "RecommenderSpec",
    "build_recommender",
    "modality_mask",
    "recommender_names",
    "register_recommender",
    "resolve_recommender",
]


# ----------------------------------------------------------------------------------------------- base class
class Recommender(nn.Module):
    r"""Base class of the recommenders: ``forward(data) -> (user_emb, item_emb)``, scores are dot products.

    Subclasses take ``data`` as their first constructor argument and their hyperparameters as keyword
    arguments with defaults (the registry reads them from the signature), set :attr:`num_users` and
    :attr:`num_items`, and implement :meth:`forward` and :meth:`reset_parameters`. Per-node parameters are
    ``nn.Embedding`` tables indexed by user id, item id or node id (users first, items offset by :math:`U`).

    Shapes:
        - **input:** an :class:`~mmsheaf.data.interactions.InteractionData` with :math:`U` users and
          :math:`I` items, on the model's device
        - **output:** user embeddings :math:`(U, D)`, item embeddings :math:`(I, D)`
    """

    num_users: int
    num_items: int

    def __init__(self) -> None:
        super().__init__()
        self._propagation: tuple[Tensor, int, torch.device, torch.dtype, Tensor] | None = None

    def forward(self, data: InteractionData) -> tuple[Tensor, Tensor]:  # pragma: no cover - abstract
        raise NotImplementedError(
            f"{type(self).__name__} must implement forward(data) -> (user_emb, item_emb)."
        )

    def reset_parameters(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError(f"{type(self).__name__} must implement reset_parameters().")

    def training_loss(self, data: InteractionData, users: Tensor, pos: Tensor, neg: Tensor,
                      reg_weight: float = 0.0) -> Tensor:  # fmt: skip
        r"""The loss of one training batch of :func:`~mmsheaf.recsys.train.fit_recommender`: BPR on the output
        embeddings (:func:`~mmsheaf.recsys.losses.bpr_loss`) unless a model overrides it with its published
        objective.

        Args:
            data: The interactions (on the model's device).
            users, pos, neg: The batch's users, positive items and uniformly drawn negative items, :math:`(B,)`.
            reg_weight: The training config's :math:`\lambda`.
        """
        return bpr_loss(*self(data), users, pos, neg, reg_weight)

    def prepare(self, data: InteractionData, cfg: Any) -> None:
        """Called once by :func:`~mmsheaf.recsys.train.fit_recommender` before its optimiser is built, with the
        data (on the training device) and the :class:`~mmsheaf.recsys.train.RecTrainConfig`: a model that
        needs a pretrained input (DropoutNet's preference vectors) trains it here. Nothing by default."""

    def check_data(self, data: InteractionData) -> None:
        """``ValueError`` unless ``data`` has the numbers of users and items the model was built for."""
        if (data.num_users, data.num_items) != (self.num_users, self.num_items):
            raise ValueError(f"{type(self).__name__} was built for {self.num_users} users and {self.num_items} "
                             f"items, got data with {data.num_users} and {data.num_items}: build the model "
                             "from this data.")  # fmt: skip

    def propagation_matrix(self, data: InteractionData, dtype: torch.dtype = torch.float32) -> Tensor:
        r"""The LightGCN operator :math:`\mathbf{D}^{-1/2}\mathbf{A}\mathbf{D}^{-1/2}` of ``data``'s training
        graph (no self-loops; PyG's :func:`~torch_geometric.nn.conv.gcn_conv.gcn_norm`) as a CSR ``adj_t``.

        Built once per training graph: cached on the identity and version of ``data.train`` (the cache holds a
        reference to it, so its memory cannot be reused by another graph), the device and the dtype.

        Shapes:
            - **output:** sparse :math:`(U + I, U + I)`
        """
        train = data.train
        cached = self._propagation
        if (cached is None or cached[0] is not train or cached[1] != train._version or cached[2] != train.device
                or cached[3] != dtype):  # fmt: skip
            adj = gcn_adjacency(data.edge_index("train"), data.num_nodes, add_self_loops=False, dtype=dtype)
            self._propagation = cached = (train, train._version, train.device, dtype, adj)
        return cached[4]


def modality_mask(data: InteractionData, side: str, modality: str) -> Tensor:
    """``data.has(side, modality)``, except that ids are observed everywhere unless ``data`` masks them."""
    masks = data.user_mask if side == "user" else data.item_mask
    if modality == "id" and "id" not in masks:
        n = data.num_users if side == "user" else data.num_items
        return torch.ones(n, dtype=torch.bool, device=data.train.device)
    return data.has(side, modality).to(data.train.device)


# ----------------------------------------------------------------------------------------------- registry
R = TypeVar("R", bound=type)


@dataclass(frozen=True)
class RecommenderSpec:
    """A registered recommender.

    Args:
        name: Registry key (lower case, e.g. ``"lightgcn"``).
        display: Name for tables and figures (e.g. ``"LightGCN"``).
        cls: The :class:`Recommender` subclass, built as ``cls(data, **hparams)``.
    """

    name: str
    display: str
    cls: type

    def _parameters(self) -> list[inspect.Parameter]:
        params = list(inspect.signature(self.cls.__init__).parameters.values())[2:]  # drop self, data
        return [p for p in params if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]

    def hparam_names(self) -> list[str]:
        """The hyperparameters (keyword arguments of the constructor after ``data``), sorted."""
        return sorted(p.name for p in self._parameters())

    def defaults(self) -> dict[str, Any]:
        """The default value of every hyperparameter that has one."""
        return {p.name: p.default for p in self._parameters() if p.default is not inspect.Parameter.empty}


_REGISTRY: dict[str, RecommenderSpec] = {}

RECOMMENDERS: Mapping[str, RecommenderSpec] = MappingProxyType(_REGISTRY)
"""Registered recommenders by name, in registration order (a read-only view; add with
:func:`register_recommender`)."""


def register_recommender(name: str, display: str | None = None) -> Callable[[R], R]:
    """Class decorator adding a :class:`Recommender` subclass to :data:`RECOMMENDERS` under ``name``.

    .. code-block:: python

        @register_recommender("my-rec", display="MyRec")
        class MyRec(Recommender):
            def __init__(self, data: InteractionData, dim: int = 64) -> None: ...

    Args:
        name: Registry key (stored lower case).
        display: Name for tables and figures (default: the class name).

    Raises:
        ValueError: ``name`` is taken by another class (re-registering the same class, e.g. after a module
            reload, replaces the entry), or the class does not take ``data`` as its first argument.
        TypeError: the decorated object is not a :class:`Recommender` subclass.
    """
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"register_recommender: name must be a non-empty string, got {name!r}.")
    key = name.lower()

    def decorator(cls: R) -> R:
        if not (isinstance(cls, type) and issubclass(cls, Recommender)):
            raise TypeError(
                f"register_recommender({name!r}): {cls!r} must subclass mmsheaf.recsys.Recommender."
            )
        params = list(inspect.signature(cls.__init__).parameters)
        if len(params) < 2 or params[1] != "data":
            raise ValueError(f"register_recommender({name!r}): {cls.__name__}.__init__ must take `data` as its "
                             "first argument and the hyperparameters as keyword arguments.")  # fmt: skip
        old = _REGISTRY.get(key)
        same_class = old is not None and (old.cls.__module__, old.cls.__qualname__) == (
            cls.__module__, cls.__qualname__)  # fmt: skip
        if old is not None and not same_class:
            raise ValueError(f"register_recommender: {key!r} is already registered to "
                             f"{old.cls.__module__}.{old.cls.__qualname__}: choose another name.")  # fmt: skip
        _REGISTRY[key] = RecommenderSpec(key, display if display is not None else cls.__name__, cls)
        return cls

    return decorator


def recommender_names() -> list[str]:
    """Registered names, in registration order."""
    return list(_REGISTRY)


def resolve_recommender(name: str) -> RecommenderSpec:
    """The :class:`RecommenderSpec` of ``name`` (case-insensitive); ``ValueError`` listing the names if unknown."""
    spec = _REGISTRY.get(name.lower()) if isinstance(name, str) else None
    if spec is None:
        raise ValueError(f"Unknown recommender {name!r}: choose among {', '.join(_REGISTRY)}.")
    return spec


def build_recommender(name: str, data: InteractionData, **hparams: Any) -> Recommender:
    """Build the registered recommender ``name`` for ``data``.

    Initialisation draws from the global torch RNG: call :func:`mmsheaf.runs.keys.set_seed` first for a
    reproducible model.

    Args:
        name: A key of :data:`RECOMMENDERS` (case-insensitive).
        data: The interactions the model is built for (sizes, feature widths).
        **hparams: Keyword arguments of the model's constructor (defaults for the rest).

    Raises:
        ValueError: unknown model or hyperparameter (the message lists the valid choices) or invalid value.
    """
    spec = resolve_recommender(name)
    valid = spec.hparam_names()
    unknown = sorted(k for k in hparams if k not in valid)
    if unknown:
        raise ValueError(f"Unknown hyperparameter(s) {unknown} for recommender {spec.name!r}: valid keys are "
                         f"{', '.join(valid) or '(none)'}.")  # fmt: skip
    return spec.cls(data, **hparams)
