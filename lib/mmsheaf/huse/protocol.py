r"""What notebook 04 runs: the rows of the HUSE comparison, their run specs, cached runs and searches.

Every row trains on the Women's Clothing reviews, task T2 (label = Class Name, items split 60/20/20, as
notebook 03), with the same towers, embedding size, optimiser, epochs and early stopping
(:func:`~mmsheaf.huse.train.train_huse`), and is scored by :func:`~mmsheaf.huse.evaluate.evaluate_huse` on the
test reviews. The rows (:data:`VARIANTS`):

- ``huse``: HUSE, :math:`\alpha\mathcal{L}_{cls} + \beta\mathcal{L}_{graph} + \gamma\mathcal{L}_{gap}`;
- ``huse-cls``, ``huse-cls-gap``, ``huse-cls-graph``: its ablations (the other weights set to 0);
- ``separate``: one classifier per modality, no shared layer, :math:`\mathcal{L}_{cls}` only;
- ``arcface``, ``supcon``: notebook 03's early-fused encoder with that loss
  (:mod:`~mmsheaf.huse.baselines`).

The semantic graph (HUSE Eq. 4) is the cosine distance of the sentence embeddings of the class texts of the
Division > Department > Class hierarchy (:class:`~mmsheaf.huse.hierarchy.ClassHierarchy`), embedded with the
same sentence encoder as the reviews.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import pandas as pd
import torch
from torch import Tensor, nn

from mmsheaf import paths
from mmsheaf.data.clothing import MetricTask, load_clothing_task
from mmsheaf.data.tables import load_clothing_reviews
from mmsheaf.data.text_cache import embed_texts
from mmsheaf.encoders.fusion import EncoderConfig
from mmsheaf.encoders.inputs import ModalityInputs, task_inputs
from mmsheaf.huse.baselines import FusedModel, MetricObjective
from mmsheaf.huse.evaluate import evaluate_huse, missing_text_curve
from mmsheaf.huse.hierarchy import ClassHierarchy
from mmsheaf.huse.losses import HuseLoss, HuseLossConfig
from mmsheaf.huse.model import HuseModel, HuseOutput
from mmsheaf.huse.train import HuseTrainConfig, HuseTrainResult, train_huse
from mmsheaf.runs import hpo
from mmsheaf.runs.cache import KeyedSpec, RunCache, run_cached
from mmsheaf.runs.keys import canonical_json

__all__ = ["SCHEMA", "VARIANTS", "HuseRunSpec", "HuseTask", "Variant", "huse_cache", "load_huse_task",
           "run_specs", "test_outputs", "tune"]  # fmt: skip

SCHEMA = "mmsheaf.huse-run/1"

_WEIGHT = {"type": "float", "low": 0.01, "high": 10.0, "log": True}
_THRESHOLD = {"type": "float", "low": 0.05, "high": 1.0}


@dataclass(frozen=True)
class Variant:
    """One row of the comparison.

    Args:
        name: Registry name.
        display: Label in tables and figures.
        kind: ``"huse"`` (towers + (shared) classifier + HUSE loss) or ``"fused"`` (early fusion + metric loss).
        terms: The HUSE terms trained (``"cls"``, ``"graph"``, ``"gap"``); the others get weight 0.
        shared: One classification layer for every tower (``False``: one per tower).
        loss: The metric loss of a ``"fused"`` row.
        search: The row's own Optuna space (tuned on validation with the same trial budget for every row).
    """

    name: str
    display: str
    kind: str
    terms: tuple[str, ...] = ()
    shared: bool = True
    loss: str | None = None
    search: Mapping[str, Any] = field(default_factory=dict)


def _huse(name: str, display: str, terms: tuple[str, ...], shared: bool = True) -> Variant:
    space = {"alpha": _WEIGHT} if len(terms) > 1 else {}
    space.update({"beta": _WEIGHT, "threshold": _THRESHOLD} if "graph" in terms else {})
    space.update({"gamma": _WEIGHT} if "gap" in terms else {})
    return Variant(name, display, "huse", terms, shared, search=space)


VARIANTS: Mapping[str, Variant] = {v.name: v for v in (
    _huse("huse", "HUSE", ("cls", "graph", "gap")),
    _huse("huse-cls", "HUSE: L_cls only", ("cls",)),
    _huse("huse-cls-gap", "HUSE: L_cls + L_gap", ("cls", "gap")),
    _huse("huse-cls-graph", "HUSE: L_cls + L_graph", ("cls", "graph")),
    _huse("separate", "Separate models", ("cls",), shared=False),
    Variant("arcface", "ArcFace (early fusion)", "fused", loss="arcface",
            search={"margin": {"type": "float", "low": 0.1, "high": 0.6}, "scale": {"type": "float", "low": 8.0, "high": 64.0, "log": True}}),
    Variant("supcon", "SupCon (early fusion)", "fused", loss="supcon",
            search={"temperature": {"type": "float", "low": 0.03, "high": 0.5, "log": True}}),
)}  # fmt: skip
"""The rows of the comparison, in table order."""


def resolve_variant(name: str) -> Variant:
    if name not in VARIANTS:
        raise ValueError(f"unknown HUSE comparison row {name!r}: choose one of {', '.join(VARIANTS)}.")
    return VARIANTS[name]


@dataclass(frozen=True)
class HuseTask:
    """T2 of the clothing reviews with what HUSE needs besides: the class hierarchy and the semantic graph."""

    task: MetricTask
    inputs: ModalityInputs
    hierarchy: ClassHierarchy
    class_distance: Tensor


@lru_cache(maxsize=4)
def _load(frozen: tuple[tuple[str, Any], ...]) -> HuseTask:
    options = dict(frozen)
    task = load_clothing_task("category", **options)
    rows = load_clothing_reviews(options.get("root")).iloc[task.row_index.numpy()]
    hierarchy = ClassHierarchy.from_table(rows, classes=list(task.label_names), parents="majority")
    class_emb = embed_texts(list(hierarchy.class_texts()), options.get("text_model"),
                            encoder=options.get("text_encoder"), progress=False)  # fmt: skip
    return HuseTask(task, task_inputs(task), hierarchy, hierarchy.semantic_distance(class_emb.float()))


def load_huse_task(**options: Any) -> HuseTask:
    """T2 (``load_clothing_task("category", **options)``), its inputs, hierarchy and semantic graph; once per
    process and data root."""
    options = {"root": str(paths.data_root()), **options}
    return _load(tuple(sorted(options.items())))


@dataclass(frozen=True)
class HuseRunSpec(KeyedSpec):
    """One training run of notebook 04.

    Args:
        variant: A row of :data:`VARIANTS`.
        hparams: The row's own hyperparameters: HUSE's ``alpha, beta, gamma, threshold`` (terms the row does not
            train are set to 0), or the metric loss's.
        encoder: :class:`~mmsheaf.encoders.fusion.EncoderConfig` fields (``modalities`` as a list).
        train: :class:`~mmsheaf.huse.train.HuseTrainConfig` fields (``seed`` comes from ``seed``).
        seed: Seed of the run.
        data_options: Options of :func:`load_huse_task`.
        robustness: Fractions of test queries whose text is removed (:func:`~mmsheaf.huse.evaluate.missing_text_curve`).
    """

    variant: str
    hparams: Mapping[str, Any] = field(default_factory=dict)
    encoder: Mapping[str, Any] = field(default_factory=dict)
    train: Mapping[str, Any] = field(default_factory=dict)
    seed: int = 0
    data_options: Mapping[str, Any] = field(default_factory=dict)
    robustness: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        resolve_variant(self.variant)
        object.__setattr__(self, "robustness", tuple(self.robustness))

    def train_config(self) -> HuseTrainConfig:
        return HuseTrainConfig(**{**self.train, "seed": self.seed})

    def encoder_config(self) -> EncoderConfig:
        enc = dict(self.encoder)
        if "modalities" in enc:
            enc["modalities"] = tuple(enc["modalities"])
        return EncoderConfig(**enc)

    def loss_config(self) -> HuseLossConfig:
        """HUSE's weights: the row's terms from :attr:`hparams` (default 1), the others 0."""
        v = resolve_variant(self.variant)
        weights = {t: float(self.hparams.get(w, 1.0)) if t in v.terms else 0.0
                   for t, w in (("cls", "alpha"), ("graph", "beta"), ("gap", "gamma"))}  # fmt: skip
        return HuseLossConfig(weights["cls"], weights["graph"], weights["gap"],
                              float(self.hparams.get("threshold", 0.5)))  # fmt: skip

    def describe(self) -> dict[str, Any]:
        enc = dataclasses.asdict(self.encoder_config())
        enc["modalities"] = list(enc["modalities"])
        return {"schema": SCHEMA, "variant": self.variant, "hparams": dict(self.hparams), "encoder": enc,
                "train": dataclasses.asdict(self.train_config()), "seed": self.seed,
                "data_options": dict(self.data_options), "robustness": list(self.robustness)}  # fmt: skip


def huse_cache() -> RunCache:
    """The run cache of notebook 04: ``paths.cache_root()/"huse_runs"``."""
    return RunCache(paths.cache_root() / "huse_runs")


def build(spec: HuseRunSpec, data: HuseTask) -> tuple[nn.Module, nn.Module]:
    """The model and objective of ``spec`` (seeded by the caller)."""
    v, task = resolve_variant(spec.variant), data.task
    num_classes = len(task.label_names)
    if v.kind == "fused":
        model = FusedModel(data.inputs, spec.encoder_config(), v.loss or "", num_classes, task.train_idx,
                           **dict(spec.hparams))  # fmt: skip
        return model, MetricObjective(model)
    model = HuseModel.from_inputs(data.inputs, spec.encoder_config(), num_classes, task.train_idx, shared=v.shared)
    return model, HuseLoss(data.class_distance, spec.loss_config())


def _train(spec: HuseRunSpec) -> tuple[HuseTask, nn.Module, HuseTrainResult]:
    data = load_huse_task(**spec.data_options)
    task = data.task
    torch.manual_seed(spec.seed)
    model, objective = build(spec, data)
    res = train_huse(model, objective, data.inputs, task.labels, task.train_idx, task.val_idx,
                     spec.train_config(), name=f"{spec.variant} seed {spec.seed}")  # fmt: skip
    return data, model, res


def _run(spec: HuseRunSpec) -> dict[str, Any]:
    data, model, res = _train(spec)
    task = data.task
    test = evaluate_huse(model, data.inputs, task.labels, task.test_idx, data.hierarchy, train_idx=task.train_idx)
    out: dict[str, Any] = {"val": res.val, "test": test, "best_epoch": res.best_epoch,
                           "epochs_run": res.epochs_run, "seconds": res.seconds, "history": res.history}  # fmt: skip
    if spec.robustness:
        curve = missing_text_curve(model, data.inputs, task.labels, task.test_idx, spec.robustness, seed=spec.seed)
        out["robustness"] = curve.to_dict("records")
    return out


def run_specs(specs: Sequence[HuseRunSpec], cache: RunCache | None = None, progress: bool = True,
              desc: str = "runs") -> pd.DataFrame:  # fmt: skip
    """Run every spec not cached yet and return one row per spec: ``variant, seed, key, cached, seconds,
    best_epoch, epochs_run``, ``val_map_at_r`` and the flat test numbers as ``test_<name>`` (the retrieval matrix
    and robustness records as lists)."""
    cache = cache if cache is not None else huse_cache()

    def row(spec: HuseRunSpec, result: dict[str, Any]) -> dict[str, Any]:
        flat = {f"test_{k}": v for k, v in result["test"].items() if not isinstance(v, list | dict)}
        return {"variant": spec.variant, "seed": spec.seed, "seconds": result["seconds"],
                "best_epoch": result["best_epoch"], "epochs_run": result["epochs_run"],
                "val_map_at_r": result["val"]["map_at_r"], **flat,
                "retrieval": result["test"].get("retrieval"), "robustness": result.get("robustness")}  # fmt: skip

    return run_cached(specs, cache, _run, row, label=lambda s: f"{s.variant} seed {s.seed}", progress=progress,
                      desc=desc)  # fmt: skip


def tune(variant: str, n_trials: int, *, encoder: Mapping[str, Any] | None = None,
         train: Mapping[str, Any] | None = None, data_options: Mapping[str, Any] | None = None, seed: int = 0,
         storage: str | None = None, cache: RunCache | None = None, progress: bool = True):  # fmt: skip
    """Tune a row's own hyperparameters (:attr:`Variant.search`) on the validation MAP@R of the fused embeddings
    with ``n_trials`` Optuna trials (TPE, seeded); a row without any (``huse-cls``, ``separate``) runs once.

    Returns:
        ``(study, best_hparams)``; ``study`` is ``None`` for a row without a search space.
    """
    import optuna

    if not progress:
        optuna.logging.set_verbosity(optuna.logging.WARNING)
    v = resolve_variant(variant)
    encoder, train, data_options = dict(encoder or {}), dict(train or {}), dict(data_options or {})
    cache = cache if cache is not None else huse_cache()
    if not v.search:
        return None, {}
    setting = canonical_json({"variant": v.name, "space": dict(v.search), "encoder": encoder, "train": train,
                              "data": data_options, "seed": seed, "schema": SCHEMA})  # fmt: skip
    name = f"huse-{v.name}-{hashlib.sha256(setting.encode()).hexdigest()[:12]}"
    cfg = hpo.StudyConfig(name=name, storage=storage, direction="maximize", n_trials=n_trials, seed=seed,
                          n_startup_trials=max(1, min(10, n_trials // 2)))  # fmt: skip

    def objective(params: dict[str, Any], trial: Any) -> float:
        run = HuseRunSpec(v.name, params, encoder, train, seed, data_options)
        trial.set_user_attr("run_key", run.key())  # the cached run behind the trial (run ledgers keep it)
        return float(run_specs([run], cache, progress=False)["val_map_at_r"].iloc[0])

    study = hpo.run_study_and_wait(objective, dict(v.search), cfg, progress=progress)
    return study, hpo.best_params(study, dict(v.search))


def test_outputs(spec: HuseRunSpec) -> HuseOutput:
    """The test rows' outputs of ``spec``'s model, trained again (deterministic given the seed, on one thread)
    for the figures that need embeddings (the UMAP); its numbers come from the cached run."""
    data, model, _ = _train(spec)
    return model.encode(data.inputs, data.task.test_idx)
