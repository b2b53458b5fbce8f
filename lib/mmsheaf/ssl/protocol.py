r"""What notebook 06 runs: self-supervised run specs, their cached runs and the searches.

A run (:class:`SSLRunSpec`) trains one :class:`~mmsheaf.ssl.methods.SSLModel` on one image set
(:data:`~mmsheaf.data.images.IMAGE_DATASETS`: MNIST-5k, or scikit-learn's digits resized to 28x28) with one
seed, and keeps its scores and diagnostics history (:func:`~mmsheaf.ssl.train.train_ssl`). The split of the
images is fixed (``data_options``' ``seed``, default 0) whatever the run's seed.

**Search** (:func:`tune`): the published settings are the starting point (:class:`SSLConfig`'s defaults: Barlow
Twins' :math:`\lambda = 5 \cdot 10^{-3}`, VICReg's 25/25/1, BYOL's :math:`\tau_0 = 0.99`, SimCLR's temperature
0.2); the same number of Optuna TPE trials per method searches the learning rate and the method's own
parameters (:data:`METHOD_SEARCH`) on the validation images' k-NN accuracy, and the defaults are kept unless a
trial beats them there. Nothing is selected on the test images.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import pandas as pd
import torch
from torch import nn

from mmsheaf import paths
from mmsheaf.data.augment import ImageAugment
from mmsheaf.data.images import IMAGE_DATASETS, ImageSplits, load_images
from mmsheaf.encoders.fusion import EncoderConfig
from mmsheaf.runs import hpo
from mmsheaf.runs.cache import KeyedSpec, RunCache, run_cached
from mmsheaf.runs.keys import canonical_json
from mmsheaf.runs.settings import split_by_fields
from mmsheaf.ssl.methods import SSLConfig, SSLModel, resolve_method
from mmsheaf.ssl.reviews import ReviewBackbone, RowViews, load_review_splits
from mmsheaf.ssl.train import SCORES, SSLTrainConfig, train_ssl

__all__ = [
    "METHOD_SEARCH",
    "SCHEMA",
    "SHARED_SEARCH",
    "SOURCES",
    "TRAIN_KEYS",
    "SSLRunSpec",
    "Source",
    "run_specs",
    "split_params",
    "ssl_cache",
    "tune",
]  # fmt: skip

SCHEMA = "mmsheaf.ssl-run/1"

TRAIN_KEYS: tuple[str, ...] = ("lr", "weight_decay")
"""Searched parameters that belong to the training config; the others are :class:`SSLConfig` fields."""

SHARED_SEARCH: Mapping[str, Any] = {"lr": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True}}
"""Searched for every trained method."""

METHOD_SEARCH: Mapping[str, Mapping[str, Any]] = {
    "simsiam": {"pred_hidden": {"type": "categorical", "choices": [16, 32, 64, 128]}},
    "byol": {"tau": {"type": "float", "low": 0.9, "high": 0.999}},
    "barlow": {"barlow_lambda": {"type": "float", "low": 1e-3, "high": 2e-2, "log": True}},
    "vicreg": {"vicreg_sim": {"type": "float", "low": 5.0, "high": 50.0, "log": True}},
    "simclr": {"temperature": {"type": "float", "low": 0.05, "high": 1.0, "log": True}},
    "supervised": {},
}
"""Each method's own searched parameters around its published value (the ranges are ours): SimSiam's predictor
bottleneck, BYOL's base EMA rate, Barlow Twins' off-diagonal weight, VICReg's invariance weight against the
fixed variance (25) and covariance (1) weights, SimCLR's temperature."""


@dataclass(frozen=True)
class Source:
    """A data set of the study: how it loads, how its two views are made and which backbone reads it.

    Args:
        load: ``data_options -> splits`` (:class:`~mmsheaf.data.images.ImageSplits` or
            :class:`~mmsheaf.ssl.reviews.RowSplits`).
        views: ``augment options -> views`` (an object with ``two_views(x, generator)``).
        backbone: ``(splits, encoder options, views) -> backbone``; ``None``: the model's default CNN.
    """

    load: Callable[[Mapping[str, Any]], Any]
    views: Callable[[Mapping[str, Any]], Any]
    backbone: Callable[[Any, Mapping[str, Any], Any], nn.Module] | None = None


@lru_cache(maxsize=4)
def _images(dataset: str, frozen: tuple[tuple[str, Any], ...]) -> ImageSplits:
    return load_images(dataset, **dict(frozen))


def _image_source(name: str) -> Source:
    return Source(lambda options: _images(name, tuple(sorted(options.items()))),
                  lambda aug: ImageAugment(**{k: tuple(v) if isinstance(v, list) else v for k, v in aug.items()}))  # fmt: skip


SOURCES: Mapping[str, Source] = {
    **{name: _image_source(name) for name in IMAGE_DATASETS},
    "clothing-t2": Source(lambda options: load_review_splits(**options), lambda aug: RowViews(**aug),
                          lambda data, enc, views: ReviewBackbone(data, _encoder_config(enc), views)),
}  # fmt: skip
"""The data sets by name: the images of :data:`~mmsheaf.data.images.IMAGE_DATASETS` (a CNN on augmented images)
and ``"clothing-t2"`` (notebook 03's encoder on T2's reviews, :mod:`~mmsheaf.ssl.reviews`)."""


def _encoder_config(options: Mapping[str, Any]) -> EncoderConfig:
    enc = dict(options)
    if "modalities" in enc:
        enc["modalities"] = tuple(enc["modalities"])
    return EncoderConfig(**enc)


def resolve_source(name: str) -> Source:
    if name not in SOURCES:
        raise ValueError(f"unknown data set {name!r}: choose one of {', '.join(SOURCES)}.")
    return SOURCES[name]


@dataclass(frozen=True)
class SSLRunSpec(KeyedSpec):
    """One self-supervised training run.

    Args:
        dataset: A key of :data:`~mmsheaf.data.images.IMAGE_DATASETS`.
        model: :class:`~mmsheaf.ssl.methods.SSLConfig` fields, ``method`` included.
        train: :class:`~mmsheaf.ssl.train.SSLTrainConfig` fields (``seed`` comes from :attr:`seed`).
        augment: The views' settings: :class:`~mmsheaf.data.augment.ImageAugment` fields for images,
            :class:`~mmsheaf.ssl.reviews.RowViews` fields for the reviews.
        seed: Seed of the initialisation, batch order and augmentations.
        data_options: Options of the data set's loader (:attr:`Source.load`; for images the split's seed).
        encoder: :class:`~mmsheaf.encoders.fusion.EncoderConfig` fields of the reviews' backbone (images: none).
    """

    dataset: str
    model: Mapping[str, Any]
    train: Mapping[str, Any] = field(default_factory=dict)
    augment: Mapping[str, Any] = field(default_factory=dict)
    seed: int = 0
    data_options: Mapping[str, Any] = field(default_factory=dict)
    encoder: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if "method" not in self.model:
            raise ValueError("model must name its method, e.g. {'method': 'simsiam'}.")
        source = resolve_source(self.dataset)
        if self.encoder and source.backbone is None:
            raise ValueError(
                f"{self.dataset} is read by the study's CNN: encoder options apply to the reviews only."
            )
        self.config(), self.train_config(), self.views()  # validate now, not mid-run

    @property
    def method(self) -> str:
        return str(self.model["method"])

    def config(self) -> SSLConfig:
        return SSLConfig(**dict(self.model))

    def train_config(self) -> SSLTrainConfig:
        epochs = {"epochs": 0} if not resolve_method(self.method).loss else {}  # the random reference
        return SSLTrainConfig(**{**self.train, **epochs, "seed": self.seed})

    def views(self) -> Any:
        """The two-view augmentation of :attr:`augment` for this data set."""
        return resolve_source(self.dataset).views(self.augment)

    def backbone(self, data: Any) -> nn.Module | None:
        """The backbone for ``data`` (``None``: the model's default CNN)."""
        source = resolve_source(self.dataset)
        return source.backbone(data, self.encoder, self.views()) if source.backbone is not None else None

    def describe(self) -> dict[str, Any]:
        cfg = dataclasses.asdict(self.config())
        cfg["widths"] = list(cfg["widths"])
        views = {
            k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self.views()).items()
        }
        out = {"schema": SCHEMA, "dataset": self.dataset, "model": cfg,
               "train": dataclasses.asdict(self.train_config()), "augment": views, "seed": self.seed,
               "data_options": dict(self.data_options)}  # fmt: skip
        if resolve_source(self.dataset).backbone is not None:
            enc = dataclasses.asdict(_encoder_config(self.encoder))
            out["encoder"] = {**enc, "modalities": list(enc["modalities"])}
        return out


def ssl_cache() -> RunCache:
    """The run cache of notebook 06: ``paths.cache_root()/"ssl_runs"``."""
    return RunCache(paths.cache_root() / "ssl_runs")


def _run(spec: SSLRunSpec) -> dict[str, Any]:
    data = resolve_source(spec.dataset).load(spec.data_options)
    torch.manual_seed(spec.seed)
    channels = data.train_x.size(1) if data.train_x.dim() == 4 else 1
    model = SSLModel(
        spec.config(), num_classes=data.num_classes, in_channels=channels, backbone=spec.backbone(data)
    )
    res = train_ssl(model, data, spec.views(), spec.train_config(),
                    name=f"{spec.dataset} {spec.method} seed {spec.seed}")  # fmt: skip
    return {"scores": res.scores, "history": res.history, "seconds": res.seconds, "diverged": res.diverged,
            "steps": res.steps}  # fmt: skip


def run_specs(specs: Sequence[SSLRunSpec], cache: RunCache | None = None, progress: bool = True,
              desc: str = "runs") -> pd.DataFrame:  # fmt: skip
    """Run every spec not cached yet and return one row per spec: ``dataset, method, similarity, seed, key,
    cached, seconds, diverged``, the scores (:data:`~mmsheaf.ssl.train.SCORES`), and ``history`` and
    ``spectrum`` (of the embeddings) as lists."""
    cache = cache if cache is not None else ssl_cache()

    def row(spec: SSLRunSpec, result: dict[str, Any]) -> dict[str, Any]:
        s = result["scores"]
        return {"dataset": spec.dataset, "method": spec.method, "similarity": spec.config().distance,
                "seed": spec.seed, "seconds": result["seconds"], "diverged": result["diverged"],
                **{c: s.get(c, float("nan")) for c in SCORES}, "history": result["history"],
                "spectrum": s.get("spectrum", [])}  # fmt: skip

    return run_cached(specs, cache, _run, row, label=lambda s: f"{s.dataset} {s.method} seed {s.seed}",
                      progress=progress, desc=desc)  # fmt: skip


def split_params(params: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Searched parameters as ``(model changes, train changes)`` (:data:`TRAIN_KEYS` go to the training
    config)."""
    return split_by_fields(params, TRAIN_KEYS)


def _value(val_knn_acc: float) -> float:
    """A run's search value: its validation k-NN accuracy, 0 for a run without one (diverged)."""
    return 0.0 if math.isnan(val_knn_acc) else val_knn_acc


def tune(method: str, n_trials: int, *, dataset: str = "mnist5k", model: Mapping[str, Any] | None = None,
         train: Mapping[str, Any] | None = None, augment: Mapping[str, Any] | None = None,
         data_options: Mapping[str, Any] | None = None, encoder: Mapping[str, Any] | None = None,
         seed: int = 0, storage: str | None = None,
         cache: RunCache | None = None, progress: bool = True) -> tuple[Any, dict[str, Any], list[str]]:  # fmt: skip
    """Tune ``method`` on the validation k-NN accuracy (module docstring): ``n_trials`` Optuna trials (TPE after
    ``min(10, n_trials // 2)`` random start-up trials, seeded) over :data:`SHARED_SEARCH` and its
    :data:`METHOD_SEARCH`, against the published defaults (one run).

    Args:
        method: A trained method of :data:`~mmsheaf.ssl.methods.METHODS`.
        n_trials: Trials of the search.
        dataset, model, train, augment, data_options, encoder, seed: As :class:`SSLRunSpec` (``model``
            without ``method``: the settings shared by every method, e.g. ``dim``).

    Returns:
        ``(study, best, run_keys)``: the Optuna study, the winning parameters (``{}``: the defaults won) as
        searched names (split them with :func:`split_params`), and the run keys of the defaults and the trials.
    """
    import optuna

    if not progress:
        optuna.logging.set_verbosity(optuna.logging.WARNING)
    if resolve_method(method).loss is None:
        raise ValueError(f"{method!r} is not trained: there is nothing to tune.")
    model, train, augment = dict(model or {}), dict(train or {}), dict(augment or {})
    data_options, encoder = dict(data_options or {}), dict(encoder or {})
    cache = cache if cache is not None else ssl_cache()
    space = {**SHARED_SEARCH, **METHOD_SEARCH.get(method, {})}

    def spec(params: Mapping[str, Any]) -> SSLRunSpec:
        m, t = split_params(params)
        return SSLRunSpec(dataset, {**model, "method": method, **m}, {**train, **t}, augment, seed, data_options,
                          encoder)  # fmt: skip

    default = spec({})
    default_value = _value(float(run_specs([default], cache, progress=False)["val_knn_acc"].iloc[0]))
    setting = canonical_json({"method": method, "space": space, "dataset": dataset, "model": model,
                              "train": train, "augment": augment, "data": data_options, "seed": seed,
                              "schema": SCHEMA, **({"encoder": encoder} if encoder else {})})  # fmt: skip
    name = f"ssl-{method}-{hashlib.sha256(setting.encode()).hexdigest()[:12]}"
    cfg = hpo.StudyConfig(name=name, storage=storage, direction="maximize", n_trials=n_trials, seed=seed,
                          n_startup_trials=max(1, min(10, n_trials // 2)))  # fmt: skip

    def objective(params: dict[str, Any], trial: Any) -> float:
        run = spec(params)
        trial.set_user_attr("run_key", run.key())  # the cached run behind the trial (run ledgers keep it)
        return _value(float(run_specs([run], cache, progress=False)["val_knn_acc"].iloc[0]))

    study = hpo.run_study_and_wait(objective, space, cfg, progress=progress)
    keys = [default.key(), *hpo.complete_trial_attrs(study, "run_key")]
    best = hpo.best_params(study, space) if study.best_value > default_value else {}
    return study, best, keys
