"""The shape of the library: one-way imports between its layers, no cycles, no dynamic imports, small modules,
and every number the paper quotes one grep away from the library code that computes it.

Imports follow the data flow ``data → sheaf → encoders → losses → <study> → runs → report``: each building
block imports only the blocks before it; a study (every package that is not a building block or a toolkit,
so a new study is checked without touching this file) imports the building blocks and calls the two toolkits
``runs`` and ``report``, which receive its runs and numbers and know no study; ``report`` writes the run
ledgers of ``runs``; ``paths`` and ``atomic`` import nothing of the library; ``__main__`` may import anything.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LIB = ROOT / "lib" / "mmsheaf"
MAX_LINES = 500

BASE = {"paths", "atomic"}
BLOCKS = ("data", "sheaf", "encoders", "losses", "evaluation")  # in data-flow order: each may import those before it
TOOLKITS = {"runs": BASE, "report": BASE | {"runs"}}
TOP_LEVEL_MODULES = {"__init__", "__main__", "paths", "atomic"}


def layer_of(module: str) -> str:
    """``mmsheaf.nsd.protocol`` -> ``nsd``; ``mmsheaf`` -> ``__init__``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def allowed(layer: str) -> set[str] | None:
    """The layers ``layer`` may import besides itself (``None``: any)."""
    if layer in ("__main__", "__init__"):
        return None
    if layer in BASE:
        return set()
    if layer in BLOCKS:
        return BASE | set(BLOCKS[: BLOCKS.index(layer)])
    if layer in TOOLKITS:
        return TOOLKITS[layer]
    return BASE | set(BLOCKS) | set(TOOLKITS)  # a study


def module_name(path: Path) -> str:
    rel = path.relative_to(LIB.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


MODULES: dict[str, Path] = {module_name(p): p for p in sorted(LIB.rglob("*.py")) if "__pycache__" not in p.parts}


def imports_of(module: str, path: Path, source: str | None = None) -> Iterator[tuple[str, int]]:
    """Every ``mmsheaf`` module that ``module`` (its file ``path``, or ``source`` as that file's text) imports,
    at module level or inside a function, with the line."""
    is_package = path.name == "__init__.py"
    source = path.read_text(encoding="utf-8") if source is None else source
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == "mmsheaf" or alias.name.startswith("mmsheaf."):
                    yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                package = module.split(".") if is_package else module.split(".")[:-1]
                base = package[: len(package) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if not (target == "mmsheaf" or target.startswith("mmsheaf.")):
                continue
            subs = [f"{target}.{a.name}" for a in node.names if f"{target}.{a.name}" in MODULES]
            if subs:  # `from mmsheaf.runs import hpo` imports the module mmsheaf.runs.hpo
                yield from ((s, node.lineno) for s in subs)
            if len(subs) < len(node.names):
                yield target, node.lineno


GRAPH: dict[str, set[str]] = {
    m: {t for t, _ in imports_of(m, p) if t in MODULES and t != m} for m, p in MODULES.items()
}


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components with more than one module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_the_import_graph_has_no_cycle() -> None:
    assert strongly_connected(GRAPH) == []


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert strongly_connected({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def violations(module: str, path: Path, source: str | None = None) -> list[str]:
    layer, bad = layer_of(module), []
    ok = allowed(layer)
    for target, line in imports_of(module, path, source):
        other = layer_of(target)
        if ok is not None and other != layer and other not in ok:
            bad.append(f"{path.relative_to(ROOT)}:{line}: {layer} imports {target} ({other})")
    return bad


def test_imports_follow_the_data_flow() -> None:
    bad = [v for m, p in MODULES.items() for v in violations(m, p)]
    assert bad == [], "imports against the data flow:\n" + "\n".join(bad)


def test_the_layer_check_flags_a_block_importing_a_study_and_studies_importing_each_other() -> None:
    cases = {
        "mmsheaf.sheaf.bad": "from mmsheaf.nsd.train import TrainConfig\n",
        "mmsheaf.recsys.bad": "from ..metric import protocol\n",
        "mmsheaf.runs.bad": "def f():\n    from ..report import Report\n",
        "mmsheaf.data.bad": "import mmsheaf.encoders\n",
    }
    for module, code in cases.items():
        path = LIB.joinpath(*module.split(".")[1:]).with_suffix(".py")
        assert violations(module, path, code), module
    assert not violations("mmsheaf.nsd.bad", LIB / "nsd" / "bad.py", "from ..runs.keys import set_seed\n")
    assert not violations("mmsheaf.encoders.bad", LIB / "encoders" / "bad.py", "from ..sheaf import conv\n")


def test_no_dynamic_imports() -> None:
    """No ``importlib.import_module`` / ``__import__`` / spec loading: every dependency is a plain import a
    reader, an IDE and grep can follow. ``importlib.metadata`` (reading installed packages' versions for the
    provenance records; it imports no code) is the one use of ``importlib`` allowed."""
    bad = []
    for module, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level:
                names = [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Name) and node.id == "__import__":
                names = ["__import__"]
            for name in names:
                if (name.startswith("importlib") and name != "importlib.metadata") or name == "__import__":
                    bad.append(f"{path.relative_to(ROOT)}:{node.lineno}: {name}")
    assert bad == []


def test_modules_are_small_and_the_top_level_is_only_paths_atomic_and_main() -> None:
    long = {str(p.relative_to(ROOT)): n for p in MODULES.values() if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert long == {}, f"modules over {MAX_LINES} lines: split them by concept"
    top = {p.stem for p in LIB.glob("*.py")}
    assert top <= TOP_LEVEL_MODULES, f"top-level modules {sorted(top - TOP_LEVEL_MODULES)}: move them into a package"


# ------------------------------------------------------------------------------------ the paper's numbers
MACRO_DEF = re.compile(r"\\newcommand\{\\([A-Za-z]+)\}")
MACRO_USE = re.compile(r"\\([A-Za-z]+)")


def notebook_macros() -> set[str]:
    """The macros the notebooks write (``figures/macros/*.tex``, the paper profile's outputs)."""
    return {m for f in (ROOT / "figures" / "macros").glob("*.tex") for m in MACRO_DEF.findall(f.read_text())}


def paper_macros() -> set[str]:
    """Every notebook macro the paper uses."""
    used = {m for f in (ROOT / "paper").rglob("*.tex") for m in MACRO_USE.findall(f.read_text())}
    return used & notebook_macros()


def library_literals() -> set[str]:
    """Every string literal of the library that could be a macro name."""
    return {
        node.value
        for p in MODULES.values()
        for node in ast.walk(ast.parse(p.read_text(encoding="utf-8")))
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and re.fullmatch(r"[A-Za-z]+", node.value)
    }


def test_every_number_the_paper_quotes_is_named_by_a_literal_in_the_library() -> None:
    """``grep -rn '"<macro>"' lib/`` finds the code that computes each ``\\<macro>`` the paper uses: no macro
    name is built by an f-string or written in a notebook cell."""
    quoted = paper_macros()
    assert len(quoted) > 50  # the check is not vacuous: the paper quotes the notebooks' numbers
    missing = sorted(quoted - library_literals())
    assert missing == [], f"{len(missing)} macros used by paper/ are named by no literal in lib/: {missing}"
