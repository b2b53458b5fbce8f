r"""Neural Sheaf Diffusion models for node classification: discrete (:class:`DiscreteNSD`) and continuous
(:class:`ContinuousNSD`).

`Bodnar, Di Giovanni, Chamberlain, Liò, Bronstein, "Neural Sheaf Diffusion: A Topological Perspective on
Heterophily and Oversmoothing in GNNs", NeurIPS 2022 <https://arxiv.org/abs/2202.04579>`_.

Both models follow the reference implementation: input dropout, a linear encoder to
:math:`d_{total} \cdot C` features (ELU and dropout, optionally a second linear layer), sheaf diffusion on
:math:`N d_{total} \times C` stalks, and a linear decoder to raw logits.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .conv import SheafDiffusionConv, SheafDiffusionODEFunc
from .index import SheafIndex, SheafIndexCache
from .laplacian import SheafLaplacian, dirichlet_energy
from .maps import ACTIVATIONS, MAP_LEARNERS, ORTHOGONAL_MAPS, _lookup, validate_sheaf

__all__ = ["ContinuousNSD", "ContinuousNSDConfig", "DiscreteNSD", "NSDConfig", "sheaf_parameter_groups"]


@dataclass(frozen=True)
class NSDConfig:
    r"""Hyper-parameters of :class:`DiscreteNSD` (names and defaults of the reference's ``exp/parser.py``).

    Attributes:
        sheaf: ``"diag"`` (Diag-NSD), ``"orth"`` (O(d)-NSD, the reference's ``BundleSheaf``) or ``"gen"``.
        d: learned stalk dimension (``"orth"`` needs ``d >= 2``).
        layers: diffusion layers.
        hidden_channels: channels :math:`C` per stalk dimension (the hidden width is
            :math:`d_{total} \cdot C`).
        input_dropout: dropout on the raw input features.
        dropout: dropout after the encoder, on the diffusion input of every layer and on the sheaf-learner
            input of layers after the first.
        left_weights / right_weights: use :math:`W_1` (stalk mixing) / :math:`W_2` (channel mixing).
        use_act: ELU after the encoder and in every diffusion step.
        second_linear: a second linear layer in the encoder.
        add_lp / add_hp: extra fixed stalk dimension with off-diagonal :math:`+1` / :math:`-1` (reference).
        edge_weights: learn symmetric edge weights scaling the maps. The reference only honours this flag for
            ``BundleSheaf`` (orth) and its parser defaults it to true; here it applies to every sheaf type and
            defaults to false, so translate reference configs of Diag/Gen-NSD with ``edge_weights=False``.
        normalised: :math:`(D+I)^{-1/2} L (D+I)^{-1/2}`; deg_normalised: the reference's degree scaling
            (at most one of the two).
        sheaf_act: activation of the map parameters (``"tanh"``, ``"id"``, ``"elu"``).
        map_learner: ``"linear"`` (paper) or ``"mlp"``; map_hidden_channels: width of the MLP learner.
        orth: ``"householder"`` or ``"matrix_exp"``.
        linear: learn the sheaf once from the encoder output and reuse it in every layer (the reference's
            ``linear=True``); ``False`` (default) learns a new sheaf at every layer.
    """

    sheaf: str = "diag"
    d: int = 2
    layers: int = 2
    hidden_channels: int = 20
    input_dropout: float = 0.0
    dropout: float = 0.0
    left_weights: bool = True
    right_weights: bool = True
    use_act: bool = True
    second_linear: bool = False
    add_lp: bool = False
    add_hp: bool = False
    edge_weights: bool = False
    normalised: bool = True
    deg_normalised: bool = False
    sheaf_act: str = "tanh"
    map_learner: str = "linear"
    map_hidden_channels: int = 16
    orth: str = "householder"
    linear: bool = False

    def __post_init__(self) -> None:
        validate_sheaf(self.sheaf, self.d)
        for name in ("layers", "hidden_channels", "map_hidden_channels"):
            value = getattr(self, name)
            minimum = 0 if name == "layers" else 1
            if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
                raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
        for name in ("input_dropout", "dropout"):
            value = getattr(self, name)
            if not 0.0 <= value < 1.0:
                raise ValueError(f"{name} must lie in [0, 1), got {value!r}")
        if self.normalised and self.deg_normalised:
            raise ValueError("normalised and deg_normalised are exclusive: set at most one of them to True")
        _lookup(ACTIVATIONS, self.sheaf_act, "sheaf_act")
        _lookup(MAP_LEARNERS, self.map_learner, "map_learner")
        _lookup(ORTHOGONAL_MAPS, self.orth, "orth")

    @property
    def total_d(self) -> int:
        """Stalk dimension including the fixed ``add_lp`` / ``add_hp`` dimensions."""
        return self.d + int(self.add_lp) + int(self.add_hp)

    @property
    def hidden_dim(self) -> int:
        """Width of the node representation, :math:`d_{total} \\cdot C`."""
        return self.total_d * self.hidden_channels

    @property
    def normalisation(self) -> str | None:
        """``"sym"``, ``"deg"`` or ``None`` (see :data:`mmsheaf.sheaf.laplacian.NORMALISATIONS`)."""
        return "sym" if self.normalised else ("deg" if self.deg_normalised else None)

    def layer_kwargs(self) -> dict:
        """Keyword arguments shared by :class:`SheafDiffusionConv` and :class:`SheafDiffusionODEFunc`."""
        return dict(
            add_lp=self.add_lp,
            add_hp=self.add_hp,
            normalisation=self.normalisation,
            map_learner=self.map_learner,
            map_learner_kwargs={"hidden_channels": self.map_hidden_channels}
            if self.map_learner == "mlp"
            else None,
            orth=self.orth,
            sheaf_act=self.sheaf_act,
            edge_weights=self.edge_weights,
            left_weights=self.left_weights,
            right_weights=self.right_weights,
            use_act=self.use_act,
        )

    def to_dict(self) -> dict:
        return asdict(self)


class _NSDBase(nn.Module):
    """Encoder / decoder shared by the discrete and continuous models."""

    def __init__(self, in_channels: int, out_channels: int, config: NSDConfig) -> None:
        super().__init__()
        if in_channels < 1 or out_channels < 1:
            raise ValueError(
                f"in_channels and out_channels must be positive, got {in_channels}, {out_channels}"
            )
        self.config = config
        self.in_channels, self.out_channels = in_channels, out_channels
        hidden = config.hidden_dim
        self.lin1 = nn.Linear(in_channels, hidden)
        self.lin12 = nn.Linear(hidden, hidden) if config.second_linear else None
        self.lin2 = nn.Linear(hidden, out_channels)
        self._index_cache = SheafIndexCache()

    def _base_reset(self) -> None:
        for lin in (self.lin1, self.lin12, self.lin2):
            if lin is not None:
                lin.reset_parameters()

    def _encode(self, x: Tensor) -> Tensor:
        cfg = self.config
        if x.dim() != 2 or x.size(1) != self.in_channels:
            raise ValueError(f"x must have shape (N, {self.in_channels}), got {tuple(x.shape)}")
        x = F.dropout(x, p=cfg.input_dropout, training=self.training)
        x = self.lin1(x)
        if cfg.use_act:
            x = F.elu(x)
        x = F.dropout(x, p=cfg.dropout, training=self.training)
        if self.lin12 is not None:
            x = self.lin12(x)
        return x

    def index(self, edge_index: Tensor | SheafIndex, num_nodes: int) -> SheafIndex:
        """The cached :class:`SheafIndex` of ``edge_index``."""
        return self._index_cache(edge_index, num_nodes)

    def extra_repr(self) -> str:
        return f"{self.in_channels}, {self.out_channels}, config={self.config}"


class DiscreteNSD(_NSDBase):
    r"""Discrete Neural Sheaf Diffusion (Diag-, O(d)- and Gen-NSD) for node classification.

    .. math::
        \mathbf{X}_0 = \operatorname{MLP}(\mathbf{X}), \qquad
        \mathbf{X}_{t+1} = (1 + \tanh \boldsymbol{\varepsilon}_t) \odot \mathbf{X}_t
        - \sigma\big(\Delta_{\mathcal{F}(t)} (\mathbf{I} \otimes \mathbf{W}_1^t)
        \mathbf{X}_t \mathbf{W}_2^t\big),
        \qquad \hat{\mathbf{Y}} = \mathbf{X}_T \mathbf{W}_{out}

    (see :class:`~mmsheaf.sheaf.conv.SheafDiffusionConv`). The restriction maps of every layer's sheaf are
    learned from that layer's input (``config.linear=False``) or once from the encoder output.

    Args:
        in_channels: input feature size.
        out_channels: number of classes.
        config: :class:`NSDConfig`.

    **Shapes:** ``x`` :math:`(N, F_{in})`, ``edge_index`` :math:`(2, 2E)` (undirected, no self-loops) or a
    :class:`~mmsheaf.sheaf.index.SheafIndex` -> raw logits :math:`(N, F_{out})`.
    """

    def __init__(self, in_channels: int, out_channels: int, config: NSDConfig = NSDConfig()) -> None:
        super().__init__(in_channels, out_channels, config)
        self.convs = nn.ModuleList(
            SheafDiffusionConv(
                config.hidden_channels,
                config.d,
                config.sheaf,
                learn_sheaf=(i == 0 or not config.linear),
                dropout=config.dropout,
                **config.layer_kwargs(),
            )
            for i in range(config.layers)
        )
        self.reset_parameters()

    def reset_parameters(self) -> None:
        self._base_reset()
        for conv in self.convs:
            conv.reset_parameters()

    def _diffuse(
        self, x: Tensor, index: SheafIndex, normalisation: str | None = None, record: bool = False
    ) -> Iterator[tuple[Tensor, SheafLaplacian | None]]:
        """Yield the hidden state after each layer (and, if ``record``, the Laplacian to measure it with)."""
        laplacian = probe = None
        for i, conv in enumerate(self.convs):
            if conv.learns_sheaf:
                x_maps = F.dropout(x, p=self.config.dropout if i > 0 else 0.0, training=self.training)
                laplacian = conv.sheaf_laplacian(x_maps, index)
                if record:
                    probe = conv.sheaf_laplacian(x_maps, index, normalisation=normalisation)
            x = conv(x, index, laplacian=laplacian)
            yield x, probe

    def forward(self, x: Tensor, edge_index: Tensor | SheafIndex) -> Tensor:
        index = self.index(edge_index, x.size(0))
        h = self._encode(x)
        for state, _ in self._diffuse(h, index):
            h = state
        return self.lin2(h)

    @torch.no_grad()
    def dirichlet_energies(
        self,
        x: Tensor,
        edge_index: Tensor | SheafIndex,
        normalisation: str | None = "sym",
        rayleigh: bool = False,
    ) -> list[float]:
        r"""Sheaf Dirichlet energy
        :math:`\operatorname{tr}(\mathbf{X}_t^\top \Delta_{\mathcal{F}(t)} \mathbf{X}_t)` of the hidden state,
        in eval mode and without gradients.

        Entry 0 is the encoder output :math:`\mathbf{X}_0` measured with the first layer's sheaf; entry
        :math:`t \ge 1` is the state after layer :math:`t` measured with the sheaf of layer :math:`t` (the
        one it was diffused with). The Laplacians are normalised with ``normalisation`` (``"sym"``: the
        normalised sheaf Laplacian of the paper), whatever the model's own setting.

        With ``rayleigh=True`` each energy is divided by :math:`\|\mathbf{X}_t\|_F^2` (the Rayleigh quotient,
        in :math:`[0, \lambda_{\max}(\Delta_{\mathcal{F}(t)})]`): unlike the raw energy it does not grow
        with the scale of the state, which the weights of a trained model change from layer to layer.

        Returns:
            ``layers + 1`` floats.
        """
        was_training = self.training
        self.eval()
        try:
            index = self.index(edge_index, x.size(0))
            h = self._encode(x)
            n, dt = h.size(0), self.config.total_d
            energies: list[float] = []

            def measure(probe: SheafLaplacian, state: Tensor) -> float:
                energy = float(dirichlet_energy(probe, state.view(n, dt, -1)))
                return energy / max(float(state.pow(2).sum()), 1e-30) if rayleigh else energy

            for state, probe in self._diffuse(h, index, normalisation, record=True):
                if not energies:
                    energies.append(measure(probe, h))
                energies.append(measure(probe, state))
            return energies
        finally:
            self.train(was_training)


FIXED_STEP_SOLVERS: tuple[str, ...] = (
    "euler",
    "midpoint",
    "heun2",
    "heun3",
    "rk4",
    "explicit_adams",
    "implicit_adams",
)
ADAPTIVE_SOLVERS: tuple[str, ...] = ("dopri5", "dopri8", "bosh3", "fehlberg2", "adaptive_heun")


@dataclass(frozen=True)
class ContinuousNSDConfig(NSDConfig):
    r"""Hyper-parameters of :class:`ContinuousNSD`: those of :class:`NSDConfig` (``layers`` and the per-layer
    dropout are unused: there is one vector field, and dropout is applied to the input and encoder only) plus:

    Attributes:
        t: integration time :math:`T` (the reference's ``max_t``); ``0`` skips diffusion.
        solver: ``torchdiffeq`` method: fixed-step (``euler``, ``rk4``, ...) or adaptive (``dopri5``, ...).
        step_size: step of the fixed-step solvers.
        rtol / atol: tolerances of the adaptive solvers (reference defaults ``1e-9`` / ``1e-7``).
        max_num_steps: cap on the steps of an adaptive solver (``None``: no cap).
        adjoint: integrate with ``odeint_adjoint`` (memory constant in the number of steps) when training.
        adjoint_solver: solver of the adjoint pass (``None``: same as ``solver``).
    """

    t: float = 1.0
    solver: str = "dopri5"
    step_size: float = 1.0
    rtol: float = 1e-9
    atol: float = 1e-7
    max_num_steps: int | None = None
    adjoint: bool = False
    adjoint_solver: str | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        solvers = FIXED_STEP_SOLVERS + ADAPTIVE_SOLVERS
        for name in ("solver", "adjoint_solver"):
            value = getattr(self, name)
            if (value is not None or name == "solver") and value not in solvers:
                raise ValueError(f"unknown {name} {value!r}: choose one of {solvers}")
        if self.t < 0:
            raise ValueError(f"the integration time t must be >= 0, got {self.t}")
        if self.step_size <= 0 or self.rtol <= 0 or self.atol <= 0:
            raise ValueError("step_size, rtol and atol must be positive")

    def solver_options(self, solver: str) -> dict:
        if solver in FIXED_STEP_SOLVERS:
            return {"step_size": self.step_size}
        return {} if self.max_num_steps is None else {"max_num_steps": self.max_num_steps}


class ContinuousNSD(_NSDBase):
    r"""Continuous Neural Sheaf Diffusion: integrate the sheaf diffusion equation with ``torchdiffeq``.

    .. math::
        \mathbf{X}(0) = \operatorname{MLP}(\mathbf{X}), \qquad
        \frac{d\mathbf{X}(t)}{dt} = \sigma\Big(-\Delta_{\mathcal{F}(\mathbf{X}(t))}
        (\mathbf{I} \otimes \mathbf{W}_1) \mathbf{X}(t) \mathbf{W}_2\Big), \qquad
        \hat{\mathbf{Y}} = \mathbf{X}(T)\, \mathbf{W}_{out}

    (see :class:`~mmsheaf.sheaf.conv.SheafDiffusionODEFunc`). With ``config.linear`` the sheaf is learned once
    from :math:`\mathbf{X}(0)`, otherwise from the state at every function evaluation.

    Args:
        in_channels: input feature size.
        out_channels: number of classes.
        config: :class:`ContinuousNSDConfig`.

    **Shapes:** ``x`` :math:`(N, F_{in})`, ``edge_index`` :math:`(2, 2E)` -> raw logits :math:`(N, F_{out})`.
    """

    def __init__(
        self, in_channels: int, out_channels: int, config: ContinuousNSDConfig = ContinuousNSDConfig()
    ) -> None:
        if not isinstance(config, ContinuousNSDConfig):
            raise ValueError(
                "ContinuousNSD needs a ContinuousNSDConfig (it adds t, solver, tolerances, adjoint)"
            )
        super().__init__(in_channels, out_channels, config)
        self.odefunc = SheafDiffusionODEFunc(
            config.hidden_channels, config.d, config.sheaf, **config.layer_kwargs()
        )
        self.reset_parameters()

    def reset_parameters(self) -> None:
        self._base_reset()
        self.odefunc.reset_parameters()

    def forward(self, x: Tensor, edge_index: Tensor | SheafIndex) -> Tensor:
        from torchdiffeq import odeint, odeint_adjoint

        cfg: ContinuousNSDConfig = self.config  # type: ignore[assignment]
        index = self.index(edge_index, x.size(0))
        h = self._encode(x)
        n = h.size(0)
        if cfg.t > 0:
            state = h.view(n, cfg.total_d, cfg.hidden_channels)
            laplacian = self.odefunc.sheaf_laplacian(state, index) if cfg.linear else None
            func = self.odefunc.bind(index, laplacian)
            times = torch.tensor([0.0, cfg.t], dtype=h.dtype, device=h.device)
            kwargs = dict(
                method=cfg.solver, options=cfg.solver_options(cfg.solver), rtol=cfg.rtol, atol=cfg.atol
            )
            if cfg.adjoint and self.training:
                if laplacian is not None:
                    laplacian = laplacian.independent()
                    func = self.odefunc.bind(index, laplacian)
                adjoint_solver = cfg.adjoint_solver or cfg.solver
                out = odeint_adjoint(
                    func,
                    state,
                    times,
                    adjoint_method=adjoint_solver,
                    adjoint_options=cfg.solver_options(adjoint_solver),
                    adjoint_params=self._adjoint_params(laplacian),
                    **kwargs,
                )
            else:
                out = odeint(func, state, times, **kwargs)
            h = out[-1].reshape(n, -1)
        return self.lin2(h)

    def _adjoint_params(self, laplacian: SheafLaplacian | None) -> tuple[Tensor, ...]:
        """What the vector field reads: with a fixed Laplacian, its tensors instead of the learners' weights.

        The learners reach a fixed Laplacian through ordinary autograd; listing their weights as well would
        count their gradient twice (``odeint_adjoint`` differentiates through everything upstream).
        """
        field = self.odefunc
        if laplacian is None:
            return tuple(field.parameters())
        learners = {
            id(p)
            for m in (field.sheaf_learner, field.edge_weight_learner)
            if m is not None
            for p in m.parameters()
        }
        return tuple(p for p in field.parameters() if id(p) not in learners) + laplacian.tensors()


def sheaf_parameter_groups(
    model: nn.Module, weight_decay: float, sheaf_decay: float | None = None
) -> list[dict]:
    """Optimizer parameter groups: the sheaf learners (names containing ``sheaf_learner``) and the rest.

    NSD's ``sheaf_decay``: the restriction-map learners get their own weight decay (``None``: the same as the
    others), e.g. ``torch.optim.Adam(sheaf_parameter_groups(model, 5e-4, 1e-3), lr=0.01)``.
    """
    sheaf, others = [], []
    for name, param in model.named_parameters():
        (sheaf if "sheaf_learner" in name else others).append(param)
    groups = [{"params": others, "weight_decay": weight_decay}]
    if sheaf:
        groups.append({"params": sheaf, "weight_decay": weight_decay if sheaf_decay is None else sheaf_decay})
    return groups
