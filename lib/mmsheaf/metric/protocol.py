r"""The protocol of notebook 03 (angular-margin heads vs contrastive losses): data by name, cached runs over
seeds, tuning, evaluation, robustness and zero-training references.

.. code-block:: python

    spec = MetricRunSpec("item", "arcface", seed=0, train={"epochs": 30})
    runs = run_specs([spec], metric_cache())
    runs[["test_map_at_r", "test_p_at_1", "seconds"]]

Every run is keyed by the sha256 of everything that determines it (task and its options, loss and its
hyperparameters, encoder config, training config, seed, extra evaluations, :data:`SCHEMA`) and cached as one
JSON file, so an interrupted paper run resumes where it stopped. The split of a task is fixed by its
``data_options`` (``seed`` 0 by default); the run's ``seed`` varies initialisation, batches and dropout.
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
from torch import Tensor

from .. import paths
from ..atomic import atomic_path
from ..data.clothing import MetricTask, load_clothing_task
from ..encoders.fusion import EncoderConfig, MultimodalEncoder
from ..encoders.inputs import EmptyModalityError, ModalityInputs, task_inputs
from ..losses import build_loss, resolve_loss
from .train import MetricTrainConfig, train_metric_encoder
from ..evaluation.embeddings import classification_metrics, clustering_metrics, retrieval_metrics
from ..runs import hpo
from ..runs.cache import KeyedSpec, RunCache, run_cached
from ..runs.keys import canonical_json
from ..runs.summary import over_repeats

__all__ = [
    "SCHEMA",
    "MetricRunSpec",
    "evaluate_encoder",
    "load_task",
    "metric_cache",
    "reference_metrics",
    "robustness_eval",
    "run_specs",
    "tabular_features",
    "task_inputs",
    "test_embeddings",
    "tune",
]

SCHEMA = "mmsheaf.metric-learning/1"
"""Version of the cached run format; bump it to invalidate old runs."""

TRAIN_FIELDS = frozenset(f.name for f in dataclasses.fields(MetricTrainConfig))
ENCODER_FIELDS = frozenset(f.name for f in dataclasses.fields(EncoderConfig))
EVALUATIONS = ("robustness",)


def _freeze(options: Mapping[str, Any]) -> tuple[tuple[str, Any], ...]:
    return tuple(sorted((str(k), tuple(v) if isinstance(v, list) else v) for k, v in options.items()))


@lru_cache(maxsize=8)
def _load_task(task: str, frozen: tuple[tuple[str, Any], ...]) -> MetricTask:
    return load_clothing_task(task, **dict(frozen))


def load_task(task: str, **options: Any) -> MetricTask:
    """The clothing-reviews task (``"item"`` / ``"category"``) with ``options`` of
    :func:`~mmsheaf.data.clothing.load_clothing_task` (``seed``, ``train_fraction``, ``max_rows`` ...),
    loaded once per process."""
    return _load_task(task, _freeze(options))


@dataclass(frozen=True)
class MetricRunSpec(KeyedSpec):
    """One training run of notebook 03.

    Args:
        task: ``"item"`` (T1) or ``"category"`` (T2).
        loss: A name of :data:`mmsheaf.losses.METRIC_LOSSES`.
        loss_hparams: The loss's own hyperparameters (defaults filled in by the loss).
        encoder: :class:`~mmsheaf.encoders.fusion.EncoderConfig` fields (``modalities`` as a list).
        train: :class:`~mmsheaf.metric.train.MetricTrainConfig` fields (``seed`` comes from ``seed``).
        seed: Seed of the run.
        data_options: Options of :func:`load_task` (the split's ``seed``, ``train_fraction``, ``max_rows``).
        evaluate: Extra evaluations: ``"robustness"`` (:func:`robustness_eval`).
    """

    task: str
    loss: str
    loss_hparams: Mapping[str, Any] = field(default_factory=dict)
    encoder: Mapping[str, Any] = field(default_factory=dict)
    train: Mapping[str, Any] = field(default_factory=dict)
    seed: int = 0
    data_options: Mapping[str, Any] = field(default_factory=dict)
    evaluate: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "loss", resolve_loss(self.loss).name)
        for name, given, valid in (("train", self.train, TRAIN_FIELDS - {"seed"}),
                                   ("encoder", self.encoder, ENCODER_FIELDS)):  # fmt: skip
            unknown = set(given) - valid
            if unknown:
                raise ValueError(f"unknown {name} settings {sorted(unknown)}: valid ones are {sorted(valid)}.")
        bad = set(self.evaluate) - set(EVALUATIONS)
        if bad:
            raise ValueError(f"unknown evaluations {sorted(bad)}: choose among {EVALUATIONS}.")
        object.__setattr__(self, "evaluate", tuple(self.evaluate))
        self.train_config()
        self.encoder_config()

    def train_config(self) -> MetricTrainConfig:
        return MetricTrainConfig(**{**self.train, "seed": self.seed})

    def encoder_config(self) -> EncoderConfig:
        enc = dict(self.encoder)
        if "modalities" in enc:
            enc["modalities"] = tuple(enc["modalities"])
        return EncoderConfig(**enc)

    def describe(self) -> dict[str, Any]:
        enc = dataclasses.asdict(self.encoder_config())
        enc["modalities"] = list(enc["modalities"])
        return {"schema": SCHEMA, "task": self.task, "data_options": dict(self.data_options), "loss": self.loss,
                "loss_hparams": dict(self.loss_hparams), "encoder": enc,
                "train": dataclasses.asdict(self.train_config()), "seed": self.seed,
                "evaluate": list(self.evaluate)}  # fmt: skip


def metric_cache() -> RunCache:
    """The run cache of notebook 03: ``paths.cache_root()/"metric_runs"``."""
    return RunCache(paths.cache_root() / "metric_runs")


# ------------------------------------------------------------------------------------------------------------
# Evaluation
# ------------------------------------------------------------------------------------------------------------


def _prefixed(prefix: str, metrics: Mapping[str, float]) -> dict[str, float]:
    return {f"{prefix}{k}": float(v) for k, v in metrics.items()}


def evaluate_encoder(encoder: MultimodalEncoder, inputs: ModalityInputs, task: MetricTask,
                     rows: Tensor | None = None, seed: int = 0) -> dict[str, float]:  # fmt: skip
    """Retrieval (MAP@R, R-Precision, P@1), clustering (NMI, AMI) among ``rows`` (default the test rows),
    and for ``category`` kNN classification of those rows from the training rows (accuracy, macro-F1)."""
    rows = task.test_idx if rows is None else rows
    emb = encoder.encode(inputs, rows)
    out = {**retrieval_metrics(emb, task.labels[rows]), **clustering_metrics(emb, task.labels[rows], seed=seed)}
    if task.task == "category":
        train_emb = encoder.encode(inputs, task.train_idx)
        out.update(classification_metrics(train_emb, task.labels[task.train_idx], emb, task.labels[rows]))
    return {k: float(v) for k, v in out.items()}


def _map_at_r_of_queries(emb: Tensor, labels: Tensor, queries: Tensor) -> float:
    """MAP@R averaged over the ``queries`` (bool mask) only, every row serving as a reference."""
    if not bool(torch.isfinite(emb).all()):  # raised here: the ValueError below means "no valid query" only
        raise ValueError("embeddings contain NaN or inf values: check the model (or its learning rate)")
    try:
        return float(retrieval_metrics(emb, labels, query_mask=queries)["map_at_r"])
    except ValueError:  # no valid query in the subset
        return float("nan")


@torch.no_grad()
def robustness_eval(encoder: MultimodalEncoder, inputs: ModalityInputs, task: MetricTask, seed: int = 0,
                    text_fractions: Sequence[float] = (0.0, 0.25, 0.5, 0.75, 1.0),
                    noise_levels: Sequence[float] = (0.0, 0.5, 1.0, 2.0)) -> list[dict[str, Any]]:  # fmt: skip
    r"""Test MAP@R of a trained encoder under missing and noisy inputs.

    - ``text_removed``: the text of a random fraction of the test rows that have one is removed (masked: the
      encoder sees its missing token); nested random sets, the same order for every fraction.
    - ``text_really_missing``: MAP@R over the queries whose text is really missing in the data, clean inputs.
    - ``numerical_noise``: Gaussian noise of ``level`` training standard deviations on every observed
      numerical cell of the test rows.
    - ``modality_removed``: one modality masked for every row.

    Returns:
        One dict per condition: ``condition, level, map_at_r`` (and ``n_queries``).
    """
    test, labels = task.test_idx, task.labels[task.test_idx]
    g = torch.Generator().manual_seed(seed)
    rows: list[dict[str, Any]] = []
    mods = encoder.cfg.modalities
    if "text" in mods:
        has_text = inputs.mask("text")[test]
        candidates = test[has_text]
        order = candidates[torch.randperm(candidates.numel(), generator=g)]
        for p in text_fractions:
            mask = inputs.mask("text").clone()
            mask[order[: int(round(p * order.numel()))]] = False
            emb = encoder.encode(dataclasses.replace(inputs, text_mask=mask), test)
            rows.append({"condition": "text_removed", "level": float(p),
                         "map_at_r": retrieval_metrics(emb, labels)["map_at_r"]})  # fmt: skip
        emb = encoder.encode(inputs, test)
        missing = ~task.text_mask[test]
        rows.append({"condition": "text_really_missing", "level": float(missing.float().mean()),
                     "map_at_r": _map_at_r_of_queries(emb, labels, missing), "n_queries": int(missing.sum())})
        rows.append({"condition": "text_present", "level": float((~missing).float().mean()),
                     "map_at_r": _map_at_r_of_queries(emb, labels, ~missing), "n_queries": int((~missing).sum())})
    if "tabular" in mods and inputs.x_num is not None:
        std = task.numerical_std
        noise = torch.randn(test.numel(), inputs.x_num.size(1), generator=g)
        for level in noise_levels:
            x_num = inputs.x_num.clone()
            x_num[test] = x_num[test] + level * std * noise  # NaN cells stay NaN
            emb = encoder.encode(dataclasses.replace(inputs, x_num=x_num), test)
            rows.append({"condition": "numerical_noise", "level": float(level),
                         "map_at_r": retrieval_metrics(emb, labels)["map_at_r"]})  # fmt: skip
    for mod in mods:
        field_name = {"text": "text_mask", "tabular": "tabular_mask", "graph": "graph_mask"}[mod]
        masked = dataclasses.replace(inputs, **{field_name: torch.zeros(inputs.num_rows, dtype=torch.bool)})
        emb = encoder.encode(masked, test)
        rows.append({"condition": f"without_{mod}", "level": 1.0,
                     "map_at_r": retrieval_metrics(emb, labels)["map_at_r"]})  # fmt: skip
    return rows


def tabular_features(task: MetricTask, rows: Tensor) -> Tensor:
    r"""The tabular inputs of ``rows`` as one vector each: standardised numerical cells (missing as 0, the
    training mean) and one-hot categories (all zeros where missing).

    Shapes:
        - **output:** :math:`(|rows|, F_{num} + \sum_j K_j)`
    """
    onehots = [torch.nn.functional.one_hot(task.categorical[rows, j].clamp(min=0), k).float()
               * (task.categorical[rows, j] >= 0).float().unsqueeze(1)
               for j, k in enumerate(task.num_categories)]  # fmt: skip
    return torch.cat([task.standardized_numerical()[rows], *onehots], dim=1)


def reference_metrics(task: MetricTask) -> dict[str, dict[str, float]]:
    """Zero-training references on the test rows: the frozen sentence embeddings alone (``"text"``) and the
    tabular features alone (``"tabular"``, :func:`tabular_features`), both with cosine neighbours; for
    ``category`` also the kNN classification of the test rows from the training rows."""
    test, train = task.test_idx, task.train_idx
    labels = task.labels[test]
    features = {"text": lambda rows: task.text[rows], "tabular": lambda rows: tabular_features(task, rows)}
    out = {}
    for name, embed in features.items():
        emb = embed(test)
        m = {**retrieval_metrics(emb, labels), **clustering_metrics(emb, labels)}
        if task.task == "category":
            m.update(classification_metrics(embed(train), task.labels[train], emb, labels))
        out[name] = {k: float(v) for k, v in m.items()}
    return out


# ------------------------------------------------------------------------------------------------------------
# Runs
# ------------------------------------------------------------------------------------------------------------


def _fit(spec: MetricRunSpec) -> tuple[MetricTask, ModalityInputs, MultimodalEncoder, Any]:
    task = load_task(spec.task, **spec.data_options)
    inputs = task_inputs(task)
    torch.manual_seed(spec.seed)
    enc_cfg = spec.encoder_config()
    try:
        encoder = MultimodalEncoder(inputs, enc_cfg, train_idx=task.train_idx)
    except EmptyModalityError as exc:  # say which notebook parameter drops it
        raise EmptyModalityError(exc.modality, exc.reason, (
            f"clothing task {spec.task!r}: the {exc.modality!r} modality is empty ({exc.reason}). Drop "
            f"{exc.modality!r} from MODALITIES[{spec.task!r}] in notebook 03's parameters (MetricPlan.modalities; "
            f"the ablation sets that hold it are then skipped for this task), or from this run's "
            f"encoder['modalities'].")) from exc  # fmt: skip
    num_train_classes = int(torch.unique(task.labels[task.train_idx]).numel())
    loss = build_loss(spec.loss, num_classes=num_train_classes, embedding_size=enc_cfg.embedding_dim,
                      **spec.loss_hparams)  # fmt: skip
    res = train_metric_encoder(encoder, loss, inputs, task.labels, task.train_idx, task.val_idx,
                               spec.train_config(), name=f"{spec.loss} on {spec.task}")  # fmt: skip
    return task, inputs, encoder, res


def _run(spec: MetricRunSpec) -> dict[str, Any]:
    task, inputs, encoder, res = _fit(spec)
    out: dict[str, Any] = {"val": res.val, "test": evaluate_encoder(encoder, inputs, task, seed=spec.seed),
                           "best_epoch": res.best_epoch, "epochs_run": res.epochs_run, "seconds": res.seconds,
                           "history": res.history}  # fmt: skip
    if "robustness" in spec.evaluate:
        out["robustness"] = robustness_eval(encoder, inputs, task, seed=spec.seed)
    return out


def test_embeddings(spec: MetricRunSpec, cache: RunCache | None = None) -> Tensor:
    """The test-row embeddings of ``spec``'s trained encoder, kept as ``<key>.test.pt`` in the cache folder;
    when missing, the run is trained again (same seed) to make them.

    Shapes:
        - **output:** :math:`(N_{test}, D)`
    """
    cache = cache if cache is not None else metric_cache()
    path = cache.folder / f"{spec.key()}.test.pt"
    if path.is_file():
        return torch.load(path)
    task, inputs, encoder, _ = _fit(spec)
    emb = encoder.encode(inputs, task.test_idx)
    with atomic_path(path) as tmp:
        torch.save(emb, tmp)
    return emb


def run_specs(specs: Sequence[MetricRunSpec], cache: RunCache | None = None, progress: bool = True,
              desc: str = "runs") -> pd.DataFrame:  # fmt: skip
    """Run every spec not cached yet (checking the cache again just before each run, so processes may share
    it) and return one row per spec: ``task, loss, seed, key, cached, seconds, best_epoch, epochs_run``,
    ``val_<metric>`` and ``test_<metric>``; the robustness records (if any) are in ``robustness``."""
    cache = cache if cache is not None else metric_cache()

    def row(spec: MetricRunSpec, result: dict[str, Any]) -> dict[str, Any]:
        return {"task": spec.task, "loss": spec.loss, "seed": spec.seed, "seconds": result["seconds"],
                "best_epoch": result["best_epoch"], "epochs_run": result["epochs_run"],
                **_prefixed("val_", result["val"]), **_prefixed("test_", result["test"]),
                "robustness": result.get("robustness")}  # fmt: skip

    return run_cached(specs, cache, _run, row, label=lambda spec: f"{spec.task} {spec.loss} seed {spec.seed}",
                      progress=progress, desc=desc)  # fmt: skip


def tune(loss: str, task: str, n_trials: int, *, space: Mapping[str, Any] | None = None,
         encoder: Mapping[str, Any] | None = None, train: Mapping[str, Any] | None = None,
         data_options: Mapping[str, Any] | None = None, seed: int = 0, storage: str | None = None,
         cache: RunCache | None = None, progress: bool = True):  # fmt: skip
    """Tune a loss's own hyperparameters on validation MAP@R with ``n_trials`` Optuna trials (TPE, seeded).

    The space defaults to the loss's :attr:`~mmsheaf.losses.LossSpec.search`. Every trial is a cached
    :class:`MetricRunSpec`; the study is named after a hash of all settings, so a rerun resumes it.

    Returns:
        ``(study, best_hparams)``.
    """
    import optuna

    if not progress:
        optuna.logging.set_verbosity(optuna.logging.WARNING)
    spec_l = resolve_loss(loss)
    space = dict(space if space is not None else spec_l.search)
    encoder, train, data_options = dict(encoder or {}), dict(train or {}), dict(data_options or {})
    cache = cache if cache is not None else metric_cache()
    setting = canonical_json({"loss": spec_l.name, "task": task, "space": space, "encoder": encoder,
                              "train": train, "data": data_options, "seed": seed, "schema": SCHEMA})  # fmt: skip
    name = f"clothing-{task}-{spec_l.name}-{hashlib.sha256(setting.encode()).hexdigest()[:12]}"
    cfg = hpo.StudyConfig(name=name, storage=storage, direction="maximize", n_trials=n_trials, seed=seed,
                          n_startup_trials=max(1, min(10, n_trials // 2)))  # fmt: skip

    def objective(params: dict[str, Any], trial: Any) -> float:
        run = MetricRunSpec(task, spec_l.name, params, encoder, train, seed, data_options)
        trial.set_user_attr("run_key", run.key())  # the cached run behind the trial (run ledgers keep it)
        return float(run_specs([run], cache, progress=False)["val_map_at_r"].iloc[0])

    study = hpo.run_study_and_wait(objective, space, cfg, progress=progress)
    return study, hpo.best_params(study, space)


def summary_table(runs: pd.DataFrame, metrics: Sequence[str], by: Sequence[str] = ("task", "loss")) -> pd.DataFrame:
    """Mean and standard deviation (``ddof=0``) over seeds of ``test_<metric>`` per group, in %
    (:func:`~mmsheaf.runs.summary.over_repeats`), with the mean ``train_seconds`` and ``n_seeds``."""
    out = over_repeats(runs, by, {m: f"test_{m}" for m in metrics}, scale=100).drop(columns="n")
    grouped = runs.groupby(list(by), sort=False)
    out["train_seconds"] = grouped["seconds"].mean().to_numpy()
    out["n_seeds"] = grouped["seed"].nunique().to_numpy()
    return out


def robustness_frame(runs: pd.DataFrame) -> pd.DataFrame:
    """The robustness records of ``runs`` as one long frame (``task, loss, seed`` plus the record)."""
    rows = []
    for _, r in runs.iterrows():
        for rec in r["robustness"] or []:
            rows.append({"task": r["task"], "loss": r["loss"], "seed": r["seed"], **rec})
    return pd.DataFrame(rows)
