"""The node-classification protocol of Neural Sheaf Diffusion as frozen configurations, run lists and tables.

Notebook ``01_sheaf_diffusion`` describes its runs with plain parameters (literals or the paper profile's
YAML), read once into an :class:`NsdProtocol`:

.. code-block:: python

    protocol = NsdProtocol.from_params(TRAIN, MODEL_DEFAULTS, CONFIGS)
    candidates = protocol.candidate_specs(datasets, "diag-nsd", splits=[0, 1, 2])
    protocol, selection = protocol.choose(run_experiments(...), candidates)   # on validation accuracy
    specs = protocol.table_specs(datasets, MODELS, SPLITS)

- ``TRAIN``: training settings shared by every run (fields of :class:`~mmsheaf.nsd.train.TrainConfig`);
- ``MODEL_DEFAULTS``: ``{model: {hparam: value}}`` for every model;
- ``CONFIGS``: per-dataset overrides ``{dataset: {"train": {...}, "sheaf": {...}, "<model>": {...},
  "source": "...", "candidates": [...]}}`` (a :class:`DatasetConfig` each), where ``"sheaf"`` and
  ``"train"`` apply to the three discrete sheaf types and their continuous versions only (the NSD scripts
  publish one architecture and one training setting per dataset, tuned for the sheaf model; the baselines
  keep the shared ``TRAIN``), and ``"<model>"`` to one model.

:meth:`NsdProtocol.resolve` merges them (later wins): ``TRAIN`` < ``CONFIGS[ds]["train"]`` (sheaf models) for
training, and ``MODEL_DEFAULTS[model]`` < ``CONFIGS[ds]["sheaf"]`` (sheaf models) < ``CONFIGS[ds][model]``
for the model. The other methods turn that into :class:`~mmsheaf.nsd.runs.ExperimentSpec` lists (their keys
depend on the merged settings only, not on how the parameters were written); :mod:`~mmsheaf.nsd.tables`
turns the results into tables and :mod:`~mmsheaf.nsd.numbers` into the numbers the paper quotes.

**Baselines tuned per dataset** (:mod:`~mmsheaf.nsd.tuning`): :meth:`NsdProtocol.with_baselines` gives a
baseline on a dataset its own settings (a :class:`BaselineChoice`: published by its authors for these splits,
or found by a search), which then replace ``CONFIGS[ds][model]`` and ``TRAIN`` for that row:
``MODEL_DEFAULTS[model]`` < the choice's hyperparameters, ``TRAIN`` < the choice's training settings.
:meth:`NsdProtocol.untuned` drops them again (the rows of the labelled ablation).

Where the NSD authors publish no configuration for a dataset, ``CONFIGS[ds]["candidates"]`` lists partial
configurations (``{"sheaf": {...}, "train": {...}}``, a :class:`Candidate` each, merged over the dataset's
own entry) and the table uses the one with the best mean **validation** accuracy of one sheaf model over a
few splits (:meth:`NsdProtocol.candidate_specs`, :meth:`NsdProtocol.choose`), as the paper's own sweeps
selected on validation accuracy. Test accuracy plays no part in the choice.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import pandas as pd
from torch_geometric.data import Data

from ..runs.keys import set_seed
from ..data.nsd_graphs import DATA_VERSIONS, csbm_name
from .registry import build_node_model, node_model_names, resolve_node_model
from .runs import ExperimentSpec
from .train import TrainConfig, train_node_classifier

__all__ = ["CONFIG_KEYS", "BaselineChoice", "Candidate", "DatasetConfig", "NsdProtocol", "energy_profiles"]

CONFIG_KEYS: frozenset[str] = frozenset({"train", "sheaf", "source", "candidates"})
"""Keys of a ``CONFIGS[dataset]`` entry besides model names."""

TRAIN_FIELDS: frozenset[str] = frozenset(f.name for f in dataclasses.fields(TrainConfig))


def _frozen(mapping: Mapping[str, Any] | None) -> Mapping[str, Any]:
    return MappingProxyType(dict(mapping or {}))


def _train_overrides(where: str, block: Mapping[str, Any] | None) -> Mapping[str, Any]:
    unknown = sorted(set(block or {}) - TRAIN_FIELDS)
    if unknown:
        raise ValueError(f"{where} has unknown training settings {unknown}: use fields of TrainConfig "
                         f"({', '.join(sorted(TRAIN_FIELDS))}).")  # fmt: skip
    return _frozen(block)


def _model_name(where: str, name: str) -> str:
    try:
        return resolve_node_model(name).name
    except ValueError:
        names = ", ".join(node_model_names())
        raise ValueError(f"{where} names the unknown model {name!r}: use one of {names}.") from None


@dataclass(frozen=True)
class Candidate:
    """A partial configuration tried where the NSD authors publish none, merged over its dataset's entry.

    Args:
        sheaf: Sheaf-model hyperparameters it changes.
        train: Training settings of the sheaf models it changes.
    """

    sheaf: Mapping[str, Any] = field(default_factory=dict)
    train: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "sheaf", _frozen(self.sheaf))
        object.__setattr__(self, "train", _train_overrides("a configuration candidate", self.train))

    @classmethod
    def from_params(cls, entry: Mapping[str, Any]) -> Candidate:
        """A candidate from its ``{"sheaf": {...}, "train": {...}}`` entry (either block may be absent)."""
        unknown = set(entry) - {"sheaf", "train"}
        if unknown:
            raise ValueError(f"a configuration candidate has keys {sorted(unknown)}: it may only set sheaf "
                             "and train.")  # fmt: skip
        return cls(sheaf=entry.get("sheaf") or {}, train=entry.get("train") or {})

    @property
    def label(self) -> str:
        """What it changes, for the selection table: ``"layers=2; weight_decay=0.005"`` (``"base"``: none)."""
        pairs = [f"{k}={v}" for block in (self.sheaf, self.train) for k, v in sorted(block.items())]
        return "; ".join(pairs) or "base"

    @property
    def changes(self) -> str:
        """What it changes as sorted JSON (its non-empty blocks, ``"{}"`` for the base configuration)."""
        blocks = {name: dict(b) for name, b in (("sheaf", self.sheaf), ("train", self.train)) if b}
        return json.dumps(blocks, sort_keys=True)


@dataclass(frozen=True)
class DatasetConfig:
    """One dataset's overrides of the shared settings (one ``CONFIGS`` entry).

    Args:
        train: Training settings of the sheaf models on this dataset (over ``TRAIN``).
        sheaf: Hyperparameters of every sheaf model on this dataset (over ``MODEL_DEFAULTS``).
        models: ``{model: hyperparameters}`` of single models on this dataset (over ``sheaf``).
        source: Where the settings come from (e.g. the NSD script), for the reader.
        candidates: Configurations to choose among on validation accuracy (empty: the settings are given).
    """

    train: Mapping[str, Any] = field(default_factory=dict)
    sheaf: Mapping[str, Any] = field(default_factory=dict)
    models: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    source: str = ""
    candidates: tuple[Candidate, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "train", _train_overrides("a dataset's train block", self.train))
        object.__setattr__(self, "sheaf", _frozen(self.sheaf))
        models = {_model_name("a dataset configuration", m): _frozen(hp) for m, hp in self.models.items()}
        object.__setattr__(self, "models", MappingProxyType(models))
        object.__setattr__(self, "candidates", tuple(self.candidates))

    @classmethod
    def from_params(cls, dataset: str, entry: Mapping[str, Any]) -> DatasetConfig:
        """The configuration of ``dataset`` from its ``CONFIGS`` entry (keys :data:`CONFIG_KEYS` and model
        names)."""
        models, unknown = {}, []
        for key, value in entry.items():
            if key in CONFIG_KEYS:
                continue
            try:
                models[resolve_node_model(key).name] = value
            except ValueError:
                unknown.append(key)
        if unknown:
            raise ValueError(f"CONFIGS[{dataset!r}] has unknown keys {sorted(unknown)}: use "
                             f"{', '.join(sorted(CONFIG_KEYS))} or model names ({', '.join(node_model_names())})")  # fmt: skip
        candidates = tuple(Candidate.from_params(c) for c in entry.get("candidates") or ())
        return cls(train=entry.get("train") or {}, sheaf=entry.get("sheaf") or {}, models=models,
                   source=str(entry.get("source") or ""), candidates=candidates)  # fmt: skip

    def with_candidate(self, candidate: Candidate, source: str | None = None) -> DatasetConfig:
        """This configuration with ``candidate``'s blocks merged over its own (the candidate wins) and no
        candidates left; ``source`` replaces the source when given."""
        return dataclasses.replace(
            self, sheaf={**self.sheaf, **candidate.sheaf}, train={**self.train, **candidate.train},
            source=self.source if source is None else source, candidates=(),
        )  # fmt: skip


@dataclass(frozen=True)
class BaselineChoice:
    """The settings of one baseline on one dataset, chosen outside ``CONFIGS`` (:mod:`~mmsheaf.nsd.tuning`).

    Args:
        hparams: Model hyperparameters over ``MODEL_DEFAULTS[model]``.
        train: Training settings over ``TRAIN`` (fields of :class:`~mmsheaf.nsd.train.TrainConfig`).
        source: Where they come from, for the reader (``"published: chennnM/GCNII full.sh"``,
            ``"search: 12 trials, splits 0-1"``).
    """

    hparams: Mapping[str, Any] = field(default_factory=dict)
    train: Mapping[str, Any] = field(default_factory=dict)
    source: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "hparams", _frozen(self.hparams))
        object.__setattr__(self, "train", _train_overrides("a baseline's train block", self.train))


@dataclass(frozen=True)
class NsdProtocol:
    """The settings of every run of the node-classification study (see the module docstring for the merge).

    Args:
        train: The training settings shared by every run.
        model_defaults: ``{model: hyperparameters}`` (registry names).
        datasets: ``{dataset: DatasetConfig}``; a dataset without an entry uses the shared settings.
        baselines: ``{(dataset, model): BaselineChoice}`` of baselines with settings of their own on a dataset
            (see the module docstring); empty: every baseline runs with ``MODEL_DEFAULTS``, ``CONFIGS`` and
            ``TRAIN``.
    """

    train: TrainConfig = field(default_factory=TrainConfig)
    model_defaults: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    datasets: Mapping[str, DatasetConfig] = field(default_factory=dict)
    baselines: Mapping[tuple[str, str], BaselineChoice] = field(default_factory=dict)

    def __post_init__(self) -> None:
        defaults = {_model_name("MODEL_DEFAULTS", m): _frozen(hp) for m, hp in self.model_defaults.items()}
        object.__setattr__(self, "model_defaults", MappingProxyType(defaults))
        object.__setattr__(self, "datasets", MappingProxyType(dict(self.datasets)))
        baselines = {}
        for (ds, model), choice in dict(self.baselines).items():
            name = _model_name("baselines", model)
            if resolve_node_model(name).family == "sheaf":
                raise ValueError(f"baselines names the sheaf model {name!r} on {ds!r}: sheaf models take their "
                                 "settings from CONFIGS (train, sheaf, candidates).")  # fmt: skip
            baselines[(ds, name)] = choice
        object.__setattr__(self, "baselines", MappingProxyType(baselines))

    @classmethod
    def from_params(
        cls,
        train: Mapping[str, Any],
        model_defaults: Mapping[str, Mapping[str, Any]],
        configs: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> NsdProtocol:
        """The protocol of the notebook's ``TRAIN``, ``MODEL_DEFAULTS`` and ``CONFIGS`` parameters.

        Raises:
            ValueError: an unknown training setting, model name or ``CONFIGS`` key (the message lists the
                valid ones).
        """
        return cls(
            train=TrainConfig(**_train_overrides("TRAIN", train)),
            model_defaults=model_defaults,
            datasets={ds: DatasetConfig.from_params(ds, entry) for ds, entry in (configs or {}).items()},
        )

    def dataset(self, name: str) -> DatasetConfig:
        """The configuration of dataset ``name`` (the empty one where ``CONFIGS`` has no entry)."""
        return self.datasets.get(name, DatasetConfig())

    def with_baselines(self, choices: Mapping[tuple[str, str], BaselineChoice]) -> NsdProtocol:
        """This protocol with ``choices`` added to (and replacing entries of) :attr:`baselines`."""
        return dataclasses.replace(self, baselines={**self.baselines, **choices})

    def untuned(self) -> NsdProtocol:
        """This protocol without :attr:`baselines`: every baseline with ``MODEL_DEFAULTS``, ``CONFIGS`` and
        ``TRAIN`` (the untuned rows)."""
        return dataclasses.replace(self, baselines={})

    def resolve(self, dataset: str, model: str, **override: Any) -> tuple[dict[str, Any], TrainConfig]:
        """The model hyperparameters and training config of one (dataset, model) under the merge rules.

        ``override`` (e.g. ``layers=16`` for the depth sweep) is applied last to the model hyperparameters.
        """
        return self._resolve(dataset, self.dataset(dataset), model, override)

    def _resolve(
        self, dataset: str, config: DatasetConfig, model: str, override: Mapping[str, Any]
    ) -> tuple[dict[str, Any], TrainConfig]:
        spec = resolve_node_model(model)
        choice = self.baselines.get((dataset, spec.name))
        if choice is not None:
            hparams = {**self.model_defaults.get(spec.name, {}), **choice.hparams, **override}
            return hparams, dataclasses.replace(self.train, **choice.train)
        sheaf = spec.family == "sheaf"
        hparams = {**self.model_defaults.get(spec.name, {}), **(config.sheaf if sheaf else {}),
                   **config.models.get(spec.name, {}), **override}  # fmt: skip
        return hparams, dataclasses.replace(self.train, **config.train) if sheaf else self.train

    def _specs(self, dataset: str, config: DatasetConfig, models: Sequence[str], splits: Sequence[int],
               override: Mapping[str, Any]) -> list[ExperimentSpec]:  # fmt: skip
        out = []
        for split in splits:
            for model in models:
                hparams, cfg = self._resolve(dataset, config, model, override)
                out.append(ExperimentSpec(dataset, model, int(split), hparams, cfg,
                                          data_version=DATA_VERSIONS.get(dataset, 1)))  # fmt: skip
        return out

    def table_specs(
        self, datasets: Sequence[str], models: Sequence[str], splits: Sequence[int], **override: Any
    ) -> list[ExperimentSpec]:
        """One spec per (dataset, model, split), interleaved over models so the progress ETA is honest."""
        return [s for ds in datasets for s in self._specs(ds, self.dataset(ds), models, splits, override)]

    def depth_specs(
        self, datasets: Sequence[str], models: Sequence[str], depths: Sequence[int], splits: Sequence[int]
    ) -> list[ExperimentSpec]:
        """The oversmoothing sweep: every model at every depth (``layers``), other settings as in the
        table."""
        return [s for depth in depths for s in self.table_specs(datasets, models, splits, layers=int(depth))]

    def candidate_specs(
        self, datasets: Sequence[str], model: str, splits: Sequence[int]
    ) -> dict[tuple[str, int], list[ExperimentSpec]]:
        """The selection runs: ``{(dataset, candidate index): specs of model on splits}`` for every dataset of
        ``datasets`` whose configuration lists candidates."""
        out = {}
        for ds in datasets:
            config = self.dataset(ds)
            for i, candidate in enumerate(config.candidates):
                out[(ds, i)] = self._specs(ds, config.with_candidate(candidate), [model], splits, {})
        return out

    def choose(
        self, results: pd.DataFrame, candidates: Mapping[tuple[str, int], Sequence[ExperimentSpec]]
    ) -> tuple[NsdProtocol, pd.DataFrame]:
        """Pick, per dataset, the candidate with the best mean validation accuracy (the first on a tie).

        Args:
            results: Rows of :func:`~mmsheaf.nsd.runs.run_experiments` covering every spec of ``candidates``.
            candidates: As :meth:`candidate_specs` returns them.

        Returns:
            ``(protocol, selection)``: this protocol with each such dataset's configuration replaced by its
            chosen candidate merged in (no candidates left, ``source`` naming the choice), and one row per
            candidate: ``dataset, candidate, changes`` (JSON), ``label`` (``"layers=2; weight_decay=0.005"``,
            ``"base"`` for ``{}``), ``val_mean, val_std`` (%), ``n_splits, chosen``.
        """
        val = dict(zip(results["key"], results["val_acc"]))
        rows = []
        for (ds, i), specs in candidates.items():
            missing = [s for s in specs if s.key() not in val]
            if missing:
                raise ValueError(f"no result for {len(missing)} selection run(s) of {ds!r} candidate {i}: "
                                 "run every spec of candidate_specs(...) first.")  # fmt: skip
            accs = pd.Series([100 * val[s.key()] for s in specs])
            candidate = self.dataset(ds).candidates[i]
            rows.append({"dataset": ds, "candidate": i, "changes": candidate.changes,
                         "label": candidate.label, "val_mean": accs.mean(), "val_std": accs.std(ddof=0),
                         "n_splits": len(specs)})  # fmt: skip
        columns = ["dataset", "candidate", "changes", "label", "val_mean", "val_std", "n_splits"]
        table = pd.DataFrame(rows, columns=columns)
        best = table.loc[table.groupby("dataset", sort=False)["val_mean"].idxmax()] if len(table) else table
        table["chosen"] = table.index.isin(best.index)
        chosen = dict(self.datasets)
        for r in best.itertuples(index=False):
            config = self.dataset(r.dataset)
            source = (f"{config.source}; candidate {r.candidate} of {len(config.candidates)}, "
                      "chosen on validation accuracy").lstrip("; ")  # fmt: skip
            chosen[r.dataset] = config.with_candidate(config.candidates[r.candidate], source=source)
        return dataclasses.replace(self, datasets=chosen), table

    def sbm_specs(
        self,
        homophilies: Iterable[float],
        models: Sequence[str],
        splits: Sequence[int],
        graph: Mapping[str, Any],
    ) -> list[ExperimentSpec]:
        """The heterophily sweep: each model on contextual SBM graphs of increasing edge homophily, with the
        shared settings only (no dataset configuration or baseline choice applies to these graphs)."""
        shared = dataclasses.replace(self, datasets={}, baselines={})
        return shared.table_specs([csbm_name(h, **graph) for h in homophilies], models, splits)


def energy_profiles(
    data: Data, runs: Mapping[str, tuple[Mapping[str, Any], TrainConfig]], split: int = 0
) -> pd.DataFrame:
    r"""Train each sheaf model once (on ``split``) and measure its sheaf Dirichlet energy after every layer.

    Args:
        data: the graph.
        runs: ``{model name: (hparams, train config)}`` (as :meth:`NsdProtocol.resolve` returns them).

    Returns:
        Rows ``model, layer, energy, relative_energy, rayleigh``: the energy, the energy divided by the
        energy at layer 0, and the Rayleigh quotient :math:`E(X_t) / \|X_t\|_F^2`. The quotient is the one
        to compare across layers and models: a trained model rescales its state at every layer, and a
        learned sheaf whose maps are near zero at layer 0 has an energy near zero there, which makes the
        ratio to layer 0 meaningless (Diag-NSD on Texas does this: 1e-16 at layer 0).
    """
    rows = []
    for model_name, (hparams, cfg) in runs.items():
        set_seed(cfg.seed)
        model = build_node_model(model_name, data.num_features, int(data.y.max()) + 1, **dict(hparams))
        train_node_classifier(model, data, split=split, cfg=cfg)
        energies = model.dirichlet_energies(data.x, data.edge_index)
        quotients = model.dirichlet_energies(data.x, data.edge_index, rayleigh=True)
        base = energies[0] if energies and energies[0] > 0 else 1.0
        rows += [
            {"model": model_name, "layer": i, "energy": e, "relative_energy": e / base, "rayleigh": q}
            for i, (e, q) in enumerate(zip(energies, quotients))
        ]
    return pd.DataFrame(rows, columns=["model", "layer", "energy", "relative_energy", "rayleigh"])
