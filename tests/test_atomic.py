"""Atomic writes: the target is either the old file or the complete new one."""

import json

import pytest
from mmsheaf.atomic import atomic_path, write_json_atomic, write_text_atomic


def test_atomic_path_leaves_target_untouched_on_error(tmp_path):
    target = tmp_path / "f.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("boom")
    assert target.read_text() == "old" and list(tmp_path.iterdir()) == [target]


def test_atomic_path_replaces_target_and_hides_its_temporary_from_globs(tmp_path):
    target = tmp_path / "sub" / "r.json"
    with atomic_path(target) as tmp:
        tmp.write_text("{}")
        assert tmp.parent == target.parent and tmp.name.startswith(".") and tmp.suffix == ".tmp"
        assert list(target.parent.glob("*.json")) == []
    assert target.read_text() == "{}" and [p.name for p in target.parent.iterdir()] == ["r.json"]


def test_write_helpers_round_trip(tmp_path):
    assert write_text_atomic(tmp_path / "a.txt", "é\n").read_text(encoding="utf-8") == "é\n"
    path = write_json_atomic(tmp_path / "b.json", {"x": [1, 2]}, indent=1)
    assert json.loads(path.read_text()) == {"x": [1, 2]}
