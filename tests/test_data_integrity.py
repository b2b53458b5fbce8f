"""Damaged raw files fail loudly: known sizes and sha256 (mmsheaf.data.integrity) and structural checks
(mmsheaf.data.validate), each on a copy of the real files in a temporary folder, never in the mirror."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from torch_geometric.data import Data

from mmsheaf.data import (
    DatasetValidationError,
    RawFileMismatchError,
    fill_data_root,
    known_files,
    load_clothing_reviews,
    load_mnist5k,
    load_movielens100k,
    load_node_dataset,
    verify_known_files,
)
import mmsheaf.data.integrity as integrity
from mmsheaf.data.validate import first_unparsable_line, validate_node_graph

TEXAS = "WebKB/texas/raw"
ML = "MovieLens100K/raw"
CLOTHING = "WomensClothingReviews/raw/Womens Clothing E-Commerce Reviews.csv"


@pytest.fixture(autouse=True)
def _own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test has its own hash cache (``MMSHEAF_CACHE``), so none sees another's digests."""
    monkeypatch.setenv("MMSHEAF_CACHE", str(tmp_path / "cache"))


def _copy(mirror: Path, tmp_path: Path, name: str) -> Path:
    root = tmp_path / "data"
    fill_data_root(mirror, root, only=[name])
    return root


def _cut(path: Path, fraction: float = 0.5, *, mid_line: bool = True) -> None:
    """Keep the first ``fraction`` of ``path``'s bytes, cut mid-line (or at a line end)."""
    data = path.read_bytes()
    end = int(len(data) * fraction)
    if mid_line:
        while data[end - 1 : end] == b"\n":
            end -= 1
    else:
        end = data.rindex(b"\n", 0, end) + 1
    path.write_bytes(data[:end])


def _hashes_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MMSHEAF_CHECK_HASHES", "0")


# ------------------------------------------------------------------------------------------------------------
# The table of known files
# ------------------------------------------------------------------------------------------------------------


def test_the_table_lists_every_raw_file_of_the_mirror_layout() -> None:
    table = known_files()
    assert len(table) == 193  # the mirror's 191 files and the missing ind.pubmed.allx in its two folders
    assert table[f"{ML}/u.data"].size == 1_979_173
    assert all(re.fullmatch(r"[0-9a-f]{64}", f.sha256) for f in table.values())


@pytest.mark.data
def test_the_table_agrees_with_the_mirror_readme(data_mirror: Path) -> None:
    """Every ``| `path` | bytes | `sha256` |`` row and every ``sha256  path`` line of the mirror's README."""
    text = (data_mirror / "README.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\| `([^`]+)` \| ([\d,]+) \| `([0-9a-f]{64})` \|", text, re.M)
    lines = re.findall(r"^\s+([0-9a-f]{64})  (\S.*)$", text, re.M)
    cold = re.findall(r"^\| `(MovieLens1M_coldstart/raw/[^`]+)` \| `([0-9a-f]{64})` \|", text, re.M)
    table = known_files()
    assert len(rows) + len(lines) + len(cold) == 191
    for rel, size, digest in rows:
        assert (table[rel].size, table[rel].sha256) == (int(size.replace(",", "")), digest), rel
    for digest, rel in lines:
        assert table[rel].sha256 == digest, rel
    for rel, digest in cold:
        assert table[rel].sha256 == digest, rel
    allx = re.search(r"sha256 `([0-9a-f]{64})`, size (\d+)", text)
    assert allx is not None
    assert table["Planetoid/PubMed/raw/ind.pubmed.allx"].sha256 == allx.group(1)


# ------------------------------------------------------------------------------------------------------------
# Sizes and hashes: make data and the loaders
# ------------------------------------------------------------------------------------------------------------


@pytest.mark.data
def test_a_truncated_feature_file_is_refused_by_size_then_by_structure(
    data_mirror: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = _copy(data_mirror, tmp_path, "texas")
    features = root / TEXAS / "out1_node_feature_label.txt"
    _cut(features)
    with pytest.raises(RawFileMismatchError) as info:
        load_node_dataset("texas", root=root, download=False)
    message = str(info.value)
    assert str(features) in message
    assert f"expected {known_files()[f'{TEXAS}/out1_node_feature_label.txt'].size:,} bytes" in message
    assert f"found    {features.stat().st_size:,} bytes" in message
    assert "make data" in message and "MMSHEAF_CHECK_HASHES=0" in message

    _hashes_off(monkeypatch)  # a user's own edited file: the structural check still stops it
    with pytest.raises(DatasetValidationError, match=r"edges reach node 18\d but the features describe") as info:
        load_node_dataset("texas", root=root, download=False)
    assert str(features) in str(info.value) and "Dataset 'texas'" in str(info.value)


@pytest.mark.data
def test_an_empty_feature_file_is_refused(
    data_mirror: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = _copy(data_mirror, tmp_path, "wisconsin")
    features = root / "WebKB/wisconsin/raw/out1_node_feature_label.txt"
    features.write_bytes(b"")
    with pytest.raises(RawFileMismatchError, match="found    0 bytes"):
        load_node_dataset("wisconsin", root=root, download=False)
    _hashes_off(monkeypatch)
    with pytest.raises(DatasetValidationError) as info:
        load_node_dataset("wisconsin", root=root, download=False)
    assert str(features) in str(info.value) and "Dataset 'wisconsin'" in str(info.value)


@pytest.mark.data
def test_a_garbage_edge_line_names_the_file_and_the_line(
    data_mirror: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = _copy(data_mirror, tmp_path, "chameleon")
    edges = root / "WikipediaNetwork/chameleon/geom_gcn/raw/out1_graph_edges.txt"
    lines = edges.read_text().split("\n")
    lines[100] = "12\tnot-a-node"
    edges.write_text("\n".join(lines))
    _hashes_off(monkeypatch)
    with pytest.raises(DatasetValidationError) as info:
        load_node_dataset("chameleon", root=root, download=False)
    message = str(info.value)
    assert str(edges) in message and "line 101: '12\\tnot-a-node'" in message
    assert "Dataset 'chameleon'" in message


@pytest.mark.data
def test_a_restored_file_is_read_again_not_the_stale_processed_graph(
    data_mirror: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PyG reuses processed/ without reading raw/ again: a replaced raw file must drop it."""
    root = _copy(data_mirror, tmp_path, "texas")
    assert load_node_dataset("texas", root=root, download=False).num_nodes == 183
    features = root / TEXAS / "out1_node_feature_label.txt"
    _cut(features, 0.5)
    _hashes_off(monkeypatch)
    with pytest.raises(DatasetValidationError):  # the cut file is read, not the graph processed before
        load_node_dataset("texas", root=root, download=False)
    features.unlink()
    fill_data_root(data_mirror, root, only=["texas"])  # `make data` restores it ...
    assert load_node_dataset("texas", root=root, download=False).num_nodes == 183  # ... and it is read again


@pytest.mark.data
def test_truncated_movielens_files_are_refused_against_u_info(
    data_mirror: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = _copy(data_mirror, tmp_path, "movielens100k")
    u_data, u_item = root / ML / "u.data", root / ML / "u.item"
    _cut(u_data, 0.5, mid_line=False)
    with pytest.raises(RawFileMismatchError, match=re.escape(str(u_data))):
        load_movielens100k(root)
    _hashes_off(monkeypatch)
    with pytest.raises(DatasetValidationError, match=r"u.data holds 50,\d{3} ratings but u.info says 100,000"):
        load_movielens100k(root)

    fill_data_root(data_mirror, root, only=["movielens100k"])  # restored; now cut u.item mid-line
    _cut(u_item, 0.6)
    with pytest.raises(DatasetValidationError, match=r"u.item holds 1,\d{3} rows") as info:
        load_movielens100k(root)
    assert str(u_item) in str(info.value)


@pytest.mark.data
def test_a_garbage_rating_line_is_refused(
    data_mirror: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = _copy(data_mirror, tmp_path, "movielens100k")
    u_data = root / ML / "u.data"
    lines = u_data.read_text().split("\n")
    lines[6] = "x7\t242\t3\t881250949"
    u_data.write_text("\n".join(lines))
    _hashes_off(monkeypatch)
    with pytest.raises(DatasetValidationError, match=r"'user_id' holds non-integer .* row 7") as info:
        load_movielens100k(root)
    assert str(u_data) in str(info.value)


@pytest.mark.data
def test_a_wrong_sized_clothing_csv_is_refused(data_mirror: Path, tmp_path: Path) -> None:
    root = _copy(data_mirror, tmp_path, "clothing")
    csv = root / CLOTHING
    _cut(csv, 0.9, mid_line=False)
    with pytest.raises(RawFileMismatchError, match="expected 8,483,448 bytes") as info:
        load_clothing_reviews(root)
    assert str(csv) in str(info.value)


@pytest.mark.data
def test_a_file_of_the_right_size_with_a_wrong_hash_is_refused(data_mirror: Path, tmp_path: Path) -> None:
    root = _copy(data_mirror, tmp_path, "mnist5k")
    gz = root / "MNIST5k/raw/mnist_5k.csv.gz"
    data = bytearray(gz.read_bytes())
    data[len(data) // 2] ^= 0xFF
    gz.write_bytes(bytes(data))
    with pytest.raises(RawFileMismatchError) as info:
        load_mnist5k(root)
    message = str(info.value)
    assert str(gz) in message and "found    1,106,785 bytes, sha256 " in message
    assert known_files()["MNIST5k/raw/mnist_5k.csv.gz"].sha256 in message


@pytest.mark.data
def test_make_data_refuses_a_damaged_mirror_and_copies_nothing(data_mirror: Path, tmp_path: Path) -> None:
    mirror = tmp_path / "mirror"
    fill_data_root(data_mirror, mirror, only=["texas"])  # a copy of part of the mirror, damaged below
    _cut(mirror / TEXAS / "out1_graph_edges.txt")
    root = tmp_path / "data"
    with pytest.raises(RawFileMismatchError, match="damaged in the mirror") as info:
        fill_data_root(mirror, root)
    assert str(mirror / TEXAS / "out1_graph_edges.txt") in str(info.value)
    assert not root.exists()


# ------------------------------------------------------------------------------------------------------------
# The hash cache
# ------------------------------------------------------------------------------------------------------------


def test_digests_are_cached_by_path_size_and_mtime(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "data"
    rel = f"{ML}/u.info"
    (root / ML).mkdir(parents=True)
    (root / rel).write_text("943 users\n1682 items\n100000 ratings\n")  # the real u.info
    calls: list[Path] = []
    real = integrity._sha256
    monkeypatch.setattr(integrity, "_sha256", lambda p: calls.append(p) or real(p))
    verify_known_files(root, [rel], dataset="movielens100k")
    verify_known_files(root, [rel], dataset="movielens100k")
    assert len(calls) == 1
    assert (tmp_path / "cache" / "file_hashes.json").is_file()
    (root / rel).write_text("943 users\n1682 items\n100001 ratings\n")  # same size, new contents and mtime
    with pytest.raises(RawFileMismatchError, match="sha256"):
        verify_known_files(root, [rel], dataset="movielens100k")
    assert len(calls) == 2
    _hashes_off(monkeypatch)
    verify_known_files(root, [rel], dataset="movielens100k")  # switched off: nothing checked
    assert len(calls) == 2


# ------------------------------------------------------------------------------------------------------------
# Structural checks on hand-made graphs and files
# ------------------------------------------------------------------------------------------------------------


def _graph(n: int = 4) -> Data:
    masks = torch.zeros(n, 2, dtype=torch.bool)
    train, val, test = masks.clone(), masks.clone(), masks.clone()
    train[0], val[1], test[2] = True, True, True
    return Data(
        x=torch.ones(n, 3),
        y=torch.tensor([0, 1, 0, 1])[:n],
        edge_index=torch.tensor([[0, 1], [1, 2]]),
        train_mask=train,
        val_mask=val,
        test_mask=test,
    )


FILES = {k: [Path(f"/data/{k}.txt")] for k in ("features", "labels", "edges", "splits")}


@pytest.mark.parametrize(
    ("damage", "match", "role"),
    [
        (lambda g: setattr(g, "x", torch.ones(0)), r"shape \(0,\)", "features"),
        (lambda g: g.x.__setitem__((1, 2), float("nan")), "1 node\\(s\\) have NaN", "features"),
        (lambda g: setattr(g, "y", torch.tensor([0, 1, 0])), "labels of shape", "labels"),
        (lambda g: setattr(g, "y", torch.tensor([0, 1, 0, 2])), "labels range from 0 to 2", "labels"),
        (lambda g: setattr(g, "edge_index", torch.tensor([[0, 4], [1, 1]])), "edges reach node 4", "edges"),
        (lambda g: setattr(g, "val_mask", g.val_mask[:3]), "split masks of shapes", "splits"),
        (lambda g: g.val_mask.__setitem__((0, 1), True), "split 1: 1 node", "splits"),
        (lambda g: g.test_mask.__setitem__((2, 0), False), r"test set of split\(s\) \[0\]", "splits"),
    ],
)
def test_each_graph_check_names_its_file(damage, match: str, role: str) -> None:
    graph = _graph()
    validate_node_graph(graph, "toy", FILES, classes=2)  # intact: passes
    damage(graph)
    with pytest.raises(DatasetValidationError, match=match) as info:
        validate_node_graph(graph, "toy", FILES, classes=2)
    assert str(FILES[role][0]) in str(info.value) and "Dataset 'toy'" in str(info.value)


def test_first_unparsable_line(tmp_path: Path) -> None:
    path = tmp_path / "edges.txt"
    path.write_text("node_id\tnode_id\n0\t1\n1\t2\n")
    assert first_unparsable_line(path, ("int", "int")) is None
    path.write_text("node_id\tnode_id\n0\t1\n1\t2x\n3\t4\n")
    assert first_unparsable_line(path, ("int", "int")).startswith("line 3: '1\\t2x'")
    path.write_text("node_id\tnode_id\n0\t1\n1\t2\n3")  # a last line cut short: PyG drops it, so do we
    assert first_unparsable_line(path, ("int", "int")) is None
    features = tmp_path / "features.txt"
    features.write_text("node_id\tfeature\tlabel\n0\t1,0,1\t2\n1\t0,,1\t0\n")
    assert first_unparsable_line(features, ("int", "numbers", "int")).startswith("line 3")
