"""The recommendation protocol of notebook 02: data by name, cached runs over seeds, tuning, robustness, and
the tables.

A run is a :class:`RecRunSpec` (dataset, model, hyperparameters, training settings, seed). Its result (the
validation and test metrics at the best epoch, the training curve, optional robustness curves and item
embeddings) is cached on disk under a hash of the full spec, so an interrupted paper run resumes where it
stopped and a changed setting is recomputed. :func:`tune` searches each model's hyperparameters with Optuna
(:mod:`mmsheaf.runs.hpo`) on validation Recall@20, every trial being a cached run. :func:`results_table`,
:func:`ablation_table` and :func:`robustness_frame` turn the runs into the notebook's tables.

Protocol (MMRec, Zhou et al. 2023): per-user random 8:1:1 split with a fixed seed, full ranking over all
items with the user's training items excluded, Recall@K and NDCG@K, early stopping on validation Recall@20.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache, partial
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from mmsheaf import paths
from mmsheaf.atomic import atomic_path
from mmsheaf.data.interactions import InteractionData
from mmsheaf.data.coldstart import load_ml1m
from mmsheaf.data.movielens import load_ml100k
from mmsheaf.recsys.evaluate import ranking_metrics
from mmsheaf.recsys.registry import build_recommender, resolve_recommender
from mmsheaf.recsys.synthetic import planted_interactions
from mmsheaf.recsys.train import RecTrainConfig, fit_recommender
from mmsheaf.runs import hpo
from mmsheaf.runs.cache import KeyedSpec, RunCache, run_cached
from mmsheaf.report import Latex, latex_escape, mean_std
from mmsheaf.runs.keys import canonical_json, set_seed
from mmsheaf.runs.settings import settings_text, split_by_fields
from mmsheaf.runs.summary import over_repeats

__all__ = [
    "DATASETS",
    "FULL_VARIANT",
    "RANKING_METRICS",
    "RecRunSpec",
    "RecRunCache",
    "TRAIN_FIELDS",
    "ablation_table",
    "load_interactions",
    "results_table",
    "robustness_curves",
    "robustness_frame",
    "run_specs",
    "split_params",
    "summarise_runs",
    "tune",
    "tuned_params_text",
]

SCHEMA = "mmsheaf.recsys-run/2"  # 2: BPR negatives are drawn from the training catalogue only (not cold items)
TRAIN_FIELDS: frozenset[str] = frozenset(f.name for f in dataclasses.fields(RecTrainConfig))
"""Names that go to :class:`RecTrainConfig`; every other hyperparameter goes to the model."""


def _ml100k(**options: Any) -> InteractionData:
    return load_ml100k(split="random", **options)


def _ml100k_cold(**options: Any) -> InteractionData:
    return load_ml100k(split="cold", **options)


DATASETS: dict[str, Callable[..., InteractionData]] = {
    "ml100k": _ml100k,
    "ml100k-cold": _ml100k_cold,
    "ml1m-cold": partial(load_ml1m, protocol="cold"),
    "ml1m-warm": partial(load_ml1m, protocol="warm"),
    "ml1m-hybrid": partial(load_ml1m, protocol="hybrid"),
    "planted": planted_interactions,
}
"""Interaction datasets by name: MovieLens-100K (random 8:1:1 and cold-start splits; ``text="title+plot"``
among the options gives its items plots), MovieLens-1M item cold start under its three protocols
(:func:`~mmsheaf.data.coldstart.load_ml1m`) and the planted toy."""


@lru_cache(maxsize=8)
def _load(name: str, options_json: str) -> InteractionData:
    return DATASETS[name](**json.loads(options_json))


def load_interactions(name: str, **options: Any) -> InteractionData:
    """The dataset ``name`` of :data:`DATASETS` with loader ``options`` (memoised per name and options)."""
    if name not in DATASETS:
        raise ValueError(f"unknown interaction dataset {name!r}: choose one of {sorted(DATASETS)}.")
    return _load(name, json.dumps(options, sort_keys=True))


def split_params(params: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split hyperparameters into ``(model_hparams, train_settings)`` by :data:`TRAIN_FIELDS`."""
    return split_by_fields(params, TRAIN_FIELDS)


@dataclass(frozen=True)
class RecRunSpec(KeyedSpec):
    """One training run.

    Args:
        dataset: A name of :data:`DATASETS`.
        model: A registered recommender (:func:`~mmsheaf.recsys.models.build_recommender`).
        hparams: The model's hyperparameters.
        train: :class:`RecTrainConfig` fields (``seed`` is taken from ``seed``).
        seed: Seed of initialisation, sampling and robustness draws.
        data_options: Options of the dataset loader (e.g. ``{"num_users": 100}``).
        robustness: Fractions of items whose content modalities are removed at test time (empty: none).
        save_embeddings: Keep the trained item and user embeddings beside the result.
    """

    dataset: str
    model: str
    hparams: Mapping[str, Any] = field(default_factory=dict)
    train: Mapping[str, Any] = field(default_factory=dict)
    seed: int = 0
    data_options: Mapping[str, Any] = field(default_factory=dict)
    robustness: tuple[float, ...] = ()
    save_embeddings: bool = False

    def __post_init__(self) -> None:
        unknown = set(self.train) - TRAIN_FIELDS
        if unknown:
            raise ValueError(f"unknown training settings {sorted(unknown)}: valid ones are {sorted(TRAIN_FIELDS)}.")
        if any(not 0.0 <= f <= 1.0 for f in self.robustness):
            raise ValueError(f"robustness fractions must be in [0, 1], got {self.robustness}.")

    def config(self) -> RecTrainConfig:
        return RecTrainConfig(**{**self.train, "seed": self.seed})

    def describe(self) -> dict[str, Any]:
        """Everything that determines the run: the model's hyperparameters *with its defaults filled in*, so a
        changed default is a new run, never a stale cached one."""
        cfg = dataclasses.asdict(self.config())
        cfg["ks"] = list(cfg["ks"])
        hparams = {**resolve_recommender(self.model).defaults(), **self.hparams}
        return {"schema": SCHEMA, "dataset": self.dataset, "data_options": dict(self.data_options),
                "model": self.model, "hparams": hparams, "train": cfg, "seed": self.seed,
                "robustness": list(self.robustness), "save_embeddings": self.save_embeddings}  # fmt: skip


class RecRunCache(RunCache):
    """Results of :class:`RecRunSpec` runs as ``<key>.json`` (and ``<key>.pt`` embeddings) in ``folder``
    (default ``paths.cache_root()/"recsys_runs"``)."""

    def __init__(self, folder: str | Path | None = None) -> None:
        super().__init__(folder if folder is not None else paths.cache_root() / "recsys_runs")

    def embeddings(self, spec: RecRunSpec) -> dict[str, torch.Tensor]:
        """The saved ``{"user", "item"}`` embeddings of a run made with ``save_embeddings=True``.

        When the result came from a run ledger (:mod:`mmsheaf.runs.ledger`, which keeps results but not tensors),
        the run is trained again with its seed to write them."""
        if not spec.save_embeddings:
            raise ValueError("this spec does not save embeddings: make it with save_embeddings=True.")
        path = self.folder / f"{spec.key()}.pt"
        if not path.exists():
            _run(spec, self)
        return torch.load(path)


@torch.no_grad()
def robustness_curves(model: torch.nn.Module, data: InteractionData, fractions: Sequence[float], seed: int = 0,
                      modalities: Sequence[str] | None = None) -> list[dict[str, float]]:  # fmt: skip
    """Test metrics when a content modality is removed for a fraction of the items.

    For each item modality (default: every one ``data`` has) and each fraction :math:`p`, the modality's mask
    is set to ``False`` for a random :math:`\\lceil p I \\rceil` items (the same random order for every
    :math:`p`, so the sets are nested) and the trained ``model`` is evaluated on the test split.

    Returns:
        One dict per (modality, fraction): ``modality, fraction`` and the test metrics.
    """
    model.eval()
    mods = list(modalities) if modalities is not None else [m for m in data.item_features if m != "id"]
    rows = []
    for mod in mods:
        order = torch.randperm(data.num_items, generator=torch.Generator().manual_seed(seed))
        for p in fractions:
            k = int(round(p * data.num_items))
            dropped = data.drop_modality("item", mod, order[:k]) if k else data
            metrics = ranking_metrics(*model(dropped), dropped, split="test")
            rows.append({"modality": mod, "fraction": float(p), **metrics})
    return rows


def _run(spec: RecRunSpec, cache: RecRunCache) -> dict[str, Any]:
    data = load_interactions(spec.dataset, **spec.data_options)
    set_seed(spec.seed)
    model = build_recommender(spec.model, data, **spec.hparams)
    res = fit_recommender(model, data, spec.config(), name=f"{spec.model} on {spec.dataset}")
    out: dict[str, Any] = {"val": res.val, "test": res.test, "best_epoch": res.best_epoch,
                           "epochs_run": res.epochs_run, "seconds": res.seconds, "ms_per_epoch": res.ms_per_epoch,
                           "history": res.history}  # fmt: skip
    if spec.robustness:
        out["robustness"] = robustness_curves(model, data, spec.robustness, seed=spec.seed)
    if spec.save_embeddings:
        model.eval()
        with torch.no_grad():
            user_emb, item_emb = model(data)
        with atomic_path(cache.folder / f"{spec.key()}.pt") as tmp:
            torch.save({"user": user_emb.cpu(), "item": item_emb.cpu()}, tmp)
    return out


def run_specs(specs: Sequence[RecRunSpec], cache: RecRunCache | None = None, progress: bool = True,
              desc: str = "runs") -> pd.DataFrame:  # fmt: skip
    """Run every spec not cached yet (checking the cache again just before each run, so processes may share
    it) and return one row per spec: ``dataset, model, seed, key, cached``, ``val_<metric>``,
    ``test_<metric>``, ``best_epoch, epochs_run, seconds, ms_per_epoch`` and the raw ``result`` dict."""
    cache = cache if cache is not None else RecRunCache()

    def row(spec: RecRunSpec, result: dict[str, Any]) -> dict[str, Any]:
        return {"dataset": spec.dataset, "model": spec.model, "seed": spec.seed,
                **{f"val_{k}": v for k, v in result["val"].items()},
                **{f"test_{k}": v for k, v in result["test"].items()},
                **{k: result[k] for k in ("best_epoch", "epochs_run", "seconds", "ms_per_epoch")},
                "result": result}  # fmt: skip

    return run_cached(specs, cache, lambda spec: _run(spec, cache), row,
                      label=lambda spec: f"{spec.model} seed {spec.seed}", progress=progress, desc=desc)  # fmt: skip


def summarise_runs(df: pd.DataFrame, metrics: Sequence[str] = ("recall@10", "recall@20", "ndcg@10", "ndcg@20"),
                   by: Sequence[str] = ("model",), split: str = "test") -> pd.DataFrame:  # fmt: skip
    """Mean and (population) standard deviation over seeds (:func:`~mmsheaf.runs.summary.over_repeats`):
    columns ``*by``, every ``<metric>``, then every ``std_<metric>``, then ``n_seeds``."""
    out = over_repeats(df, by, {m: f"{split}_{m}" for m in metrics}, count="n_seeds")
    return out[[*by, *metrics, *(f"std_{m}" for m in metrics), "n_seeds"]]


def tune(
    model: str,
    dataset: str,
    space: Mapping[str, Any],
    n_trials: int,
    *,
    hparams: Mapping[str, Any] | None = None,
    train: Mapping[str, Any] | None = None,
    data_options: Mapping[str, Any] | None = None,
    seed: int = 0,
    storage: str | None = None,
    cache: RecRunCache | None = None,
    progress: bool = True,
):
    """Tune ``model`` on validation Recall@20 with ``n_trials`` Optuna trials (TPE, seeded).

    Every trial is a cached :class:`RecRunSpec` run with the trial's parameters over ``hparams`` and ``train``
    (parameters named like :class:`RecTrainConfig` fields go to training). The study is named after a hash of
    all settings, so a changed space or budget starts a new study while a rerun resumes the old one; it lives
    in :mod:`mmsheaf.runs.hpo`'s storage (``storage``: ``None`` for the embedded journal file, or any SQLAlchemy URL
    to share it between machines).

    Returns:
        ``(study, best)``: the Optuna study and a dict with ``hparams`` and ``train`` of the best trial.
    """
    import optuna


    if not progress:
        optuna.logging.set_verbosity(optuna.logging.WARNING)
    hparams, train, data_options = dict(hparams or {}), dict(train or {}), dict(data_options or {})
    cache = cache if cache is not None else RecRunCache()
    setting = canonical_json({"model": model, "dataset": dataset, "space": space, "hparams": hparams,
                              "train": train, "data": data_options, "seed": seed, "schema": SCHEMA})  # fmt: skip
    name = f"{dataset}-{model}-{hashlib.sha256(setting.encode()).hexdigest()[:12]}"
    cfg = hpo.StudyConfig(name=name, storage=storage, direction="maximize", n_trials=n_trials, seed=seed)

    def objective(params: dict[str, Any], trial: Any) -> float:
        model_hp, train_hp = split_params(params)
        spec = RecRunSpec(dataset, model, {**hparams, **model_hp}, {**train, **train_hp}, seed, data_options)
        trial.set_user_attr("run_key", spec.key())  # the cached run behind the trial (run ledgers keep it)
        df = run_specs([spec], cache, progress=False)
        return float(df["val_recall@20"].iloc[0])

    study = hpo.run_study_and_wait(objective, space, cfg, progress=progress)
    best_model, best_train = split_params(hpo.best_params(study, space))
    return study, {"hparams": {**hparams, **best_model}, "train": {**train, **best_train}}


# ------------------------------------------------------------------------------------------------------------
# Tables
# ------------------------------------------------------------------------------------------------------------
RANKING_METRICS: tuple[str, ...] = ("recall@10", "recall@20", "ndcg@10", "ndcg@20")
"""The metrics of the main table, in its column order."""

FULL_VARIANT = "tuned (diagonal maps, all modalities)"
"""The ablation table's row of the tuned model itself (the main runs)."""


def tuned_params_text(best: Mapping[str, Mapping[str, Any]]) -> str:
    """A model's tuned settings (``best`` of :func:`tune`) in one line: its hyperparameters and the training's
    ``lr``, ``reg_weight`` and ``batch_size``, as ``name=value`` sorted by name (floats to 2 significant
    digits)."""
    train = {k: v for k, v in best["train"].items() if k in ("lr", "reg_weight", "batch_size")}
    return settings_text(best["hparams"], train)


def results_table(summary: pd.DataFrame,
                  tuned: Mapping[str, Mapping[str, Any]]) -> tuple[pd.DataFrame, pd.DataFrame]:  # fmt: skip
    r"""The main table: every model's test metrics (mean and std over seeds) and its tuned settings.

    Args:
        summary: :func:`summarise_runs` of the main runs (by ``model``, every metric of
            :data:`RANKING_METRICS`).
        tuned: each model's ``best`` of :func:`tune`, by model name.

    Returns:
        ``(table, tex)``: the numbers (``model``, the four metrics, ``std_ndcg@20``, ``params``) and their
        LaTeX version (display names, ``mean $\pm$ std`` to 4 decimals, each column's best in bold).
    """
    missing = [m for m in summary.model if m not in tuned]
    if missing:
        raise ValueError(f"no tuned settings for {missing}: pass tune()'s best of every model in the summary.")
    params = summary.model.map(lambda m: tuned_params_text(tuned[m]))
    table = summary.assign(params=params)[["model", *RANKING_METRICS, "std_ndcg@20", "params"]]
    tex = pd.DataFrame({"Model": [Latex(latex_escape(resolve_recommender(m).display)) for m in summary.model]})
    for m in RANKING_METRICS:
        best = summary[m].max()
        tex[m] = [mean_std(a, b, 4, bold=a == best, spaced=True)
                  for a, b in zip(summary[m], summary[f"std_{m}"])]  # fmt: skip
    tex["Tuned hyperparameters"] = [Latex(f"\\scriptsize {latex_escape(p)}") for p in params]
    return table, tex


def ablation_table(runs: pd.DataFrame, variants: Mapping[str, pd.DataFrame],
                   model: str = "mm-sheaf") -> tuple[pd.DataFrame, pd.DataFrame]:  # fmt: skip
    r"""The ablation table: the tuned ``model`` (its rows of the main ``runs``, labelled :data:`FULL_VARIANT`)
    and each variant's runs, test Recall@20 and NDCG@20 over seeds.

    Args:
        runs: the main runs (:func:`run_specs`), with the rows of ``model``.
        variants: the runs of each variant (:func:`run_specs`), by label.
        model: the ablated model.

    Returns:
        ``(table, tex)``: ``variant``, the two metrics with their ``std_``, ``n_seeds``; and the LaTeX version
        (``mean $\pm$ std`` to 4 decimals).
    """
    if not (runs.model == model).any():
        raise ValueError(f"the main runs have no rows of {model!r}: pass the runs the ablations change.")
    full = runs[runs.model == model].assign(variant=FULL_VARIANT)
    parts = [full, *(df.assign(variant=label) for label, df in variants.items())]
    table = summarise_runs(pd.concat(parts), by=("variant",))
    table = table[["variant", "recall@20", "std_recall@20", "ndcg@20", "std_ndcg@20", "n_seeds"]]
    tex = pd.DataFrame({
        "Variant": [Latex(latex_escape(v)) for v in table.variant],
        **{head: [mean_std(a, b, 4, spaced=True) for a, b in zip(table[m], table[f"std_{m}"])]
           for head, m in (("Recall@20", "recall@20"), ("NDCG@20", "ndcg@20"))},
    })  # fmt: skip
    return table, tex


def robustness_frame(runs: pd.DataFrame, models: Sequence[str] | None = None) -> pd.DataFrame:
    """The robustness curves of ``runs`` (:func:`run_specs` of specs with ``robustness``) as one long frame:
    one row per run, modality and fraction, with the test metrics, ``model`` (its name), ``model_name`` (its
    display name) and ``seed``; only the rows of ``models`` when given (the index keeps the gaps of the
    others)."""
    rows = [{**r, "model": row.model, "seed": row.seed}
            for row in runs.itertuples() for r in row.result.get("robustness", [])]  # fmt: skip
    frame = pd.DataFrame(rows)
    if frame.empty:
        raise ValueError("these runs have no robustness curves: run specs made with robustness=(fractions, ...).")
    frame.insert(frame.columns.get_loc("model") + 1, "model_name",
                 frame.model.map(lambda m: resolve_recommender(m).display))  # fmt: skip
    return frame if models is None else frame[frame.model.isin(list(models))]
