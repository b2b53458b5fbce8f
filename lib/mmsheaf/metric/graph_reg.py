r"""The metric-learning study with a graph regulariser: experiment 3 of the graph-regularisation study (issue 18,
notebook 07), on the multimodal reviews. It lives here because it is notebook 03's protocol with one more loss
term (a study package imports no other study).

Notebook 03's encoder (:class:`~mmsheaf.encoders.fusion.MultimodalEncoder`) on its task T2 (``"category"``:
the class of a clothing review), three ways (:data:`VARIANTS`):

- ``"no-graph"``: the text and tabular towers and notebook 03's loss alone (its ``text + tabular`` ablation);
- ``"graph-reg"``: the same towers, and the review graph (the same-item graph the graph tower reads,
  ``task.edge_index``) in the loss only,

  .. math::
      \mathcal{L}(\theta) = \mathcal{L}_{metric}(Z_B) + \alpha\, \mathcal{R}(Z_U), \qquad
      \mathcal{R}(Z_U) = \frac{1}{|E_U|} \sum_{(u, v) \in E_U,\ u < v} d(z_u, z_v),

  where :math:`Z` are the fused (L2-normalised) embeddings, :math:`B` the batch of notebook 03's sampler,
  :math:`U` the batch and ``neighbours`` training neighbours drawn per batch row, and :math:`E_U` every edge
  of the graph among :math:`U` (:class:`~mmsheaf.losses.graph_reg.GraphRegulariser`, ``reduction="mean"``).
  The encoder has no graph tower and is given no graph: at inference it never reads one;
- ``"graph-tower"``: notebook 03's encoder with its graph tower, exactly its T2 setting.

The loss defaults to notebook 03's best on T2 (ArcFace, test MAP@R 87.2 % in ``metric_learning.csv``) with its
tuned hyperparameters (:data:`T2_TUNED`); encoder, training and data settings come from notebook 03's
parameters in a ``profile`` (``"paper"``: its YAML; ``"smoke"``: its parameters cell, 1,200 reviews), each
overridable. A run stores its metrics as JSON and its embeddings beside it (:class:`ReviewRunCache`).

.. code-block:: python

    specs = [ReviewRunSpec(v, seed=s) for v in VARIANTS for s in range(3)]
    runs = run_review_specs(specs)               # val/test MAP@R, P@1, accuracy, seconds, infer_ms
    emb = review_embeddings(specs[0])            # {"train", "train_labels", "val", ..., "test_labels"}
"""

from __future__ import annotations

import copy
import dataclasses
import math
import statistics
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from torch import Tensor, nn

from mmsheaf import paths
from mmsheaf.atomic import atomic_path
from mmsheaf.encoders.fusion import MultimodalEncoder
from mmsheaf.encoders.inputs import ModalityInputs
from mmsheaf.evaluation.distance_retrieval import retrieval_by_distance
from mmsheaf.losses import MetricLoss, build_loss, resolve_loss
from mmsheaf.losses.distances import PAIRED_DISTANCES, PROBABILITY_DISTANCES, LearnedMahalanobis
from mmsheaf.losses.graph_reg import GraphRegulariser
from mmsheaf.metric import protocol as metric
from mmsheaf.metric.train import MetricTrainConfig, MetricTrainResult, train_metric_encoder
from mmsheaf.runs.cache import KeyedSpec, RunCache, run_cached

__all__ = ["RETRIEVAL_FIT_ROWS", "SCHEMA", "T2_TUNED", "VARIANTS", "GraphObjective", "GraphPenalty", "ReviewGraph",
           "ReviewRegConfig", "ReviewRunCache", "ReviewRunSpec", "choose_alpha", "inference_ms", "notebook03_settings",
           "regularised_loss", "review_cache", "review_embeddings", "run_review_specs",
           "train_graph_regularised"]  # fmt: skip

SCHEMA = "mmsheaf.graphreg-reviews/1"

RETRIEVAL_VERSION = 1
"""Version of the retrieval scores every run stores (entered into the run keys with :data:`RETRIEVAL_FIT_ROWS`)."""

RETRIEVAL_FIT_ROWS = 2000
r"""Training reviews (a seeded draw) the two Mahalanobis matrices of the retrieval scores are fitted on: NCA holds
an :math:`N \times N` matrix, several GB for all 14k."""

VARIANTS: tuple[str, ...] = ("no-graph", "graph-reg", "graph-tower")
TASK, NOTEBOOK, DEFAULT_LOSS = "category", "03_arcface_vs_contrastive", "arcface"
T2_TUNED: Mapping[str, Mapping[str, float]] = {
    "arcface": {"margin": 31.799745107100186, "scale": 8.596235025380896},
    "subcenter-arcface": {"margin": 31.799745107100186, "scale": 8.596235025380896, "sub_centers": 4},
    "cosface": {"margin": 0.5911259137802171, "scale": 9.07447059839298},
    "normsoftmax": {"temperature": 0.12520653814999466},
    "supcon": {"temperature": 0.12520653814999466},
    "triplet": {"margin": 0.07447144904083071},
    "multisimilarity": {"alpha": 17.167680388145662, "base": 0.5151746702250074, "beta": 2.467630184538666,
                        "epsilon": 0.38760415506724205},
}  # fmt: skip
"""Each loss's hyperparameters tuned by notebook 03's paper profile on T2 (its run ledger,
``figures/runs/03_arcface_vs_contrastive.jsonl``; rounded in ``metric_hparams.csv``)."""
_NEIGHBOUR_STREAM = 1_000_003  # the neighbour sampler's seed offset: the batches stay notebook 03's


@lru_cache(maxsize=4)
def _settings(profile: str) -> dict[str, Any]:
    from mmsheaf.report.notebooks import Notebook

    p = Notebook(NOTEBOOK, paths.notebooks_dir()).resolved_parameters(paths.check_profile(profile))
    return {"modalities": list(p["MODALITIES"][TASK]), "encoder": dict(p["ENCODER"]),
            "train": dict(p["TRAIN"]), "data_options": dict(p["DATA_OPTIONS"].get(TASK, {}))}  # fmt: skip


def notebook03_settings(profile: str = "paper") -> dict[str, Any]:
    """Notebook 03's T2 settings in ``profile``: ``modalities``, ``encoder``, ``train``, ``data_options``."""
    return copy.deepcopy(_settings(profile))


@dataclass(frozen=True)
class ReviewRegConfig:
    """The graph penalty of ``"graph-reg"``.

    Args:
        alpha: Its weight :math:`\\alpha` (0: the ``"no-graph"`` run).
        distance: A key of :data:`~mmsheaf.losses.distances.PAIRED_DISTANCES` but ``kl``/``js`` (no class
            distributions here); ``"mahalanobis"`` learns its matrix, kept at trace :math:`D`.
        neighbours: Training neighbours drawn (with replacement) per batch row; 0: only the edges that fall
            inside the batch (about 50 per batch of 256 on the paper data; about 640 with 2 neighbours).
    """

    alpha: float = 1.0
    distance: str = "sq_l2"
    neighbours: int = 2

    def __post_init__(self) -> None:
        if self.distance not in PAIRED_DISTANCES or self.distance in PROBABILITY_DISTANCES:
            names = [d for d in PAIRED_DISTANCES if d not in PROBABILITY_DISTANCES]
            raise ValueError(f"unknown distance {self.distance!r}: choose one of {', '.join(names)}.")
        if not (self.alpha >= 0 and math.isfinite(self.alpha)) or self.neighbours < 0:
            raise ValueError(
                f"need a finite alpha >= 0 and neighbours >= 0, got {self.alpha}, {self.neighbours}."
            )


@dataclass(frozen=True)
class ReviewRunSpec(KeyedSpec):
    """One run of the experiment.

    Args:
        variant: One of :data:`VARIANTS`.
        seed: The run's seed (initialisation, batches, dropout, neighbours); the split is notebook 03's.
        alpha, distance, neighbours: :class:`ReviewRegConfig` (read by ``"graph-reg"`` only).
        loss: A loss of notebook 03 (``"graph-reg"``: not ``ntxent``, which takes no labels).
        loss_hparams: Its hyperparameters; ``None``: :data:`T2_TUNED` (the loss's defaults if not tuned).
        profile: Notebook 03's profile the settings come from (``"paper"`` or ``"smoke"``).
        encoder: :class:`~mmsheaf.encoders.fusion.EncoderConfig` fields over the profile's (not
            ``modalities``: the variant sets them).
        train: :class:`~mmsheaf.metric.train.MetricTrainConfig` fields over the profile's (``epochs`` ...).
        data_options: :func:`~mmsheaf.metric.protocol.load_task` options over the profile's (``max_rows``).
    """

    variant: str = "graph-reg"
    seed: int = 0
    alpha: float = 1.0
    distance: str = "sq_l2"
    neighbours: int = 2
    loss: str = DEFAULT_LOSS
    loss_hparams: Mapping[str, Any] | None = None
    profile: str = "paper"
    encoder: Mapping[str, Any] = field(default_factory=dict)
    train: Mapping[str, Any] = field(default_factory=dict)
    data_options: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.variant not in VARIANTS:
            raise ValueError(f"unknown variant {self.variant!r}: choose one of {', '.join(VARIANTS)}.")
        if "modalities" in self.encoder:
            raise ValueError("the variant sets the encoder's modalities: leave 'modalities' out of encoder.")
        object.__setattr__(self, "loss", resolve_loss(self.loss).name)
        if self.variant == "graph-reg" and resolve_loss(self.loss).views != 1:
            raise ValueError(f"{self.loss!r} trains on two views of unlabelled rows: graph-reg needs a loss "
                             "on labels.")  # fmt: skip
        self.reg_config(), self.metric_spec()  # validate now, not mid-run

    @property
    def reads_graph_in_loss(self) -> bool:
        """Whether the run is a regularised one (``"graph-reg"`` with ``alpha > 0``)."""
        return self.variant == "graph-reg" and self.alpha > 0

    def reg_config(self) -> ReviewRegConfig:
        return ReviewRegConfig(self.alpha, self.distance, self.neighbours)

    def metric_spec(self) -> metric.MetricRunSpec:
        """Notebook 03's run of the encoder, loss and settings (``"graph-tower"``: exactly its T2 run)."""
        s = notebook03_settings(self.profile)
        mods = [m for m in s["modalities"] if self.variant == "graph-tower" or m != "graph"]
        hparams = T2_TUNED.get(self.loss, {}) if self.loss_hparams is None else self.loss_hparams
        encoder = {**s["encoder"], **self.encoder, "modalities": mods}
        data_options = {**s["data_options"], **self.data_options}
        return metric.MetricRunSpec(TASK, self.loss, dict(hparams), encoder, {**s["train"], **self.train},
                                    self.seed, data_options)  # fmt: skip

    def describe(self) -> dict[str, Any]:
        """Notebook 03's run and, for a regularised run only, the penalty: ``"graph-reg"`` at ``alpha = 0``
        *is* the ``"no-graph"`` run (same key, same training, :func:`train_graph_regularised`)."""
        variant = "no-graph" if self.variant == "graph-reg" and not self.reads_graph_in_loss else self.variant
        out = {"schema": SCHEMA, "variant": variant, "metric": self.metric_spec().describe(),
               "retrieval": {"version": RETRIEVAL_VERSION, "fit_rows": RETRIEVAL_FIT_ROWS}}  # fmt: skip
        return {**out, "reg": dataclasses.asdict(self.reg_config())} if self.reads_graph_in_loss else out


@dataclass(frozen=True, eq=False)
class ReviewGraph:
    r"""The review graph among the training rows, as CSR (``ptr``, ``col``; ``row`` the source of each entry).

    **Shapes:** ``ptr`` :math:`(N + 1,)`, ``row``/``col`` :math:`(2E,)`.
    """

    ptr: Tensor
    row: Tensor
    col: Tensor

    @classmethod
    def among(cls, edge_index: Tensor, rows: Tensor, num_rows: int) -> ReviewGraph:
        """The edges of ``edge_index`` (both directions) with both ends in ``rows``."""
        keep = torch.zeros(num_rows, dtype=torch.bool)
        keep[rows] = True
        src, dst = edge_index[:, keep[edge_index[0]] & keep[edge_index[1]]]
        order = torch.argsort(src * num_rows + dst)
        deg = torch.bincount(src, minlength=num_rows)
        return cls(torch.cat([deg.new_zeros(1), deg.cumsum(0)]), src[order], dst[order])

    def sample(self, rows: Tensor, k: int, generator: torch.Generator | None = None) -> Tensor:
        """``k`` neighbours of every row of ``rows`` that has one, uniformly with replacement.

        **Shapes:** ``rows`` :math:`(B,)`; output :math:`(\\le kB,)`."""
        deg = (self.ptr[rows + 1] - self.ptr[rows]).repeat_interleave(k)
        start = self.ptr[rows].repeat_interleave(k)
        pick = (torch.rand(deg.numel(), generator=generator) * deg).long()
        return self.col[(start + pick)[deg > 0]]

    def edges_among(self, nodes: Tensor) -> Tensor:
        """The edges among ``nodes`` as positions into ``nodes`` (a repeated node: its first position), both
        directions, no duplicate: :math:`(2, 2E_U)`."""
        none = len(nodes)
        pos = torch.full((len(self.ptr) - 1,), none, dtype=torch.long)
        pos.scatter_reduce_(0, nodes, torch.arange(none), reduce="amin")
        ps, pd_ = pos[self.row], pos[self.col]
        keep = (ps < none) & (pd_ < none)
        return torch.stack([ps[keep], pd_[keep]])


class GraphPenalty(nn.Module):
    r""":math:`\mathcal{R}(Z)`: :class:`~mmsheaf.losses.graph_reg.GraphRegulariser` (mean over the undirected
    edges); for ``"mahalanobis"`` the learned matrix :math:`M = \tfrac12 I + \tfrac12 D\, LL^\top /
    \operatorname{tr}(LL^\top)` (trace :math:`D`, every eigenvalue at least :math:`\tfrac12`: no trivial 0, and no
    hiding on directions where the edges do not vary; the same construction as the graph-regularisation study's
    MLP, :mod:`mmsheaf.graphreg.model`, written again here because a study imports no other).

    **Shapes:** ``z`` :math:`(U, D)`, ``edge_index`` :math:`(2, 2E_U)`; output a scalar (0 without edges).
    """

    def __init__(self, cfg: ReviewRegConfig, dim: int) -> None:
        super().__init__()
        self.reg = GraphRegulariser(cfg.distance, (1.0, 1.0, 1.0), reduction="mean")
        self.metric = LearnedMahalanobis(dim) if cfg.distance == "mahalanobis" else None

    def forward(self, z: Tensor, edge_index: Tensor) -> Tensor:
        kw = {}
        if self.metric is not None:
            low_rank, dim = self.metric.matrix(), z.size(1)
            eye = torch.eye(dim, dtype=z.dtype, device=z.device)
            kw["matrix"] = 0.5 * eye + (0.5 * dim) * low_rank / low_rank.trace().clamp_min(1e-8)
        return self.reg(z, edge_index, **kw)


def regularised_loss(encoder: MultimodalEncoder, loss: MetricLoss, penalty: GraphPenalty,
                     inputs: ModalityInputs, rows: Tensor, targets: Tensor, graph: ReviewGraph,
                     cfg: ReviewRegConfig, generator: torch.Generator | None = None,
                     sampler: torch.Generator | None = None) -> tuple[Tensor, Tensor, Tensor]:  # fmt: skip
    r"""One step's :math:`\mathcal{L}_{metric}(Z_B) + \alpha \mathcal{R}(Z_U)` (module docstring): the batch
    ``rows`` and their sampled neighbours embedded in one forward pass. At ``alpha = 0`` only the batch is
    embedded, as notebook 03's trainer does.

    Returns:
        ``(total, metric loss, penalty)``, scalars.

    **Shapes:** ``rows``, ``targets`` :math:`(B,)`.
    """
    if cfg.alpha == 0:
        value = loss(encoder(inputs, rows, generator=generator), targets)
        return value, value, value.new_zeros(())
    nodes = torch.cat([rows, graph.sample(rows, cfg.neighbours, sampler)]) if cfg.neighbours else rows
    z = encoder(inputs, nodes, generator=generator)
    value, pen = loss(z[: rows.numel()], targets), penalty(z, graph.edges_among(nodes))
    return value + cfg.alpha * pen, value, pen


class GraphObjective(nn.Module):
    r"""The step objective (:func:`~mmsheaf.metric.train.train_metric_encoder`'s ``objective``) of the
    ``"graph-reg"`` variant: :func:`regularised_loss`, its parts ``loss`` (the metric loss) and ``penalty``
    logged. Holds the penalty (its learned Mahalanobis matrix is trained with the encoder), the training graph
    and the neighbour sampler's generator.

    **Shapes:** ``rows``, ``targets`` :math:`(B,)`; outputs scalars.
    """

    def __init__(self, penalty: GraphPenalty, graph: ReviewGraph, reg: ReviewRegConfig,
                 sampler: torch.Generator) -> None:  # fmt: skip
        super().__init__()
        self.penalty, self.graph, self.reg, self.sampler = penalty, graph, reg, sampler

    def forward(self, encoder: MultimodalEncoder, loss: MetricLoss, inputs: ModalityInputs, rows: Tensor,
                targets: Tensor, generator: torch.Generator) -> tuple[Tensor, dict[str, Tensor]]:  # fmt: skip
        total, value, pen = regularised_loss(encoder, loss, self.penalty, inputs, rows, targets, self.graph,
                                             self.reg, generator, self.sampler)  # fmt: skip
        return total, {"loss": value, "penalty": pen}


def train_graph_regularised(encoder: MultimodalEncoder, loss: MetricLoss, inputs: ModalityInputs,
                            labels: Tensor, train_idx: Tensor, val_idx: Tensor, graph: ReviewGraph,
                            reg: ReviewRegConfig, cfg: MetricTrainConfig | None = None, *,
                            name: str | None = None) -> MetricTrainResult:  # fmt: skip
    r""":func:`~mmsheaf.metric.train.train_metric_encoder` with the graph penalty as its step objective
    (:class:`GraphObjective`): the same batches, Adam groups, gradient clipping, validation MAP@R, early
    stopping and best state, identical to notebook 03's training at ``alpha = 0``. History records add
    ``penalty`` (mean over the epoch's steps).

    **Shapes:** ``labels`` :math:`(N,)`; ``train_idx``, ``val_idx`` :math:`(N_{train},)`, :math:`(N_{val},)`.
    """
    cfg = cfg if cfg is not None else MetricTrainConfig()
    torch.manual_seed(cfg.seed)  # the learned Mahalanobis matrix's initialisation is seeded
    objective = GraphObjective(GraphPenalty(reg, encoder.cfg.embedding_dim), graph, reg,
                               torch.Generator().manual_seed(cfg.seed + _NEIGHBOUR_STREAM))  # fmt: skip
    return train_metric_encoder(encoder, loss, inputs, labels, train_idx, val_idx, cfg,
                                name=f"{name or loss.spec.name} (alpha {reg.alpha:g})",
                                objective=objective)  # fmt: skip


@torch.no_grad()
def inference_ms(encoder: MultimodalEncoder, inputs: ModalityInputs, rows: Tensor, repeats: int = 5) -> float:
    """Median milliseconds per row of :meth:`~mmsheaf.encoders.fusion.MultimodalEncoder.encode` over ``rows``
    (the graph tower's neighbours included)."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        encoder.encode(inputs, rows)
        times.append(time.perf_counter() - start)
    return 1000.0 * statistics.median(times) / max(1, rows.numel())


SCALARS = ("seconds", "best_epoch", "epochs_run", "infer_ms", "params", "graph_params")
"""The per-run numbers of :func:`run_review_specs` besides the val/test metrics."""


class ReviewRunCache(RunCache):
    """Runs as ``<key>.json`` and their embeddings as ``<key>.emb.pt`` in ``folder`` (default
    ``paths.cache_root()/"graphreg_review_runs"``). A run restored from a ledger has its results but no
    embeddings: :func:`review_embeddings` makes them again (the seeded run repeats exactly)."""

    def __init__(self, folder: str | Path | None = None) -> None:
        super().__init__(folder if folder is not None else paths.cache_root() / "graphreg_review_runs")

    def embeddings_path(self, spec: KeyedSpec | str) -> Path:
        return self.folder / f"{spec if isinstance(spec, str) else spec.key()}.emb.pt"


def review_cache() -> ReviewRunCache:
    """The run cache of the experiment: ``paths.cache_root()/"graphreg_review_runs"``."""
    return ReviewRunCache()


def review_embeddings(spec: ReviewRunSpec, cache: ReviewRunCache | None = None) -> dict[str, Tensor]:
    r"""The embeddings of a run: ``train``, ``val``, ``test`` :math:`(N_s, D)` and their ``*_labels``
    :math:`(N_s,)`, from the cache, or made by running the spec when they are not there."""
    cache = cache or review_cache()
    path = cache.embeddings_path(spec)
    if not path.is_file():  # a run restored from a ledger, or never run: train it (again), deterministically
        _run(spec, cache)
    return torch.load(path)


def _fit_regularised(spec: ReviewRunSpec) -> tuple[Any, ModalityInputs, MultimodalEncoder, MetricTrainResult]:
    """The ``"graph-reg"`` run: notebook 03's encoder and loss built as its ``_fit`` does, the graph withheld
    from the encoder and handed to the trainer."""
    ms = spec.metric_spec()
    task = metric.load_task(TASK, **ms.data_options)
    full = metric.task_inputs(task)
    inputs = dataclasses.replace(full, edge_index=None)  # the encoder cannot read the graph
    torch.manual_seed(spec.seed)
    encoder = MultimodalEncoder(inputs, ms.encoder_config(), train_idx=task.train_idx)
    loss = build_loss(ms.loss, num_classes=int(torch.unique(task.labels[task.train_idx]).numel()),
                      embedding_size=encoder.cfg.embedding_dim, **ms.loss_hparams)  # fmt: skip
    graph = ReviewGraph.among(full.edge_index, task.train_idx, task.num_rows)
    res = train_graph_regularised(encoder, loss, inputs, task.labels, task.train_idx, task.val_idx, graph,
                                  spec.reg_config(), ms.train_config(),
                                  name=f"graph-reg {ms.loss} on T2")  # fmt: skip
    return task, inputs, encoder, res


def _run(spec: ReviewRunSpec, cache: ReviewRunCache) -> dict[str, Any]:
    # notebook 03's own run (its private _fit: the same code path, so the same numbers) unless regularised
    if spec.reads_graph_in_loss:
        task, inputs, encoder, res = _fit_regularised(spec)
    else:
        task, inputs, encoder, res = metric._fit(spec.metric_spec())
    out = {"val": res.val, "test": metric.evaluate_encoder(encoder, inputs, task, seed=spec.seed),
           "best_epoch": res.best_epoch, "epochs_run": res.epochs_run, "seconds": res.seconds,
           "infer_ms": inference_ms(encoder, inputs, task.test_idx), "history": res.history,
           "params": sum(p.numel() for p in encoder.parameters()),
           "graph_params": sum(p.numel() for n, p in encoder.named_parameters() if "graph" in n)}  # fmt: skip
    arrays = {}
    for split in ("train", "val", "test"):
        rows = task.split(split)
        arrays[split], arrays[f"{split}_labels"] = encoder.encode(inputs, rows).cpu(), task.labels[rows].cpu()
    fit = torch.randperm(len(arrays["train"]), generator=torch.Generator().manual_seed(spec.seed))[
        :RETRIEVAL_FIT_ROWS
    ]
    out["retrieval"] = retrieval_by_distance(arrays["test"], arrays["test_labels"], arrays["train"][fit],
                                             arrays["train_labels"][fit], seed=spec.seed).to_dict(orient="records")  # fmt: skip
    with atomic_path(cache.embeddings_path(spec)) as tmp:
        torch.save(arrays, tmp)
    return out


def choose_alpha(runs: pd.DataFrame) -> float:
    """The weight of the ``"graph-reg"`` runs with the best mean validation MAP@R over their seeds (ties: the
    smaller weight): the selection is on validation only."""
    reg = runs[runs.variant == "graph-reg"]
    if reg.empty:
        raise ValueError(
            "no graph-reg runs to choose alpha from: pass run_review_specs' table of the selection."
        )
    means = reg.groupby("alpha").val_map_at_r.mean().reset_index()
    return float(means.sort_values(["val_map_at_r", "alpha"], ascending=[False, True]).alpha.iloc[0])


def run_review_specs(specs: Sequence[ReviewRunSpec], cache: ReviewRunCache | None = None,
                     progress: bool = True, desc: str = "review runs") -> pd.DataFrame:  # fmt: skip
    """Run every spec not cached yet and return one row per spec: ``variant, seed, alpha, distance,
    neighbours, loss, modalities, key, cached, seconds, best_epoch, epochs_run, infer_ms, params,
    graph_params``, ``val_<metric>`` (MAP@R, R-precision, P@1), ``test_<metric>`` (those, NMI, AMI, kNN
    accuracy and macro-F1) and ``retrieval`` (the test reviews' MAP@R, P@1 and R-precision under each distance of
    :data:`~mmsheaf.evaluation.distance_retrieval.RETRIEVAL_DISTANCES`, as records); the penalty columns are
    empty or 0 where the run has none."""
    cache = cache if cache is not None else review_cache()

    def row(spec: ReviewRunSpec, result: dict[str, Any]) -> dict[str, Any]:
        reg = spec.reads_graph_in_loss
        return {"variant": spec.variant, "seed": spec.seed, "alpha": spec.alpha if reg else 0.0,
                "distance": spec.distance if reg else "", "neighbours": spec.neighbours if reg else 0,
                "loss": spec.loss, "modalities": " + ".join(spec.metric_spec().encoder_config().modalities),
                **{k: result[k] for k in SCALARS},
                **{f"val_{k}": v for k, v in result["val"].items()},
                **{f"test_{k}": v for k, v in result["test"].items()}, "retrieval": result["retrieval"]}  # fmt: skip

    return run_cached(specs, cache, lambda spec: _run(spec, cache), row, progress=progress, desc=desc,
                      label=lambda s: f"{s.variant} alpha {s.alpha:g} seed {s.seed}")  # fmt: skip
