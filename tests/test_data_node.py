"""Tests of the node datasets (mmsheaf.data.node_datasets) and graph statistics (mmsheaf.data.stats)."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from torch_geometric.data import Data
from torch_geometric.datasets import WebKB
from torch_geometric.utils import contains_self_loops, is_undirected

from mmsheaf.data import (
    NODE_DATASETS,
    DatasetNotFoundError,
    RawFileMismatchError,
    degree_and_local_homophily,
    fill_data_root,
    graph_stats,
    load_node_dataset,
    missing_node_files,
    node_dataset_names,
)
from mmsheaf.data.node_datasets import GEOM_GCN_1C4C04F, WebKBGeomGCN1c4c04f

# ------------------------------------------------------------------------------------------------------------
# Statistics on a hand-made graph
# ------------------------------------------------------------------------------------------------------------


def four_node_graph(isolated: bool = False) -> Data:
    """Undirected edges 0-1, 1-2, 2-3, 0-2 (labels 0,0,1,1), one-way, plus a duplicate and a self-loop."""
    edge_index = torch.tensor([[0, 1, 2, 0, 1, 3], [1, 2, 3, 2, 0, 3]])
    y = torch.tensor([0, 0, 1, 1] + ([0] if isolated else []))
    return Data(x=torch.zeros(y.numel(), 3), y=y, edge_index=edge_index, num_nodes=y.numel())


def test_graph_stats_closed_form() -> None:
    stats = graph_stats(four_node_graph())
    assert stats == {
        "nodes": 4,
        "edges": 4,
        "features": 3,
        "classes": 2,
        "edge_homophily": pytest.approx(0.5),
        "node_homophily": pytest.approx((0.5 + 0.5 + 1 / 3 + 1.0) / 4),
        "mean_degree": pytest.approx(2.0),
    }


def test_degree_and_local_homophily_closed_form() -> None:
    deg, local = degree_and_local_homophily(four_node_graph(isolated=True))
    assert deg.tolist() == [2, 2, 3, 1, 0]
    assert torch.allclose(local[:4], torch.tensor([0.5, 0.5, 1 / 3, 1.0]))
    assert math.isnan(local[4])
    # PyG's node homophily counts the isolated node as 0; the NaN-aware mean skips it.
    stats = graph_stats(four_node_graph(isolated=True))
    assert stats["node_homophily"] == pytest.approx(float(torch.nan_to_num(local).sum()) / 5)
    assert float(local.nanmean()) == pytest.approx((0.5 + 0.5 + 1 / 3 + 1.0) / 4)
    assert stats["mean_degree"] == pytest.approx(8 / 5)


def test_graph_stats_needs_labels() -> None:
    with pytest.raises(ValueError, match="data.y"):
        graph_stats(Data(edge_index=torch.tensor([[0], [1]]), num_nodes=2))


# ------------------------------------------------------------------------------------------------------------
# Registry and errors (no data needed)
# ------------------------------------------------------------------------------------------------------------


def test_registry_names_and_specs() -> None:
    names = node_dataset_names()
    assert names == [
        "texas", "wisconsin", "film", "squirrel", "chameleon", "cornell-nsd", "cornell", "citeseer", "pubmed",
        "cora",
    ]  # fmt: skip
    assert node_dataset_names(synthetic=True) == [*names, "csbm"]
    for name in names:
        spec = NODE_DATASETS[name]
        assert spec.name == name and spec.display and spec.source and len(spec.raw_files) >= 12
    assert NODE_DATASETS["cornell-nsd"].display == "Cornell (NSD-era)"
    assert NODE_DATASETS["cornell-nsd"].subdir == "WebKB_geomgcn_1c4c04f"
    with pytest.raises(dataclasses.FrozenInstanceError):
        NODE_DATASETS["cora"].subdir = "x"  # type: ignore[misc]


def test_cornell_nsd_downloads_from_the_old_geom_gcn_commit() -> None:
    assert issubclass(WebKBGeomGCN1c4c04f, WebKB)
    assert GEOM_GCN_1C4C04F.startswith("1c4c04f") and len(GEOM_GCN_1C4C04F) == 40
    assert WebKBGeomGCN1c4c04f.url == (
        f"https://raw.githubusercontent.com/graphdml-uiuc-jlu/geom-gcn/{GEOM_GCN_1C4C04F}"
    )
    assert NODE_DATASETS["cornell-nsd"].factory is WebKBGeomGCN1c4c04f


def test_unknown_name_lists_known_names() -> None:
    with pytest.raises(ValueError) as info:
        load_node_dataset("texsa")
    message = str(info.value)
    assert "texsa" in message and "Did you mean 'texas'" in message
    for name in node_dataset_names():
        assert name in message


def test_names_are_case_insensitive_with_aliases(tmp_path: Path) -> None:
    assert missing_node_files("Actor", tmp_path) == missing_node_files("film", tmp_path)
    assert len(missing_node_files("CORA", tmp_path)) == 18


def test_missing_data_offline_raises_with_instructions(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("MMSHEAF_OFFLINE", "1")
    with pytest.raises(DatasetNotFoundError) as info:
        load_node_dataset("texas", root=tmp_path)
    assert isinstance(info.value, FileNotFoundError)
    message = str(info.value)
    assert "texas" in message
    assert str(tmp_path / "WebKB" / "texas" / "raw" / "out1_graph_edges.txt") in message
    assert "DATA_MIRROR" in message and "download" in message and "MMSHEAF_OFFLINE" in message
    assert not (tmp_path / "WebKB").exists()  # nothing was created


def test_missing_data_root_folder(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("MMSHEAF_OFFLINE", raising=False)
    root = tmp_path / "does-not-exist"
    with pytest.raises(DatasetNotFoundError, match="does not exist") as info:
        load_node_dataset("cora", root=root, download=False)
    message = str(info.value)
    assert "ind.cora.allx" in message and "and 6 more" in message  # 18 files, 12 listed
    assert not root.exists()


def test_data_root_comes_from_the_environment(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("MMSHEAF_DATA", str(tmp_path / "env-root"))
    with pytest.raises(DatasetNotFoundError, match="env-root"):
        load_node_dataset("wisconsin", download=False)


def test_failed_download_becomes_dataset_not_found(tmp_path: Path, monkeypatch) -> None:
    def no_network(self) -> None:
        raise OSError("no network in this test")

    monkeypatch.setattr(WebKB, "download", no_network)
    with pytest.raises(DatasetNotFoundError, match="download attempt failed.*no network") as info:
        load_node_dataset("cornell-nsd", root=tmp_path, download=True)
    assert isinstance(info.value.__cause__, OSError)
    assert "WebKB_geomgcn_1c4c04f" in str(info.value)


def _write_fake_webkb(raw: Path, name: str) -> None:
    """A 5-node WebKB-layout dataset: directed edges, a self-loop and a reciprocal pair."""
    raw.mkdir(parents=True)
    x = np.eye(5, 3)
    y = [0, 1, 0, 1, 2]
    lines = ["node_id\tfeature\tlabel"] + [
        f"{i}\t{','.join(str(int(v)) for v in x[i])}\t{y[i]}" for i in range(5)
    ]
    (raw / "out1_node_feature_label.txt").write_text("\n".join(lines) + "\n")
    edges = [(0, 1), (1, 0), (1, 2), (3, 3), (3, 4)]
    (raw / "out1_graph_edges.txt").write_text(
        "\n".join(["node_id\tnode_id"] + [f"{u}\t{v}" for u, v in edges]) + "\n"
    )
    for i in range(10):
        masks = np.zeros((3, 5), dtype=np.uint8)
        masks[0, :3], masks[1, 3], masks[2, 4] = 1, 1, 1
        np.savez(
            raw / f"{name}_split_0.6_0.2_{i}.npz", train_mask=masks[0], val_mask=masks[1], test_mask=masks[2]
        )


def test_pipeline_on_a_fake_webkb_layout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _write_fake_webkb(tmp_path / "WebKB" / "texas" / "raw", "texas")
    assert missing_node_files("texas", tmp_path) == []
    with pytest.raises(RawFileMismatchError, match="12 raw file"):  # not Texas's files: refused ...
        load_node_dataset("texas", root=tmp_path, download=False)
    monkeypatch.setenv("MMSHEAF_CHECK_HASHES", "0")  # ... unless the user says they changed them on purpose
    data = load_node_dataset("texas", root=tmp_path, download=False)
    assert data.name == "texas"
    assert is_undirected(data.edge_index) and not contains_self_loops(data.edge_index)
    assert data.edge_index.tolist() == [[0, 1, 1, 2, 3, 4], [1, 0, 2, 1, 4, 3]]
    assert data.train_mask.shape == (5, 10) and data.train_mask.dtype == torch.bool
    assert graph_stats(data)["edges"] == 3
    assert (tmp_path / "WebKB" / "texas" / "processed").is_dir()  # PyG's own cache, nothing else


# ------------------------------------------------------------------------------------------------------------
# Real data (copied from the mirror into a temporary data root)
# ------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def real_graph(data_mirror: Path, real_data_root: Path) -> Callable[[str], Data]:
    """Load a dataset once per session from the temporary data root (copying its files from the mirror)."""
    cache: dict[str, Data] = {}

    def load(name: str) -> Data:
        if name not in cache:
            fill_data_root(data_mirror, real_data_root, only=[name])
            cache[name] = load_node_dataset(name, root=real_data_root, download=False)
        return cache[name]

    return load


# name: (nodes, undirected edges without self-loops, features, classes, edge homophily or None)
EXPECTED = {
    "cora": (2708, 5278, 1433, 7, 0.81),
    "citeseer": (3327, 4552, 3703, 6, 0.74),
    "texas": (183, 279, 1703, 5, None),
    "wisconsin": (251, 450, 1703, 5, None),
    "cornell": (183, 277, 1703, 5, 0.13),
    "cornell-nsd": (183, 277, 1703, 5, 0.30),
    "chameleon": (2277, 31371, 2325, 5, 0.23),
    "squirrel": (5201, 198353, 2089, 5, 0.22),
    "film": (7600, 26659, 932, 5, 0.22),
}


@pytest.mark.data
@pytest.mark.parametrize("name", list(EXPECTED))
def test_real_dataset_statistics(name: str, real_graph: Callable[[str], Data]) -> None:
    nodes, edges, features, classes, edge_h = EXPECTED[name]
    data = real_graph(name)
    stats = graph_stats(data)
    assert (stats["nodes"], stats["edges"], stats["features"], stats["classes"]) == (
        nodes, edges, features, classes,
    )  # fmt: skip
    if edge_h is not None:
        assert stats["edge_homophily"] == pytest.approx(edge_h, abs=0.02)
    assert data.name == name
    assert data.edge_index.size(1) == 2 * edges
    assert is_undirected(data.edge_index) and not contains_self_loops(data.edge_index)
    for key in ("train_mask", "val_mask", "test_mask"):
        assert data[key].shape == (nodes, 10) and data[key].dtype == torch.bool
    overlap = data.train_mask.int() + data.val_mask.int() + data.test_mask.int()
    assert int(overlap.max()) == 1  # disjoint in every split


@pytest.mark.data
def test_nsd_cornell_has_texas_features_and_labels(real_graph: Callable[[str], Data]) -> None:
    old, new, texas = real_graph("cornell-nsd"), real_graph("cornell"), real_graph("texas")
    assert torch.equal(old.x, texas.x) and torch.equal(old.y, texas.y)
    # The fix (geom-gcn 3cc5710) renumbered the nodes: the same Cornell graph up to relabelling, new labels.
    deg_old, _ = degree_and_local_homophily(old)
    deg_new, _ = degree_and_local_homophily(new)
    assert torch.equal(deg_old.sort().values, deg_new.sort().values)
    assert not torch.equal(torch.bincount(old.y), torch.bincount(new.y))


@pytest.mark.data
def test_pubmed_offline_names_the_missing_allx(data_mirror: Path, real_data_root: Path, monkeypatch) -> None:
    fill_data_root(data_mirror, real_data_root, only=["pubmed"])
    monkeypatch.setenv("MMSHEAF_OFFLINE", "1")
    missing = missing_node_files("pubmed", real_data_root)
    assert [p.name for p in missing] == ["ind.pubmed.allx"]
    with pytest.raises(DatasetNotFoundError, match=r"ind\.pubmed\.allx") as info:
        load_node_dataset("pubmed", root=real_data_root)
    assert "pubmed" in str(info.value) and "sha256" in str(info.value)
