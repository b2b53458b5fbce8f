"""Node-classification datasets of the NSD benchmark, loaded through PyG with the 10 geom-gcn splits.

The nine datasets of Table 1 of `"Neural Sheaf Diffusion" <https://arxiv.org/abs/2202.04579>`_
(Bodnar et al., NeurIPS 2022), with the splits of `"Geom-GCN" <https://openreview.net/forum?id=S1e2agrFvS>`_
(Pei et al., ICLR 2020), plus the corrected Cornell and the embedded synthetic ``csbm``. Raw files live under
:func:`mmsheaf.paths.data_root` in PyG's layouts; PyG writes its ``processed/`` folders next to them.

Two Cornell versions: ``cornell`` is the corrected file that PyG downloads today (geom-gcn master, edge
homophily about 0.13); ``cornell-nsd`` is the older geom-gcn file (commit 1c4c04f) whose features and labels
are Texas's, which the NSD paper used (edge homophily about 0.30).
"""

from __future__ import annotations

import difflib
import json
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import torch
from torch_geometric.data import Data
from torch_geometric.datasets import Actor, Planetoid, WebKB, WikipediaNetwork
from torch_geometric.utils import remove_self_loops, to_undirected

from mmsheaf import paths
from mmsheaf.atomic import write_json_atomic
from mmsheaf.data.errors import (
    OFFLINE_ENV,
    DatasetNotFoundError,
    DatasetValidationError,
    downloads_allowed,
    missing_files,
    not_found_message,
)
from mmsheaf.data.integrity import verify_known_files
from mmsheaf.data.synthetic import contextual_sbm
from mmsheaf.data.validate import first_unparsable_line, invalid, validate_node_graph

__all__ = [
    "GEOM_GCN_1C4C04F",
    "NODE_DATASETS",
    "NODE_DATASET_ALIASES",
    "DatasetNotFoundError",
    "NodeDatasetSpec",
    "WebKBGeomGCN1c4c04f",
    "load_node_dataset",
    "missing_node_files",
    "node_dataset_names",
    "resolve_node_dataset",
]

GEOM_GCN_1C4C04F = "1c4c04f93fa6ada91976cda8d7577eec0e3e5cce"
"""The geom-gcn commit pinned by neural-sheaf-diffusion (``utils/heterophilic.py``): the NSD-era Cornell."""


class WebKBGeomGCN1c4c04f(WebKB):
    """PyG's :class:`~torch_geometric.datasets.WebKB` downloading from geom-gcn commit 1c4c04f.

    At that commit ``new_data/cornell/out1_node_feature_label.txt`` is byte-identical to Texas's, so Cornell's
    edges carry Texas's features and labels (edge homophily about 0.30): the version the NSD paper used.
    The split files are byte-identical to master's.
    """

    url = f"https://raw.githubusercontent.com/graphdml-uiuc-jlu/geom-gcn/{GEOM_GCN_1C4C04F}"


@dataclass(frozen=True)
class NodeDatasetSpec:
    """How to load one node dataset.

    Args:
        name: Registry name (lower case), also set as ``data.name``.
        factory: Called as ``factory(root=str(data_root / subdir), **kwargs)``; returns a dataset whose item
            ``[0]`` is the graph (a PyG dataset class, or a function returning a one-element list).
        subdir: Folder under the data root passed to ``factory`` as ``root`` (PyG's ``root``).
        kwargs: Keyword arguments of ``factory`` besides ``root``.
        raw_files: Files that must exist before loading, relative to the data root.
        source: One line on where the files come from.
        display: Label for tables and figures, e.g. ``"Cornell (NSD-era)"``.
        note: Extra remark shown when files are missing (e.g. a file known to be absent from the mirror).
        classes: Number of classes; loaded labels must lie in ``0 .. classes - 1``.
    """

    name: str
    factory: Callable[..., Any]
    subdir: str
    kwargs: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    raw_files: tuple[str, ...] = ()
    source: str = ""
    display: str = ""
    note: str | None = None
    classes: int | None = None

    @property
    def synthetic(self) -> bool:
        """Whether the dataset is generated (needs no files)."""
        return not self.raw_files


def _splits(folder: str, prefix: str) -> tuple[str, ...]:
    return tuple(f"{folder}/{prefix}_split_0.6_0.2_{i}.npz" for i in range(10))


def _planetoid(name: str, display: str, classes: int, note: str | None = None) -> NodeDatasetSpec:
    low = name.lower()
    folder = f"Planetoid/{name}/geom-gcn/raw"
    parts = ("x", "tx", "allx", "y", "ty", "ally", "graph", "test.index")
    return NodeDatasetSpec(
        name=low,
        factory=Planetoid,
        subdir="Planetoid",
        kwargs=MappingProxyType({"name": name, "split": "geom-gcn"}),
        raw_files=tuple(f"{folder}/ind.{low}.{p}" for p in parts) + _splits(folder, low),
        source="Planetoid ind.* files (kimiyoung/planetoid) + geom-gcn splits",
        display=display,
        note=note,
        classes=classes,
    )


def _webkb(
    name: str, display: str, factory: type[WebKB] = WebKB, subdir: str = "WebKB", source: str = ""
) -> NodeDatasetSpec:
    folder = f"{subdir}/{name}/raw"
    return NodeDatasetSpec(
        name=name if factory is WebKB else f"{name}-nsd",
        factory=factory,
        subdir=subdir,
        kwargs=MappingProxyType({"name": name}),
        raw_files=(f"{folder}/out1_node_feature_label.txt", f"{folder}/out1_graph_edges.txt")
        + _splits(folder, name),
        source=source or "WebKB (CMU) via geom-gcn master new_data/ + splits/",
        display=display,
        classes=5,
    )


def _wikipedia(name: str, display: str) -> NodeDatasetSpec:
    folder = f"WikipediaNetwork/{name}/geom_gcn/raw"
    return NodeDatasetSpec(
        name=name,
        factory=WikipediaNetwork,
        subdir="WikipediaNetwork",
        kwargs=MappingProxyType({"name": name, "geom_gcn_preprocess": True}),
        raw_files=(f"{folder}/out1_node_feature_label.txt", f"{folder}/out1_graph_edges.txt")
        + _splits(folder, name),
        source="Wikipedia network (Rozemberczki et al.) preprocessed by geom-gcn f1fc0d1",
        display=display,
        classes=5,
    )


def _csbm_factory(root: str | None = None, **kwargs: Any) -> list[Data]:
    """Adapter so the synthetic CSBM fits the registry (``root`` is ignored)."""
    return [contextual_sbm(**kwargs)]


_PUBMED_NOTE = (
    "the project's shared mirror lacks ind.pubmed.allx (7,578,385 bytes, sha256 "
    "508e538e2abdccdd54c4d3e9f49d638b4af7107d85845f66ddea5a5152658b7e); PyG downloads it from "
    "kimiyoung/planetoid, or place it in Planetoid/PubMed/geom-gcn/raw/ (and Planetoid/PubMed/raw/)"
)

_SPECS: tuple[NodeDatasetSpec, ...] = (
    # Order: NSD Table 1, heterophilic to homophilic, with the corrected Cornell next to NSD's.
    _webkb("texas", "Texas"),
    _webkb("wisconsin", "Wisconsin"),
    NodeDatasetSpec(
        name="film",
        factory=Actor,
        subdir="Actor",
        raw_files=("Actor/raw/out1_node_feature_label.txt", "Actor/raw/out1_graph_edges.txt")
        + _splits("Actor/raw", "film"),
        source="actor co-occurrence graph (Tang et al., KDD 2009) via geom-gcn master",
        display="Film",
        classes=5,
    ),
    _wikipedia("squirrel", "Squirrel"),
    _wikipedia("chameleon", "Chameleon"),
    _webkb(
        "cornell",
        "Cornell (NSD-era)",
        factory=WebKBGeomGCN1c4c04f,
        subdir="WebKB_geomgcn_1c4c04f",
        source="WebKB Cornell edges with Texas's features/labels, geom-gcn commit 1c4c04f (as used by NSD)",
    ),
    _webkb("cornell", "Cornell", source="WebKB Cornell, corrected files of geom-gcn master (3cc5710 on)"),
    _planetoid("CiteSeer", "CiteSeer", 6),
    _planetoid("PubMed", "PubMed", 3, note=_PUBMED_NOTE),
    _planetoid("Cora", "Cora", 7),
    NodeDatasetSpec(
        name="csbm",
        factory=_csbm_factory,
        subdir="",
        source="contextual stochastic block model generated by mmsheaf.data.synthetic (default CSBMConfig)",
        display="CSBM (synthetic)",
    ),
)

NODE_DATASETS: Mapping[str, NodeDatasetSpec] = MappingProxyType({s.name: s for s in _SPECS})
"""Registry of node datasets: name -> :class:`NodeDatasetSpec` (read-only)."""

NODE_DATASET_ALIASES: Mapping[str, str] = MappingProxyType(
    {"actor": "film", "cornell-geomgcn": "cornell-nsd"}
)
"""Other accepted names."""


def node_dataset_names(synthetic: bool = False) -> list[str]:
    """Names of the registered node datasets, heterophilic to homophilic as in NSD's Table 1.

    Args:
        synthetic: Also list the generated ``csbm`` (last).

    Returns:
        ``["texas", "wisconsin", "film", "squirrel", "chameleon", "cornell-nsd", "cornell", "citeseer",
        "pubmed", "cora"]`` (+ ``"csbm"``).
    """
    return [name for name, spec in NODE_DATASETS.items() if synthetic or not spec.synthetic]


def resolve_node_dataset(name: str) -> NodeDatasetSpec:
    """The spec of ``name`` (case-insensitive, aliases accepted); a ``ValueError`` lists the known names."""
    key = str(name).strip().lower()
    key = NODE_DATASET_ALIASES.get(key, key)
    if key in NODE_DATASETS:
        return NODE_DATASETS[key]
    known = list(NODE_DATASETS) + list(NODE_DATASET_ALIASES)
    close = difflib.get_close_matches(key, known, n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise ValueError(f"Unknown node dataset {name!r}: choose one of {', '.join(NODE_DATASETS)}.{hint}")


def missing_node_files(name: str, root: str | Path | None = None) -> list[Path]:
    """Full paths of the raw files of dataset ``name`` that are missing under ``root`` (default data root)."""
    spec = resolve_node_dataset(name)
    return missing_files(_root(root), spec.raw_files)


def _root(root: str | Path | None) -> Path:
    return Path(root).expanduser().resolve() if root is not None else paths.data_root()


def _not_found(
    spec: NodeDatasetSpec, root: Path, missing: Sequence[Path], reason: str
) -> DatasetNotFoundError:
    download_hint = (
        f"let PyG download them: run with internet access and {OFFLINE_ENV} unset "
        f"(or pass download=True); PyG's {getattr(spec.factory, '__name__', spec.factory)} fetches them into "
        f"{root / spec.subdir}"
    )
    message = not_found_message(
        spec.name, root, missing, alternatives=[download_hint], reason=reason, note=spec.note
    )
    return DatasetNotFoundError(message)


def load_node_dataset(name: str, root: str | Path | None = None, download: bool | None = None) -> Data:
    r"""Load a node-classification graph with its 10 geom-gcn splits, undirected and without self-loops.

    The graph is built by PyG's dataset class (which writes ``processed/`` next to ``raw/`` on first use);
    then, as in Neural Sheaf Diffusion, self-loops are removed and every edge is given both directions
    (:func:`~torch_geometric.utils.remove_self_loops`, then :func:`~torch_geometric.utils.to_undirected`).
    Nothing else is cached. ``"csbm"`` returns :func:`~mmsheaf.data.synthetic.contextual_sbm` with its
    default config and needs no files.

    Args:
        name: A name of :func:`node_dataset_names` (case-insensitive; ``"actor"`` = ``"film"``) or
            ``"csbm"``.
        root: The data root (default :func:`mmsheaf.paths.data_root`, i.e. ``MMSHEAF_DATA`` or
            ``<repo>/data``). The dataset's files are looked up under ``root / spec.subdir`` in PyG's layout.
        download: Whether PyG may download missing raw files. ``None``: yes unless the environment sets
            ``MMSHEAF_OFFLINE=1``.

    Returns:
        A :class:`~torch_geometric.data.Data` with ``x``, ``y``, ``edge_index``, ``train_mask``,
        ``val_mask``, ``test_mask`` and ``name``.

    Shapes:
        - **x:** :math:`(N, F)` float32
        - **y:** :math:`(N,)` int64
        - **edge_index:** :math:`(2, 2|E|)`, both directions of each undirected edge, no self-loops
        - **train_mask / val_mask / test_mask:** :math:`(N, 10)` bool, one column per geom-gcn split

    Raises:
        ValueError: ``name`` is unknown (the message lists the known names).
        DatasetNotFoundError: raw files are missing and downloads are off or failed (the message lists the
            missing files and how to provide them).
    """
    spec = resolve_node_dataset(name)
    base = _root(root)
    missing = missing_files(base, spec.raw_files)
    if missing and not downloads_allowed(download):
        why = "download=False" if download is False else f"{OFFLINE_ENV}=1"
        raise _not_found(spec, base, missing, f"Downloads are off ({why}), so nothing was downloaded.")

    restore = [_download_hint(spec, base)]
    verify_known_files(base, spec.raw_files, dataset=spec.name, restore=restore)
    processed = _processed_dir(spec, base)
    if processed is not None and not missing:
        _drop_stale_processed(processed, base, spec.raw_files)

    dataset_root = str(base / spec.subdir) if spec.subdir else str(base)
    try:
        dataset = spec.factory(root=dataset_root, **spec.kwargs)
    except Exception as exc:
        if not missing:
            raise _unreadable(spec, base, exc) from exc
        still_missing = missing_files(base, spec.raw_files) or list(missing)
        reason = f"The download attempt failed: {type(exc).__name__}: {exc}"
        raise _not_found(spec, base, still_missing, reason) from exc
    if missing:  # PyG downloaded them: check them as the copied ones are
        verify_known_files(base, spec.raw_files, dataset=spec.name, restore=restore)
    if processed is not None:
        _stamp_processed(processed, base, spec.raw_files)
    data = dataset[0]

    roles = _raw_roles(base, spec.raw_files)
    validate_node_graph(data, spec.name, roles, classes=spec.classes)
    edge_index, _ = remove_self_loops(data.edge_index)
    data.edge_index = to_undirected(edge_index, num_nodes=data.num_nodes)
    for key in ("train_mask", "val_mask", "test_mask"):
        mask = getattr(data, key, None)
        if mask is not None:
            data[key] = mask.to(torch.bool)  # Planetoid's geom-gcn masks are uint8
    data.name = spec.name
    return data


_PLANETOID_ROLES = {
    "x": "features", "tx": "features", "allx": "features", "test.index": "features",
    "y": "labels", "ty": "labels", "ally": "labels", "graph": "edges",
}  # fmt: skip
_TEXT_FIELDS = {"out1_node_feature_label.txt": ("int", "numbers", "int"), "out1_graph_edges.txt": ("int", "int")}


def _raw_roles(base: Path, raw_files: Sequence[str]) -> dict[str, list[Path]]:
    """The raw files by what they hold (features, labels, edges, splits), for the structural checks."""
    roles: dict[str, list[Path]] = {}
    for rel in raw_files:
        name = Path(rel).name
        if name.endswith(".npz"):
            kinds = ["splits"]
        elif name == "out1_node_feature_label.txt":
            kinds = ["features", "labels"]
        elif name == "out1_graph_edges.txt":
            kinds = ["edges"]
        else:  # ind.<name>.<part>
            kinds = [_PLANETOID_ROLES.get(name.split(".", 2)[-1], "features")]
        for kind in kinds:
            roles.setdefault(kind, []).append(base / rel)
    return roles


def _unreadable(spec: NodeDatasetSpec, base: Path, exc: Exception) -> DatasetValidationError:
    """PyG could not read present raw files: name the first line that does not parse, or all the files."""
    for rel in spec.raw_files:
        fields = _TEXT_FIELDS.get(Path(rel).name)
        where = first_unparsable_line(base / rel, fields) if fields else None
        if where:
            return invalid(spec.name, base / rel, f"the file does not parse at {where}")
    files = [base / rel for rel in spec.raw_files]
    name = getattr(spec.factory, "__name__", spec.factory)
    return invalid(spec.name, files, f"PyG's {name} could not read the raw files: {type(exc).__name__}: {exc}")


def _download_hint(spec: NodeDatasetSpec, base: Path) -> str:
    name = getattr(spec.factory, "__name__", spec.factory)
    return f"let PyG's {name} download it again (delete it, unset {OFFLINE_ENV}, load with download=True)"


PROCESSED_STAMP = "mmsheaf_raw_files.json"
"""Written into PyG's ``processed/`` folder: size and modification time of the raw files it was built from."""


def _processed_dir(spec: NodeDatasetSpec, base: Path) -> Path | None:
    """PyG's ``processed/`` folder of ``spec``: next to its ``raw/`` folder (every class used here)."""
    return base / Path(spec.raw_files[0]).parent.parent / "processed" if spec.raw_files else None


def _raw_stamp(base: Path, raw_files: Sequence[str]) -> dict[str, list[int]]:
    stamp = {}
    for rel in raw_files:
        stat = (base / rel).stat()
        stamp[rel] = [stat.st_size, stat.st_mtime_ns]
    return stamp


def _drop_stale_processed(processed: Path, base: Path, raw_files: Sequence[str]) -> None:
    """Delete PyG's ``processed/`` when it was built from other raw files (or unknown ones).

    PyG reuses ``processed/`` without looking at ``raw/`` again, so a restored or replaced raw file would
    otherwise never be read, and a damaged one would be noticed only by the hash check.
    """
    if not processed.is_dir():
        return
    try:
        recorded = json.loads((processed / PROCESSED_STAMP).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        recorded = None
    if recorded != _raw_stamp(base, raw_files):
        shutil.rmtree(processed)


def _stamp_processed(processed: Path, base: Path, raw_files: Sequence[str]) -> None:
    if processed.is_dir() and not (processed / PROCESSED_STAMP).is_file():
        write_json_atomic(processed / PROCESSED_STAMP, _raw_stamp(base, raw_files))
