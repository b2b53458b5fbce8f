r"""The self-supervised methods of notebook 06 behind one model class, with the study's two axes as settings.

One :class:`SSLModel` is a backbone :math:`f` (:class:`~mmsheaf.encoders.cnn.SmallCNN`), a projector :math:`g`
(so that :math:`z = g(f(x))` is the *embedding* the loss sees and :math:`h = f(x)` the *representation* that is
probed), and what the method adds. For two augmented views :math:`x_1, x_2` of a batch:

- **SimSiam** (`Chen and He, CVPR 2021 <https://arxiv.org/abs/2011.10566>`_): a predictor :math:`q`,
  :math:`\tfrac12 D(p_1, \mathrm{sg}(z_2)) + \tfrac12 D(p_2, \mathrm{sg}(z_1))`, :math:`p = q(z)` (Eq. 4);
- **BYOL** (`Grill et al., NeurIPS 2020 <https://arxiv.org/abs/2006.07733>`_, Eq. 2): the same with the
  targets :math:`z'` of an exponential moving average of :math:`(f, g)`, :math:`\xi \leftarrow \tau\xi + (1 -
  \tau)\theta`, :math:`\tau` raised from :math:`\tau_0` to 1 on a cosine schedule (BYOL §3.2);
- **Barlow Twins** (`Zbontar et al., ICML 2021 <https://arxiv.org/abs/2103.03230>`_, Eq. 1): the
  cross-correlation of the standardised embeddings pulled to the identity;
- **VICReg** (`Bardes et al., ICLR 2022 <https://arxiv.org/abs/2105.04906>`_, Eq. 6): invariance, variance
  and covariance terms;
- **SimCLR** (`Chen et al., ICML 2020 <https://arxiv.org/abs/2002.05709>`_): NT-Xent, the contrastive reference
  (the project's dense implementation, :class:`~mmsheaf.losses.DenseNTXentLoss`);
- **supervised**: cross-entropy of a linear classifier on :math:`z` (labels; the reference of what the
  architecture can reach) and **random**: the untrained network.

**The similarity axis.** :math:`D` of the view-matching term is one of
:data:`~mmsheaf.losses.ssl.VIEW_DISTANCES`: ``cosine`` (:math:`-\cos`), ``normalised_l2``
(:math:`\lVert \bar a - \bar b \rVert^2 = 2 - 2\cos`: the same minimiser and gradient direction as cosine,
twice the scale), ``l2`` (unnormalised squared L2) and ``dot`` (:math:`-\langle a, b \rangle`, unbounded
unless something else bounds the scale). :attr:`Method.similarities` lists where each is meaningful:
SimSiam and BYOL take all four (their predictor output is not normalised, so ``dot`` and ``l2`` test whether
the norm runs away or shrinks to a point); VICReg all four (its covariance term grows with the fourth power
of the scale, which bounds ``dot``); Barlow Twins none (its invariance term is a correlation of
batch-standardised embeddings: the similarity is fixed by the method, ``correlation``); SimCLR ``cosine``
only (NT-Xent's softmax over unnormalised dot products has no fixed temperature scale).

**The collapse axis** is settings of :class:`SSLConfig`: ``stop_gradient=False``, ``predictor=False``,
``tau=0`` (BYOL's target is the online network), ``vicreg_std=0``, ``barlow_off_diagonal=False``, ``dim``
and the batch size.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmsheaf.encoders.cnn import SmallCNN, mlp_head
from mmsheaf.losses.contrastive import DenseNTXentLoss, stack_views
from mmsheaf.losses.ssl import VIEW_DISTANCES, BarlowTwinsLoss, PredictionLoss, VICRegLoss

__all__ = ["METHODS", "Method", "SSLConfig", "SSLModel", "resolve_method"]


@dataclass(frozen=True)
class SSLConfig:
    r"""One self-supervised model: the method, its similarity and its collapse-relevant settings.

    Args:
        method: A key of :data:`METHODS`.
        similarity: The view-matching distance (a key of :data:`~mmsheaf.losses.ssl.VIEW_DISTANCES`, or
            ``"correlation"`` for Barlow Twins); ``None``: the method's own (:attr:`Method.default_similarity`).
        dim: Width of the embedding :math:`z` (the projector's output).
        proj_hidden: Hidden width of the projector.
        proj_layers: Linear layers of the projector.
        predictor: Whether SimSiam / BYOL use a predictor (``False``: :math:`p = z`, the collapse ablation).
        pred_hidden: Hidden width of the predictor (``None``: SimSiam's bottleneck ``dim // 4``, BYOL's
            expansion ``proj_hidden``).
        stop_gradient: SimSiam's stop-gradient on the targets (``False``: the collapse ablation).
        tau: BYOL's base EMA rate :math:`\tau_0` (``0``: the target is the online network, no EMA).
        temperature: SimCLR's NT-Xent temperature.
        barlow_lambda: Barlow Twins' weight of the off-diagonal term (solo-learn and the paper: 5e-3).
        barlow_off_diagonal: Keep Barlow Twins' redundancy-reduction term.
        vicreg_sim, vicreg_std, vicreg_cov: VICReg's weights (the paper's 25, 25, 1).
        widths: Channels of the backbone's blocks.
    """

    method: str
    similarity: str | None = None
    dim: int = 128
    proj_hidden: int = 512
    proj_layers: int = 2
    predictor: bool = True
    pred_hidden: int | None = None
    stop_gradient: bool = True
    tau: float = 0.99
    temperature: float = 0.2
    barlow_lambda: float = 5e-3
    barlow_off_diagonal: bool = True
    vicreg_sim: float = 25.0
    vicreg_std: float = 25.0
    vicreg_cov: float = 1.0
    widths: tuple[int, ...] = (32, 64, 128)

    def __post_init__(self) -> None:
        method = resolve_method(self.method)
        object.__setattr__(self, "widths", tuple(int(w) for w in self.widths))
        if self.similarity is not None and self.similarity not in method.similarities:
            raise ValueError(f"{self.method} takes the similarities {list(method.similarities)}, not "
                             f"{self.similarity!r} (see mmsheaf.ssl.methods for why).")  # fmt: skip
        if self.dim < 1 or self.proj_hidden < 1 or self.proj_layers < 1:
            raise ValueError(f"dim, proj_hidden and proj_layers must be positive, got {self.dim}, {self.proj_hidden}, "
                             f"{self.proj_layers}.")  # fmt: skip
        if not 0.0 <= self.tau < 1.0:
            raise ValueError(f"tau must lie in [0, 1) (0: no EMA), got {self.tau}.")
        ignored = [f.name for f in fields(self) if f.name in _METHOD_FIELDS and f.name not in method.reads
                   and getattr(self, f.name) != f.default]  # fmt: skip
        if ignored:
            raise ValueError(f"{self.method} does not read {ignored}: an ablation with them would rerun the same "
                             f"model under another name. It reads {list(method.reads) or 'none of them'}.")  # fmt: skip

    @property
    def distance(self) -> str:
        """The similarity in use (the method's default when :attr:`similarity` is ``None``)."""
        return self.similarity or resolve_method(self.method).default_similarity


LossFn = Callable[["SSLModel", Tensor, Tensor, Tensor], Tensor]

_METHOD_FIELDS: tuple[str, ...] = ("predictor", "pred_hidden", "stop_gradient", "tau", "temperature",
                                   "barlow_lambda", "barlow_off_diagonal", "vicreg_sim", "vicreg_std", "vicreg_cov")  # fmt: skip
"""The :class:`SSLConfig` fields that only some methods read (:attr:`Method.reads`)."""


@dataclass(frozen=True)
class Method:
    """A method of the study.

    Args:
        name: Registry key.
        display: Label in tables and figures.
        family: ``"non-contrastive"``, ``"contrastive"`` or ``"reference"``.
        similarities: The view-matching distances meaningful for it (module docstring).
        loss: ``(model, x1, x2, y) -> scalar``; ``None``: not trained (the random reference).
        objective: Builds the method's loss module from the config (``None``: none).
        predictor: Whether it has a predictor head.
        target: Whether it keeps an EMA target network.
        supervised: Whether it reads the labels.
        reads: The method-specific :class:`SSLConfig` fields it reads (:data:`_METHOD_FIELDS`); a config that
            changes another one is refused.
        bottleneck: Whether its predictor's default hidden width is SimSiam's bottleneck (``dim // 4``) rather
            than BYOL's expansion (``proj_hidden``).
    """

    name: str
    display: str
    family: str
    similarities: tuple[str, ...]
    loss: LossFn | None
    objective: Callable[[SSLConfig], nn.Module] | None = None
    predictor: bool = False
    target: bool = False
    supervised: bool = False
    reads: tuple[str, ...] = ()
    bottleneck: bool = False

    @property
    def default_similarity(self) -> str:
        """The method's own similarity: the first of :attr:`similarities`."""
        return self.similarities[0]


def _views(model: SSLModel, x1: Tensor, x2: Tensor) -> tuple[Tensor, Tensor]:
    return model.embed(x1), model.embed(x2)


def _predictive(model: SSLModel, x1: Tensor, x2: Tensor, y: Tensor) -> Tensor:
    """SimSiam (targets: the online embeddings) and BYOL (targets: the EMA network's, never differentiated)."""
    z1, z2 = _views(model, x1, x2)
    p1, p2 = (model.predictor(z1), model.predictor(z2)) if model.predictor is not None else (z1, z2)
    if model.target is not None:
        with torch.no_grad():
            z1, z2 = model.target(x1), model.target(x2)
    return model.objective(p1, p2, z1, z2)


def _paired(model: SSLModel, x1: Tensor, x2: Tensor, y: Tensor) -> Tensor:
    return model.objective(*_views(model, x1, x2))


def _ntxent(model: SSLModel, x1: Tensor, x2: Tensor, y: Tensor) -> Tensor:
    return model.objective(*stack_views(*_views(model, x1, x2)))


def _cross_entropy(model: SSLModel, x1: Tensor, x2: Tensor, y: Tensor) -> Tensor:
    z1, z2 = _views(model, x1, x2)
    return 0.5 * (F.cross_entropy(model.classifier(z1), y) + F.cross_entropy(model.classifier(z2), y))


_ALL = tuple(VIEW_DISTANCES)  # cosine first: SimSiam's own


def _prediction(cfg: SSLConfig) -> nn.Module:
    return PredictionLoss(distance=cfg.distance, stop_gradient=cfg.stop_gradient)


METHODS: Mapping[str, Method] = {m.name: m for m in (
    Method("simsiam", "SimSiam", "non-contrastive", _ALL, _predictive, _prediction, predictor=True,
           reads=("predictor", "pred_hidden", "stop_gradient"), bottleneck=True),
    Method("byol", "BYOL", "non-contrastive", ("normalised_l2", *(s for s in _ALL if s != "normalised_l2")),
           _predictive, _prediction, predictor=True, target=True, reads=("predictor", "pred_hidden", "tau")),
    Method("barlow", "Barlow Twins", "non-contrastive", ("correlation",), _paired,
           lambda c: BarlowTwinsLoss(lambd=c.barlow_lambda, off_diagonal=c.barlow_off_diagonal),
           reads=("barlow_lambda", "barlow_off_diagonal")),
    Method("vicreg", "VICReg", "non-contrastive", ("l2", *(s for s in _ALL if s != "l2")), _paired,
           lambda c: VICRegLoss(c.vicreg_sim, c.vicreg_std, c.vicreg_cov, distance=c.distance),
           reads=("vicreg_sim", "vicreg_std", "vicreg_cov")),
    Method("simclr", "SimCLR", "contrastive", ("cosine",), _ntxent,
           lambda c: DenseNTXentLoss(temperature=c.temperature), reads=("temperature",)),
    Method("supervised", "Supervised (labels)", "reference", ("cross-entropy",), _cross_entropy, supervised=True),
    Method("random", "Random init.", "reference", ("none",), None),
)}  # fmt: skip
"""The methods, in table order."""


def resolve_method(name: str) -> Method:
    """The method registered as ``name`` (a ValueError lists the choices)."""
    if name not in METHODS:
        raise ValueError(f"unknown self-supervised method {name!r}: choose one of {', '.join(METHODS)}.")
    return METHODS[name]


class SSLModel(nn.Module):
    r"""Backbone, projector and the method's parts (predictor, EMA target, classifier, loss module).

    Args:
        cfg: The model's settings.
        num_classes: Classes of the supervised reference's classifier.
        in_channels: Channels of the input images.
        backbone: The backbone :math:`f` (with an ``out_features`` attribute); default a
            :class:`~mmsheaf.encoders.cnn.SmallCNN` with :attr:`SSLConfig.widths` (e.g.
            :class:`~mmsheaf.ssl.reviews.ReviewBackbone` for the clothing reviews).

    **Shapes:** :meth:`represent` :math:`(B, C, H, W) \to (B, \text{widths}[-1])` (the default backbone; a
    given one takes its own input); :meth:`embed` :math:`\to (B, \text{dim})`; :meth:`loss` takes two views
    and labels :math:`(B,)`.
    """

    def __init__(self, cfg: SSLConfig, num_classes: int = 10, in_channels: int = 1,
                 backbone: nn.Module | None = None) -> None:  # fmt: skip
        super().__init__()
        self.cfg, self.method = cfg, resolve_method(cfg.method)
        self.backbone = backbone if backbone is not None else SmallCNN(in_channels, cfg.widths)
        if not isinstance(getattr(self.backbone, "out_features", None), int):
            raise ValueError("the backbone must say its output width as an int attribute out_features.")
        # One projector for every method, ending in a linear layer. SimSiam's ends in batch norm (its §3), which
        # in eval mode re-standardises a collapsing output with its running statistics and hides the collapse
        # from the diagnostics; SimSiam's Table 4b (batch norm on the hidden layers only) trains without it.
        self.projector = mlp_head(self.backbone.out_features, cfg.proj_hidden, cfg.dim, cfg.proj_layers)
        self.predictor: nn.Module | None = None
        if self.method.predictor and cfg.predictor:
            hidden = cfg.pred_hidden or (max(1, cfg.dim // 4) if self.method.bottleneck else cfg.proj_hidden)
            self.predictor = mlp_head(cfg.dim, hidden, cfg.dim, 2)
        self.target: nn.Module | None = None
        if self.method.target:
            self.target = copy.deepcopy(nn.Sequential(self.backbone, self.projector)).requires_grad_(False)
        self.classifier = nn.Linear(cfg.dim, num_classes) if self.method.supervised else None
        self.objective = self.method.objective(cfg) if self.method.objective is not None else None

    @property
    def trains(self) -> bool:
        """Whether the method is trained at all (the random reference is not)."""
        return self.method.loss is not None

    def represent(self, x: Tensor) -> Tensor:
        """The representation :math:`h = f(x)` that the probes read."""
        return self.backbone(x)

    def embed(self, x: Tensor) -> Tensor:
        """The embedding :math:`z = g(f(x))` that the loss sees."""
        return self.projector(self.backbone(x))

    def loss(self, x1: Tensor, x2: Tensor, y: Tensor) -> Tensor:
        """The method's training loss on two views of a batch (``y`` is read by the supervised reference only)."""
        if self.method.loss is None:
            raise ValueError(f"{self.method.display} is not trained: it has no loss.")
        return self.method.loss(self, x1, x2, y)

    def online_parameters(self) -> list[nn.Parameter]:
        """The parameters the optimiser updates (everything but the EMA target)."""
        target = {id(p) for p in self.target.parameters()} if self.target is not None else set()
        return [p for p in self.parameters() if id(p) not in target]

    @torch.no_grad()
    def update_target(self, progress: float) -> None:
        r"""BYOL's EMA step after an optimiser step, at ``progress`` :math:`= k/K` of training:
        :math:`\tau_k = 1 - (1 - \tau_0)(\cos(\pi k/K) + 1)/2` (BYOL §3.2); the batch-norm buffers are copied.
        :math:`\tau_0 = 0` keeps :math:`\tau_k = 0`: the target is the online network (BYOL's Table 5a ablation).
        A no-op for the methods without a target."""
        if self.target is None:
            return
        tau = 0.0
        if self.cfg.tau > 0.0:
            tau = 1.0 - (1.0 - self.cfg.tau) * (math.cos(math.pi * min(max(progress, 0.0), 1.0)) + 1.0) / 2.0
        online = nn.Sequential(self.backbone, self.projector)
        for t, o in zip(self.target.parameters(), online.parameters(), strict=True):
            t.mul_(tau).add_(o.detach(), alpha=1.0 - tau)
        for t, o in zip(self.target.buffers(), online.buffers(), strict=True):
            t.copy_(o)
