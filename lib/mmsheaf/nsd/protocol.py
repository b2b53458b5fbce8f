"""The node-classification protocol of Neural Sheaf Diffusion as experiment specs, sweeps and tables.

Notebook ``01_sheaf_diffusion`` describes its runs with plain parameters (literals or the paper profile's YAML):

- ``TRAIN``: training settings shared by every run (fields of :class:`~mmsheaf.nsd.train.TrainConfig`);
- ``MODEL_DEFAULTS``: ``{model: {hparam: value}}`` for every model;
- ``CONFIGS``: per-dataset overrides ``{dataset: {"train": {...}, "sheaf": {...}, "<model>": {...},
  "source": "..."}}``, where ``"sheaf"`` and ``"train"`` apply to the three discrete sheaf types and their
  continuous versions only (the NSD scripts publish one architecture and one training setting per dataset,
  tuned for the sheaf model; the baselines keep the shared ``TRAIN``), and ``"<model>"`` to one model.

:func:`resolve` merges them (later wins): ``TRAIN`` < ``CONFIGS[ds]["train"]`` (sheaf models) for training,
and ``MODEL_DEFAULTS[model]`` < ``CONFIGS[ds]["sheaf"]`` (sheaf models) < ``CONFIGS[ds][model]`` for the model.
The functions below turn that into :class:`~mmsheaf.nsd.runs.ExperimentSpec` lists, and results into the
accuracy table with the published numbers beside ours.

Where the NSD authors publish no configuration for a dataset, ``CONFIGS[ds]["candidates"]`` lists partial
configurations (``{"sheaf": {...}, "train": {...}}``, each merged over the dataset's own entry) and the
table uses the one with the best mean **validation** accuracy of one sheaf model over a few splits
(:func:`candidate_specs`, :func:`choose_candidates`), as the paper's own sweeps selected on validation
accuracy. Test accuracy plays no part in the choice.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import pandas as pd
from torch_geometric.data import Data

from ..data import CSBMConfig, contextual_sbm, load_node_dataset
from ..data.node_datasets import resolve_node_dataset
from ..report import Latex, latex_escape
from ..runs.keys import set_seed
from .reference import paper_result
from .registry import build_node_model, resolve_node_model
from .runs import ExperimentSpec, summarise
from .train import TrainConfig, train_node_classifier

SHEAF_MODELS: tuple[str, ...] = ("diag-nsd", "orth-nsd", "gen-nsd")
CSBM_PREFIX = "csbm:"
DATA_VERSIONS: Mapping[str, int] = {"citeseer": 2, "pubmed": 2}
"""Version of :func:`load_graph`'s preparation per dataset (1 where absent), carried into every spec's key.
2: nodes without features are taken out of every split. These are CiteSeer's isolated test-range gaps
(PyG fills them with zero rows and label 0); NSD's loader drops them from all masks (``utils/classic.py``,
``non_valid_samples``, after H2GCN/GGCN)."""

CONFIG_KEYS: frozenset[str] = frozenset({"train", "sheaf", "source", "candidates"})
"""Keys of a ``CONFIGS[dataset]`` entry besides model names."""


def resolve(
    dataset: str,
    model: str,
    train: Mapping[str, Any],
    model_defaults: Mapping[str, Mapping[str, Any]],
    configs: Mapping[str, Mapping[str, Any]] | None = None,
    **override: Any,
) -> tuple[dict[str, Any], TrainConfig]:
    """The model hyperparameters and training config of one (dataset, model) under the merge rules above.

    ``override`` (e.g. ``layers=16`` for the depth sweep) is applied last to the model hyperparameters.
    """
    spec = resolve_node_model(model)
    per_ds = dict((configs or {}).get(dataset, {}))
    unknown = set(per_ds) - CONFIG_KEYS - {m for m in per_ds if _is_model(m)}
    if unknown:
        raise ValueError(f"CONFIGS[{dataset!r}] has unknown keys {sorted(unknown)}: use {', '.join(sorted(CONFIG_KEYS))} "
                         "or model names")  # fmt: skip
    hparams: dict[str, Any] = dict(model_defaults.get(spec.name, {}))
    if spec.family == "sheaf":
        hparams.update(per_ds.get("sheaf", {}))
    hparams.update(per_ds.get(spec.name, {}))
    hparams.update(override)
    sheaf_train = per_ds.get("train", {}) if spec.family == "sheaf" else {}
    cfg = TrainConfig(**{**dict(train), **dict(sheaf_train)})
    return hparams, cfg


def _is_model(name: str) -> bool:
    try:
        resolve_node_model(name)
    except ValueError:
        return False
    return True


def table_specs(
    datasets: Sequence[str],
    models: Sequence[str],
    splits: Sequence[int],
    train: Mapping[str, Any],
    model_defaults: Mapping[str, Mapping[str, Any]],
    configs: Mapping[str, Mapping[str, Any]] | None = None,
    **override: Any,
) -> list[ExperimentSpec]:
    """One spec per (dataset, model, split), interleaved over models so the progress ETA is honest."""
    specs = []
    for dataset in datasets:
        for split in splits:
            for model in models:
                hparams, cfg = resolve(dataset, model, train, model_defaults, configs, **override)
                specs.append(ExperimentSpec(dataset, model, int(split), hparams, cfg,
                                            data_version=DATA_VERSIONS.get(dataset, 1)))  # fmt: skip
    return specs


def depth_specs(
    datasets: Sequence[str],
    models: Sequence[str],
    depths: Sequence[int],
    splits: Sequence[int],
    train: Mapping[str, Any],
    model_defaults: Mapping[str, Mapping[str, Any]],
    configs: Mapping[str, Mapping[str, Any]] | None = None,
) -> list[ExperimentSpec]:
    """The oversmoothing sweep: every model at every depth (``layers``), other settings as in the table."""
    return [
        spec
        for depth in depths
        for spec in table_specs(datasets, models, splits, train, model_defaults, configs, layers=int(depth))
    ]


def _with_candidate(entry: Mapping[str, Any], candidate: Mapping[str, Any]) -> dict[str, Any]:
    """``entry`` with ``candidate``'s ``sheaf`` and ``train`` blocks merged over its own (candidate wins)."""
    unknown = set(candidate) - {"sheaf", "train"}
    if unknown:
        raise ValueError(f"a configuration candidate has keys {sorted(unknown)}: it may only set sheaf and train.")
    out = {k: v for k, v in entry.items() if k != "candidates"}
    for block in ("sheaf", "train"):
        if candidate.get(block):
            out[block] = {**dict(entry.get(block, {})), **dict(candidate[block])}
    return out


def candidate_specs(
    datasets: Sequence[str],
    model: str,
    splits: Sequence[int],
    train: Mapping[str, Any],
    model_defaults: Mapping[str, Mapping[str, Any]],
    configs: Mapping[str, Mapping[str, Any]],
) -> dict[tuple[str, int], list[ExperimentSpec]]:
    """The selection runs: ``{(dataset, candidate index): specs of model on splits}`` for every dataset of
    ``datasets`` whose ``CONFIGS`` entry lists ``candidates``."""
    out = {}
    for dataset in datasets:
        entry = configs.get(dataset, {})
        for i, candidate in enumerate(entry.get("candidates", [])):
            merged = {**configs, dataset: _with_candidate(entry, candidate)}
            out[(dataset, i)] = table_specs([dataset], [model], splits, train, model_defaults, merged)
    return out


def choose_candidates(
    results: pd.DataFrame,
    candidates: Mapping[tuple[str, int], Sequence[ExperimentSpec]],
    configs: Mapping[str, Mapping[str, Any]],
) -> tuple[dict[str, Any], pd.DataFrame]:
    """Pick, per dataset, the candidate with the best mean validation accuracy (the first on a tie).

    Args:
        results: Rows of :func:`~mmsheaf.nsd.runs.run_experiments` covering every spec of ``candidates``.
        candidates: As :func:`candidate_specs` returns them.
        configs: The ``CONFIGS`` the candidates came from.

    Returns:
        ``(configs, selection)``: ``configs`` with each such dataset's entry replaced by its chosen candidate
        merged in (``candidates`` dropped, ``source`` naming the choice), and one row per candidate:
        ``dataset, candidate, changes`` (JSON), ``label`` (``"layers=2; weight_decay=0.005"``, ``"base"`` for
        ``{}``), ``val_mean, val_std`` (%), ``n_splits, chosen``.
    """
    import json

    val = dict(zip(results["key"], results["val_acc"]))
    rows = []
    for (dataset, i), specs in candidates.items():
        missing = [s for s in specs if s.key() not in val]
        if missing:
            raise ValueError(f"no result for {len(missing)} selection run(s) of {dataset!r} candidate {i}: "
                             "run every spec of candidate_specs(...) first.")  # fmt: skip
        accs = pd.Series([100 * val[s.key()] for s in specs])
        candidate = configs[dataset]["candidates"][i]
        rows.append({"dataset": dataset, "candidate": i, "changes": json.dumps(candidate, sort_keys=True),
                     "label": "; ".join(f"{k}={v}" for block in ("sheaf", "train")
                                        for k, v in sorted(candidate.get(block, {}).items())) or "base",
                     "val_mean": accs.mean(), "val_std": accs.std(ddof=0), "n_splits": len(specs)})  # fmt: skip
    table = pd.DataFrame(rows, columns=["dataset", "candidate", "changes", "label", "val_mean", "val_std", "n_splits"])
    best = table.loc[table.groupby("dataset", sort=False)["val_mean"].idxmax()] if len(table) else table
    table["chosen"] = table.index.isin(best.index)
    chosen = dict(configs)
    for r in best.itertuples(index=False):
        entry = configs[r.dataset]
        merged = _with_candidate(entry, entry["candidates"][r.candidate])
        merged["source"] = (f"{entry.get('source', '')}; candidate {r.candidate} of {len(entry['candidates'])}, "
                            f"chosen on validation accuracy").lstrip("; ")  # fmt: skip
        chosen[r.dataset] = merged
    return chosen, table


def csbm_name(edge_homophily: float, **graph: Any) -> str:
    """A dataset name that encodes a contextual SBM graph, e.g. ``csbm:edge_homophily=0.3,num_nodes=1000``."""
    items = {"edge_homophily": round(float(edge_homophily), 4), **graph}
    return CSBM_PREFIX + ",".join(f"{k}={items[k]}" for k in sorted(items))


def load_graph(name: str) -> Data:
    """A graph as the NSD protocol sees it.

    Real datasets come from :func:`~mmsheaf.data.load_node_dataset` with every node's features divided by
    their sum (PyG's :class:`~torch_geometric.transforms.NormalizeFeatures`), as NSD's loaders do for every
    dataset (``utils/heterophilic.py``: ``transform=T.NormalizeFeatures()``); the contextual SBM graphs named
    by :func:`csbm_name` are generated (their Gaussian features are left as they are). From version 2 of a
    dataset (:data:`DATA_VERSIONS`), nodes whose features are all zero are out of every train, validation
    and test mask, as in NSD.
    """
    if not name.startswith(CSBM_PREFIX):
        from torch_geometric.transforms import NormalizeFeatures

        data = NormalizeFeatures()(load_node_dataset(name))
        if DATA_VERSIONS.get(name, 1) >= 2:
            valid = (data.x != 0).any(dim=1).unsqueeze(1)  # (N, 1), broadcast over the split columns
            data.train_mask, data.val_mask, data.test_mask = (
                data.train_mask & valid, data.val_mask & valid, data.test_mask & valid)  # fmt: skip
        return data
    fields = {f.name: f.type for f in CSBMConfig.__dataclass_fields__.values()}
    kwargs: dict[str, Any] = {}
    for item in name[len(CSBM_PREFIX):].split(","):
        key, _, raw = item.partition("=")
        if key not in fields:
            raise ValueError(f"{name!r}: {key!r} is not a CSBMConfig field ({', '.join(fields)})")
        kwargs[key] = int(raw) if str(fields[key]) in ("int", "<class 'int'>") else float(raw)
    data = contextual_sbm(CSBMConfig(**kwargs))
    data.name = name
    return data


def sbm_specs(
    homophilies: Iterable[float],
    models: Sequence[str],
    splits: Sequence[int],
    graph: Mapping[str, Any],
    train: Mapping[str, Any],
    model_defaults: Mapping[str, Mapping[str, Any]],
) -> list[ExperimentSpec]:
    """The heterophily sweep: each model on contextual SBM graphs of increasing edge homophily."""
    names = [csbm_name(h, **graph) for h in homophilies]
    return table_specs(names, models, splits, train, model_defaults, None)


def csbm_value(name: str, field: str) -> float:
    """The value of one :class:`~mmsheaf.data.CSBMConfig` field encoded in a :func:`csbm_name`."""
    if not name.startswith(CSBM_PREFIX):
        raise ValueError(f"{name!r} is not a CSBM graph name (they start with {CSBM_PREFIX!r}, see csbm_name)")
    for item in name[len(CSBM_PREFIX):].split(","):
        key, _, raw = item.partition("=")
        if key == field:
            return float(raw)
    raise ValueError(f"{name!r} names no {field}")


def homophily_of(name: str) -> float:
    """The edge homophily encoded in a :func:`csbm_name`."""
    return csbm_value(name, "edge_homophily")


def accuracy_table(results: pd.DataFrame) -> pd.DataFrame:
    """``dataset, model, mean, std, n_splits, paper_mean, paper_std`` (accuracy in %, paper columns empty
    where NSD's Table 2 has no number)."""
    summary = summarise(results)
    rows = []
    for r in summary.itertuples(index=False):
        pm, ps = paper_result(r.dataset, r.model)
        rows.append(
            {
                "dataset": r.dataset, "model": r.model, "mean": r.test_mean, "std": r.test_std,
                "n_splits": int(r.n_splits), "paper_mean": pm, "paper_std": ps,
            }
        )
    return pd.DataFrame(rows, columns=["dataset", "model", "mean", "std", "n_splits", "paper_mean", "paper_std"])


def layers_of(results: pd.DataFrame) -> pd.Series:
    """The ``layers`` hyperparameter of each result row (from its JSON ``hparams``)."""
    import json

    return results["hparams"].map(lambda s: int(json.loads(s)["layers"]))


def rows_against_paper(table: pd.DataFrame, models: Sequence[str] = SHEAF_MODELS) -> pd.DataFrame:
    """Each of our rows of ``models`` that has a published number, against it: is our mean within one
    published standard deviation of the published mean, or above it?

    Args:
        table: :func:`accuracy_table` rows (``dataset, model, mean, std, paper_mean, paper_std``).
        models: the rows to compare (default: the three sheaf types).

    Returns:
        Rows ``dataset, model, ours, paper, paper_std, gap, within`` (``gap`` = ours - paper, in points),
        in the order of ``table``.
    """
    rows = table[table.model.isin(list(models)) & table.paper_mean.notna()]
    out = pd.DataFrame({
        "dataset": rows.dataset, "model": rows.model, "ours": rows["mean"], "paper": rows.paper_mean.astype(float),
        "paper_std": rows.paper_std.astype(float),
    }).reset_index(drop=True)  # fmt: skip
    out["gap"] = out.ours - out.paper
    out["within"] = out.ours >= out.paper - out.paper_std
    return out


def curve_ends(summary: pd.DataFrame, x: str, by: Sequence[str], y: str = "test_mean") -> pd.DataFrame:
    """The points of a swept curve the text quotes: for each group ``by`` (e.g. one model on one dataset), the
    value at the smallest and at the largest ``x`` (depth, homophily), and the worst and the best point.

    Args:
        summary: one row per point of each curve (as :func:`~mmsheaf.nsd.runs.summarise` returns them).
        x: the swept column.
        by: the columns that name one curve.
        y: the value column.

    Returns:
        Rows ``*by, first_x, first, last_x, last, worst_x, worst, best_x, best`` (ties go to the smaller ``x``).
    """
    by = list(by)
    missing = [c for c in [*by, x, y] if c not in summary.columns]
    if missing:
        raise ValueError(f"curve_ends: the summary lacks the columns {missing}; it has {list(summary.columns)}")
    ordered = summary.sort_values([*by, x], kind="stable").reset_index(drop=True)
    groups = ordered.groupby(by, sort=True)[y]
    picks = {"first": groups.head(1).index, "last": groups.tail(1).index,
             "worst": groups.idxmin().to_numpy(), "best": groups.idxmax().to_numpy()}  # fmt: skip
    out = ordered.loc[picks["first"], by].reset_index(drop=True)
    for name, index in picks.items():
        rows = ordered.loc[index].set_index(by)
        key = pd.MultiIndex.from_frame(out[by]) if len(by) > 1 else pd.Index(out[by[0]])
        out[f"{name}_x"] = rows[x].reindex(key).to_numpy()
        out[name] = rows[y].reindex(key).to_numpy()
    return out


def _pm(mean: float | None, std: float | None, bold: bool = False, digits: int = 1) -> str:
    if mean is None or pd.isna(mean):
        return "--"
    text = f"{mean:.{digits}f}$\\pm${std:.{digits}f}"
    return f"\\textbf{{{text}}}" if bold else text


def accuracy_display(
    table: pd.DataFrame, datasets: Sequence[str], models: Sequence[str], display: Mapping[str, str]
) -> pd.DataFrame:
    """The accuracy table laid out for the paper: one row per dataset with our mean ± std per model (the best
    in bold) and a row beneath with the paper's numbers. Cells are LaTeX (:class:`~mmsheaf.report.latex.Latex`)."""
    rows = []
    for ds in datasets:
        sub = table[table.dataset == ds].set_index("model")
        if sub.empty:
            continue
        best = sub["mean"].max()
        ours = {"Dataset": Latex(latex_escape(resolve_node_dataset(ds).display or ds))}
        paper = {"Dataset": Latex(r"\quad\textit{paper}")}
        for m in models:
            r = sub.loc[m] if m in sub.index else None
            ours[display[m]] = Latex(_pm(r["mean"], r["std"], bold=r["mean"] == best) if r is not None else "--")
            paper[display[m]] = Latex(
                f"\\textit{{{_pm(r['paper_mean'], r['paper_std'])}}}" if r is not None and pd.notna(r["paper_mean"]) else "--"
            )
        rows += [ours, paper]
    return pd.DataFrame(rows, columns=["Dataset", *[display[m] for m in models]])


def energy_profiles(
    data: Data, runs: Mapping[str, tuple[Mapping[str, Any], TrainConfig]], split: int = 0
) -> pd.DataFrame:
    r"""Train each sheaf model once (on ``split``) and measure its sheaf Dirichlet energy after every layer.

    Args:
        data: the graph.
        runs: ``{model name: (hparams, train config)}`` (as :func:`resolve` returns them).

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
