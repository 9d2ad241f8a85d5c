"""The package's shape: imports point down the layers and never form a cycle; no private PyTorch API."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "dropoutlab"

# data, layers -> models -> train -> store -> study -> report -> cli: a module may import its
# own room and the rooms below it, never one above. runs and errors are the leaves.
RANKS = {
    "runs": 0, "errors": 0, "version": 0,
    "data": 1, "layers": 1,
    "models": 2,
    "train": 3, "testing": 3,  # testing: the contract of a dropout kind (layers, models)
    "store": 4,
    "study": 5,
    "report": 6,
    "cli": 7, "__main__": 7,
    "__init__": 8,
}  # fmt: skip


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """The dropoutlab modules ``path`` imports, at any depth (function-level imports included).

    Imports under ``if TYPE_CHECKING:`` count too: they never run, but a type imported from a
    module that imports back is a circle a reader has to untangle all the same."""
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(
                    package.split(".")[: len(package.split(".")) - node.level + 1] + [base]
                ).strip(".")
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    modules = {module_name(p) for p in SRC.rglob("*.py")}
    return {name for name in found if name in modules and name != module_name(path)}


def graph() -> dict[str, set[str]]:
    return {module_name(p): imports_of(p) for p in SRC.rglob("*.py")}


def room(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def test_every_room_has_a_rank():
    assert {room(m) for m in graph()} <= set(RANKS)


def test_imports_never_point_up_the_layers():
    upward = [
        f"{module} imports {target}"
        for module, targets in graph().items()
        for target in targets
        if room(module) != room(target)
        and (RANKS[room(target)] > RANKS[room(module)] or RANKS[room(target)] == RANKS[room(module)])
    ]
    assert upward == []


def test_the_run_records_import_nothing_of_ours():
    assert graph()["dropoutlab.runs"] == set()


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """A cycle of ``edges`` as a list of nodes, or None (depth-first search)."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for target in sorted(edges.get(node, ())):
            if state.get(target) == 1:
                return stack[stack.index(target) :] + [target]
            if target not in state and (cycle := visit(target)):
                return cycle
        state[node] = 2
        stack.pop()
        return None

    for node in sorted(edges):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_no_import_cycles_anywhere():
    # a package's __init__ imports its own modules; those importing siblings through the
    # package is not a cycle of code, so edges into a package are to its __init__ alone
    edges = {m: {t for t in targets if not m.startswith(t + ".")} for m, targets in graph().items()}
    assert find_cycle(edges) is None


def test_imports_for_annotations_alone_count(tmp_path, monkeypatch):
    package = tmp_path / "dropoutlab" / "report"
    package.mkdir(parents=True)
    (package / "a.py").write_text("from dropoutlab.report.b import B\n")
    (package / "b.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from dropoutlab.report.a import A\n"
    )
    monkeypatch.setattr(sys.modules[__name__], "SRC", tmp_path / "dropoutlab")
    edges = {module_name(p): imports_of(p) for p in (package / "a.py", package / "b.py")}
    assert find_cycle(edges) == ["dropoutlab.report.a", "dropoutlab.report.b", "dropoutlab.report.a"]


def test_find_cycle_finds_one():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


@pytest.mark.parametrize("path", sorted(SRC.rglob("*.py")), ids=lambda p: str(p.relative_to(SRC)))
def test_no_private_torch_or_standard_library_attributes(path):
    """``torch._fused_adam_``, ``executor._processes`` and the like are not ours to call."""
    private = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__"):
            owner = node.value
            if (
                isinstance(owner, ast.Name)
                and owner.id not in ("self", "cls", "ctx")
                or isinstance(owner, ast.Attribute)
            ):
                private.append(f"{ast.unparse(node)} (line {node.lineno})")
    assert private == []
