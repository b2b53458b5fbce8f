"""Tests of fill_data_root (mmsheaf.data.fetch)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mmsheaf.data import fill_data_root, mirror_files


def snapshot(folder: Path) -> dict[str, tuple[int, int, bytes]]:
    return {
        p.relative_to(folder).as_posix(): (p.stat().st_size, p.stat().st_mtime_ns, p.read_bytes())
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture()
def mirror(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A made-up mirror whose files have the real files' paths but not their contents, so the size and
    sha256 check is off here (tests/test_data_integrity.py tests it)."""
    monkeypatch.setenv("MMSHEAF_CHECK_HASHES", "0")
    base = tmp_path / "mirror"
    files = {
        "README.md": "mirror notes",
        "Planetoid/Cora/raw/ind.cora.x": "x",
        "Planetoid/Cora/processed/data.pt": "cache",
        "WebKB/texas/raw/out1_graph_edges.txt": "edges",
        "WebKB/texas/raw/texas_split_0.6_0.2_0.npz": "split",
        "WebKB/texas/processed/data.pt": "cache",
        "WebKB/texas/README.md": "kept: only the mirror's top-level README is skipped",
        ".hidden/file": "skipped",
    }
    for rel, text in files.items():
        (base / rel).parent.mkdir(parents=True, exist_ok=True)
        (base / rel).write_text(text)
    return base


def test_copies_layout_and_skips_processed_and_readme(mirror: Path, tmp_path: Path) -> None:
    root = tmp_path / "root"
    before = snapshot(mirror)
    copied = fill_data_root(mirror, root)
    expected = [
        "Planetoid/Cora/raw/ind.cora.x",
        "WebKB/texas/README.md",
        "WebKB/texas/raw/out1_graph_edges.txt",
        "WebKB/texas/raw/texas_split_0.6_0.2_0.npz",
    ]
    assert sorted(p.relative_to(root).as_posix() for p in copied) == expected
    assert mirror_files(mirror) == expected
    assert sorted(snapshot(root)) == expected
    assert (root / "WebKB/texas/raw/out1_graph_edges.txt").read_text() == "edges"
    assert snapshot(mirror) == before  # the mirror is never modified


def test_second_call_is_idempotent_and_recopies_changed_files(mirror: Path, tmp_path: Path) -> None:
    root = tmp_path / "root"
    fill_data_root(mirror, root)
    assert fill_data_root(mirror, root) == []
    src = mirror / "Planetoid/Cora/raw/ind.cora.x"
    src.write_text("changed content")
    os.utime(src, (1_000_000_000, 1_000_000_000))
    assert fill_data_root(mirror, root) == [root / "Planetoid/Cora/raw/ind.cora.x"]
    assert (root / "Planetoid/Cora/raw/ind.cora.x").read_text() == "changed content"
    assert fill_data_root(mirror, root) == []


def test_only_selects_datasets_or_folders(mirror: Path, tmp_path: Path) -> None:
    copied = fill_data_root(mirror, tmp_path / "a", only=["texas"])  # registry name: its expected raw files
    assert sorted(p.name for p in copied) == ["out1_graph_edges.txt", "texas_split_0.6_0.2_0.npz"]
    copied = fill_data_root(mirror, tmp_path / "b", only=["Planetoid"])  # a folder of the mirror
    assert [p.relative_to(tmp_path / "b").as_posix() for p in copied] == ["Planetoid/Cora/raw/ind.cora.x"]
    with pytest.raises(ValueError, match="neither a dataset name"):
        fill_data_root(mirror, tmp_path / "c", only=["NoSuchFolder"])


def test_missing_mirror_is_refused(tmp_path: Path) -> None:
    missing = tmp_path / "no-mirror"
    with pytest.raises(ValueError, match="no-mirror"):
        fill_data_root(missing, tmp_path / "root")
    assert not (tmp_path / "root").exists()


def test_root_inside_mirror_is_refused(mirror: Path) -> None:
    with pytest.raises(ValueError, match="read-only"):
        fill_data_root(mirror, mirror / "data")
    with pytest.raises(ValueError, match="read-only"):
        fill_data_root(mirror, mirror)


def test_default_root_is_the_data_setting(mirror: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("MMSHEAF_DATA", str(tmp_path / "from-env"))
    copied = fill_data_root(mirror, only=["Planetoid/Cora/raw/ind.cora.x"])
    assert copied == [tmp_path / "from-env" / "Planetoid/Cora/raw/ind.cora.x"]
