from __future__ import annotations

from pathlib import Path

import pytest

from mmsheaf import paths


def test_repo_root_holds_the_project():
    root = paths.repo_root()
    for name in ("notebooks", "lib", "figures", "paper", "tests", "environment.yml", "README.md"):
        assert (root / name).exists(), name


def test_profiles_map_to_output_folders(monkeypatch):
    monkeypatch.delenv("MMSHEAF_OUTPUT", raising=False)
    root = paths.repo_root()
    assert paths.output_root("paper") == root / "figures"
    assert paths.output_root("smoke") == root / "build" / "smoke"


def test_unknown_profile_is_one_clear_error():
    with pytest.raises(ValueError, match=r"Unknown profile 'fast'.*smoke, paper"):
        paths.output_root("fast")


def test_data_root_is_one_setting(monkeypatch, tmp_path):
    monkeypatch.delenv("MMSHEAF_DATA", raising=False)
    assert paths.data_root() == paths.repo_root() / "data"
    monkeypatch.setenv("MMSHEAF_DATA", str(tmp_path))
    assert paths.data_root() == tmp_path.resolve()


def test_paths_do_not_depend_on_the_working_directory(monkeypatch, tmp_path):
    before = (paths.repo_root(), paths.output_root("smoke"), paths.params_file("00_datasets", "paper"))
    monkeypatch.chdir(tmp_path)
    assert (paths.repo_root(), paths.output_root("smoke"), paths.params_file("00_datasets", "paper")) == before
    assert isinstance(before[0], Path)
