"""Baselines tuned as fairly as the sheaf models: each baseline on each dataset gets its authors' published
configuration for these splits, or else one Optuna search with the same budget as every other baseline.

The sheaf models of notebook 01 use the NSD authors' tuned per-dataset configurations; baselines run with
their papers' defaults are no fair comparison. Per (dataset, baseline):

- **published** (:class:`PublishedBaselines`, the ``PUBLISHED_BASELINES`` parameter): the configuration the
  baseline's authors published for the geom-gcn splits (e.g. GCNII's ``full.sh``), used as given;
- **search** (:class:`BaselineSearch`, the ``BASELINE_SEARCH`` parameter): otherwise, ``trials`` Optuna trials
  (TPE, seeded) over one search space shared by every searched baseline (plus each model's own knobs), each
  trial the mean **validation** accuracy of the first ``splits``; the best trial's settings are the row's;
- **defaults**: a baseline in neither keeps ``MODEL_DEFAULTS``, ``CONFIGS`` and ``TRAIN``.

:func:`tune_baselines` returns the protocol with every choice
(:meth:`~mmsheaf.nsd.protocol.NsdProtocol.with_baselines`) and one row per (dataset, baseline) saying which
configuration it uses; :meth:`~mmsheaf.nsd.protocol.NsdProtocol.untuned` gives the untuned rows back (the
labelled ablation of the table). Test accuracy plays no part in any choice.

.. code-block:: python

    search = BaselineSearch.from_params(BASELINE_SEARCH)    # {models, trials, splits, space, model_space}
    published = PublishedBaselines.from_params(PUBLISHED_BASELINES)
    tuning = tune_baselines(protocol, datasets, ["mlp", "gcn", "gcnii"], search, published, cache, load_graph)
    specs = tuning.protocol.table_specs(datasets, MODELS, SPLITS)   # tuned baselines, sheaf models as before
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import pandas as pd
from torch_geometric.data import Data

from ..data.node_datasets import resolve_node_dataset
from ..runs import hpo
from ..runs import settings as runs_settings
from ..runs.cache import RunCache, RunsFailed
from ..runs.keys import canonical_json
from ..runs.space import parse_space
from .protocol import TRAIN_FIELDS, BaselineChoice, NsdProtocol
from .registry import node_model_config, resolve_node_model
from .runs import ExperimentSpec, run_experiments

__all__ = ["CONFIG_COLUMNS", "BaselineSearch", "BaselineTuning", "PublishedBaselines", "choices_of", "settings_text",
           "tune_baselines"]

CONFIG_COLUMNS: tuple[str, ...] = ("dataset", "model", "configuration", "source", "settings", "val_mean", "trials",
                                   "config")
"""Columns of :attr:`BaselineTuning.configs`."""


def _model(where: str, name: str) -> str:
    spec = resolve_node_model(name)  # raises a ValueError naming the registered models
    if spec.family == "sheaf":
        raise ValueError(f"{where} names the sheaf model {name!r}: only baselines are tuned here (the sheaf "
                         "models take the NSD configurations of CONFIGS).")  # fmt: skip
    return spec.name


def settings_text(choice: BaselineChoice) -> str:
    """A choice's settings in one line, ``name=value`` sorted by name (floats to 2 significant digits)."""
    return runs_settings.settings_text(choice.hparams, choice.train)


def _json(choice: BaselineChoice) -> str:
    """The choice as sorted JSON, ints kept ints (``canonical_json`` writes every number as a float: fine for
    a key, not for settings read back into a config)."""
    return json.dumps({"hparams": dict(choice.hparams), "train": dict(choice.train)}, sort_keys=True)


def choices_of(configs: pd.DataFrame) -> dict[tuple[str, str], BaselineChoice]:
    """The choices of a :attr:`BaselineTuning.configs` table (e.g. read back from its CSV), for
    :meth:`~mmsheaf.nsd.protocol.NsdProtocol.with_baselines`; the ``defaults`` rows have none."""
    out = {}
    for r in configs.itertuples(index=False):
        if r.configuration != "defaults":
            config = json.loads(r.config)
            out[(r.dataset, r.model)] = BaselineChoice(config["hparams"], config["train"], r.source)
    return out


@dataclass(frozen=True)
class PublishedBaselines:
    """Baseline configurations published for these splits, used as given.

    Args:
        choices: ``{(dataset, model): BaselineChoice}``.
    """

    choices: Mapping[tuple[str, str], BaselineChoice] = field(default_factory=dict)

    def __post_init__(self) -> None:
        checked = {}
        for (ds, m), choice in dict(self.choices).items():
            model = _model("PUBLISHED_BASELINES", m)
            with contextlib.suppress(ValueError):  # a graph outside the registry (a CSBM name) is kept as written
                ds = resolve_node_dataset(ds).name  # the registry's spelling: "Cora" is the table's "cora"
            node_model_config(model, **choice.hparams)  # a misspelt or invalid hyperparameter fails here
            checked[(ds, model)] = choice
        object.__setattr__(self, "choices", MappingProxyType(checked))

    @classmethod
    def from_params(cls, params: Mapping[str, Mapping[str, Any]] | None) -> PublishedBaselines:
        """From ``{model: {"source": str, "shared": {...}, dataset: {...}}}``: a dataset block holds model
        hyperparameters, an optional ``train`` block and an optional ``source`` (over the model's);
        ``shared`` is merged under every dataset block of the model.

        Raises:
            ValueError: a sheaf or unknown model, a block that is not a mapping, or unknown training keys.
        """
        choices = {}
        for model, entry in (params or {}).items():
            if not isinstance(entry, Mapping):
                raise ValueError(  # noqa: TRY004 - a malformed params file, reported like every other
                    f"PUBLISHED_BASELINES[{model!r}] must map 'source', 'shared' and dataset names to settings, "
                    f"got {type(entry).__name__}."
                )
            shared = dict(entry.get("shared") or {})
            for ds, block in entry.items():
                if ds in ("source", "shared"):
                    continue
                if not isinstance(block, Mapping):
                    raise ValueError(f"PUBLISHED_BASELINES[{model!r}][{ds!r}] must be a mapping of settings.")  # noqa: TRY004
                merged = {**shared, **block, "train": {**(shared.get("train") or {}), **(block.get("train") or {})}}
                source = str(merged.pop("source", entry.get("source", "")))
                train = merged.pop("train")
                choices[(ds, model)] = BaselineChoice(merged, train, f"published: {source}" if source else "published")
        return cls(choices)


@dataclass(frozen=True)
class BaselineSearch:
    """One search budget for every searched baseline.

    Args:
        models: The baselines searched (where no published configuration applies).
        trials: Optuna trials per (dataset, model).
        splits: The splits whose mean validation accuracy a trial scores.
        space: The search space shared by every model (:func:`~mmsheaf.runs.space.parse_space`); names of
            :class:`~mmsheaf.nsd.train.TrainConfig` fields (``lr``, ``weight_decay``...) go to training.
        model_space: Each model's additions to (or replacements of) ``space``.
        seed: Base seed of the sampler, the same for every study: each model's random startup trials are the
            same configurations on every dataset (common random numbers), so a difference between datasets is
            not the luck of the draw.
        startup_trials: Random trials before TPE models the results. A field of its own, not a share of
            ``trials``: a study resumed with a larger budget then draws the trials a fresh one would.
    """

    models: Sequence[str] = ()
    trials: int = 12
    splits: Sequence[int] = (0, 1)
    space: Mapping[str, Any] = field(default_factory=dict)
    model_space: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    seed: int = 0
    startup_trials: int = 6

    def __post_init__(self) -> None:
        object.__setattr__(self, "models", tuple(_model("BASELINE_SEARCH models", m) for m in self.models))
        object.__setattr__(self, "splits", tuple(int(s) for s in self.splits))
        for name in ("trials", "startup_trials", "seed"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < (1 if name == "trials" else 0):
                raise ValueError(f"BASELINE_SEARCH {name} must be an int >= {1 if name == 'trials' else 0}, "
                                 f"got {value!r}.")  # fmt: skip
        if not self.splits or min(self.splits) < 0:
            raise ValueError(f"BASELINE_SEARCH splits must be non-empty and >= 0, got {list(self.splits)}.")
        model_space = {_model("BASELINE_SEARCH model_space", m): dict(s) for m, s in self.model_space.items()}
        extra = sorted(set(model_space) - set(self.models))
        if extra:
            raise ValueError(f"BASELINE_SEARCH model_space names {extra}, which are not searched (models: "
                             f"{list(self.models)}).")  # fmt: skip
        object.__setattr__(self, "model_space", MappingProxyType(model_space))
        object.__setattr__(self, "space", MappingProxyType(dict(self.space)))
        for m in self.models:  # a malformed space, or a knob the model does not have, fails here, before any run
            space = parse_space(self.space_for(m))
            known = {f.name for f in dataclasses.fields(node_model_config(m))} | TRAIN_FIELDS
            unknown = sorted(set(space) - known)
            if unknown:
                raise ValueError(f"BASELINE_SEARCH searches {unknown} for {m!r}, which has no such setting: use its "
                                 f"config's fields or TrainConfig's ({', '.join(sorted(known))}).")  # fmt: skip

    @classmethod
    def from_params(cls, params: Mapping[str, Any] | None) -> BaselineSearch:
        """From ``{models, trials, splits, space, model_space, seed}`` (every key optional)."""
        params = dict(params or {})
        keys = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(params) - keys)
        if unknown:
            raise ValueError(f"BASELINE_SEARCH has unknown keys {unknown}: use {', '.join(sorted(keys))}.")
        return cls(**params)

    def space_for(self, model: str) -> dict[str, Any]:
        """:attr:`space` with ``model``'s :attr:`model_space` entries."""
        return {**self.space, **self.model_space.get(model, {})}

    def choice(self, protocol: NsdProtocol, dataset: str, model: str, params: Mapping[str, Any],
               source: str = "") -> BaselineChoice:  # fmt: skip
        """The settings of a trial's ``params`` over the untuned row's: the model hyperparameters over
        ``CONFIGS[dataset][model]`` (the choice itself goes over ``MODEL_DEFAULTS``), the training settings
        over ``TRAIN``."""
        hparams, train = runs_settings.split_by_fields(params, TRAIN_FIELDS)
        return BaselineChoice({**protocol.dataset(dataset).models.get(model, {}), **hparams}, train, source)

    def trial_specs(self, protocol: NsdProtocol, dataset: str, model: str,
                    params: Mapping[str, Any]) -> list[ExperimentSpec]:  # fmt: skip
        """The runs of one trial: the table's runs of :meth:`choice` on :attr:`splits` (so the best trial's runs
        are the table's runs on those splits)."""
        tuned = protocol.untuned().with_baselines({(dataset, model): self.choice(protocol, dataset, model, params)})
        return tuned.table_specs([dataset], [model], self.splits)

    def study_config(self, protocol: NsdProtocol, dataset: str, model: str,
                     storage: str | None = None) -> hpo.StudyConfig:  # fmt: skip
        """The study of ``(dataset, model)``, named after a hash of everything that sets its trials but the
        budget: the untuned run's full description (resolved model config with every library default, training
        config, data version, run schema; :meth:`~mmsheaf.nsd.runs.ExperimentSpec.describe` without the
        split), the space, the splits, the seed and the startup trials. A changed setting starts a new study; a
        rerun, or a larger ``trials``, resumes the old one."""
        run = protocol.untuned().table_specs([dataset], [model], [0])[0].describe()
        run.pop("split")
        setting = canonical_json({"run": run, "space": self.space_for(model), "splits": list(self.splits),
                                  "seed": self.seed, "startup": self.startup_trials})  # fmt: skip
        safe = re.sub(r"[^A-Za-z0-9._-]+", "_", dataset)  # e.g. a CSBM graph's "csbm:edge_homophily=..."
        name = f"nsd-{safe}-{model}-{hashlib.sha256(setting.encode()).hexdigest()[:12]}"
        return hpo.StudyConfig(name=name, storage=storage, direction="maximize", n_trials=self.trials,
                               seed=self.seed, n_startup_trials=self.startup_trials)  # fmt: skip

    def source(self) -> str:
        """How :attr:`BaselineTuning.configs` names a searched row's source."""
        splits = ", ".join(str(s) for s in self.splits)
        return f"search: {self.trials} trials, val. acc. of splits {splits}"


@dataclass(frozen=True, eq=False)
class BaselineTuning:
    """What :func:`tune_baselines` found.

    Attributes:
        protocol: The protocol with every published or searched choice.
        configs: One row per (dataset, baseline), columns :data:`CONFIG_COLUMNS`: ``configuration``
            (``published``, ``search`` or ``defaults``), ``source``, ``settings`` (one line), ``val_mean`` (the
            best trial's mean validation accuracy in %, searches only), ``trials`` (complete trials) and
            ``config`` (JSON ``{"hparams", "train"}`` of the choice, ``{}`` for the defaults rows:
            :func:`choices_of` reads it back).
        trial_keys: The run keys behind every complete trial (what the run ledger keeps).
        studies: The Optuna study names.
        histories: One row per trial of every study (:func:`~mmsheaf.runs.hpo.study_frame`) with ``dataset``
            and ``model``.
    """

    protocol: NsdProtocol
    configs: pd.DataFrame
    trial_keys: list[str]
    studies: list[str]
    histories: pd.DataFrame


def tune_baselines(
    protocol: NsdProtocol,
    datasets: Sequence[str],
    models: Sequence[str],
    search: BaselineSearch,
    published: PublishedBaselines,
    cache: RunCache,
    data_loader: Callable[[str], Data],
    *,
    storage: str | None = None,
    progress: bool = False,
    log: Callable[[str], None] | None = None,
) -> BaselineTuning:
    """Give every baseline of ``models`` on every dataset its published configuration, or search one.

    A trial trains the model on each split of :attr:`BaselineSearch.splits` (cached runs of ``cache``, on the
    executor's workers: :func:`~mmsheaf.runs.hpo.run_study_and_wait`) and scores their mean validation
    accuracy. Sheaf models in ``models`` are skipped (they keep their NSD configurations).

    Args:
        protocol: The protocol (its chosen sheaf configurations are kept).
        datasets: The datasets, in order.
        models: The table's models.
        search: The search budget and space.
        published: The published configurations.
        cache: The run cache of the node-classification runs.
        data_loader: ``name -> Data`` (e.g. :func:`~mmsheaf.data.nsd_graphs.load_graph`).
        storage: Where the studies live (``None``: the embedded journal files).
        progress: Show Optuna's progress bars.
        log: Called with one line per search when it is done (e.g. ``print``).
    """
    import optuna

    if not progress:
        optuna.logging.set_verbosity(optuna.logging.WARNING)
    baselines = [m for m in (resolve_node_model(n).name for n in models) if resolve_node_model(m).family != "sheaf"]
    unused = sorted({f"{m} on {ds}" for ds, m in published.choices if ds not in datasets or m not in baselines})
    if unused and log is not None:  # e.g. a dataset whose files are missing, or a misspelt name
        log(f"published configurations not used in this run: {', '.join(unused)}")
    choices: dict[tuple[str, str], BaselineChoice] = {}
    rows, keys, studies, histories = [], [], [], []
    for ds in datasets:
        for model in baselines:
            if (ds, model) in published.choices:
                choices[(ds, model)] = choice = published.choices[(ds, model)]
                rows.append((ds, model, "published", choice.source, settings_text(choice), None, 0, _json(choice)))
                continue
            if model not in search.models:
                hparams, _ = protocol.untuned().resolve(ds, model)
                rows.append((ds, model, "defaults", "MODEL_DEFAULTS, CONFIGS and TRAIN",
                             settings_text(BaselineChoice(hparams)), None, 0, "{}"))  # fmt: skip
                continue
            study = _search(protocol, ds, model, search, cache, data_loader, storage, progress)
            best = hpo.best_params(study, search.space_for(model))
            choices[(ds, model)] = choice = search.choice(protocol, ds, model, best, search.source())
            complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
            keys += [k for t in complete for k in t.user_attrs.get("run_keys", [])]
            studies.append(study.study_name)
            frame = hpo.study_frame(study).sort_values("number")
            histories.append(frame.assign(dataset=ds, model=model))
            rows.append((ds, model, "search", choice.source, settings_text(choice), float(study.best_value),
                         len(complete), _json(choice)))  # fmt: skip
            if log is not None:
                log(f"{ds:12s} {model:8s} best mean val. acc. {study.best_value:.1f} %  {settings_text(choice)}")
    configs = pd.DataFrame(rows, columns=list(CONFIG_COLUMNS))
    history = pd.concat(histories, ignore_index=True) if histories else pd.DataFrame()
    return BaselineTuning(protocol.with_baselines(choices), configs, keys, studies, history)


def _search(protocol: NsdProtocol, dataset: str, model: str, search: BaselineSearch, cache: RunCache,
            data_loader: Callable[[str], Data], storage: str | None, progress: bool) -> Any:  # fmt: skip
    """Run (or resume, or replay) the study of ``(dataset, model)``. A trial whose run fails (e.g. a loss that
    is not finite at a large learning rate) is marked failed and uses its budget slot, as Optuna's ``catch``
    does; a study without any complete trial raises in :func:`~mmsheaf.runs.hpo.best_params`."""
    cfg = search.study_config(protocol, dataset, model, storage)

    def objective(params: dict[str, Any], trial: Any) -> float:
        specs = search.trial_specs(protocol, dataset, model, params)
        trial.set_user_attr("run_keys", [s.key() for s in specs])  # the cached runs behind the trial
        runs = run_experiments(specs, cache, data_loader=data_loader, progress=False)
        return 100.0 * float(runs["val_acc"].mean())

    return hpo.run_study_and_wait(objective, search.space_for(model), cfg, progress=progress, catch=(RunsFailed,))
