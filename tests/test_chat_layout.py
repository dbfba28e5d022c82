"""The chat's code keeps its shape: small modules, imports one way, a core without Textual, and
docs/chat.md's module tables true to the tree."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("termlm/tui", "termlm/conversation")
MAX_LINES = 500


def modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).glob("*.py")):
            found[f"{package.replace('/', '.')}.{path.stem}"] = path
    return found


def module_imports(path: Path) -> set[str]:
    """termlm modules imported when ``path`` is imported (not inside functions or TYPE_CHECKING)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("termlm"):
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            names.update(a.name for a in node.names if a.name.startswith("termlm"))
    return names


@pytest.mark.parametrize("name", sorted(modules()))
def test_no_module_is_over_500_lines(name: str) -> None:
    lines = len(modules()[name].read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_LINES, f"{name} has {lines} lines; split it"


def test_imports_go_one_way() -> None:
    known = modules()
    graph = {name: module_imports(path) & set(known) for name, path in known.items()}
    done: set[str] = set()

    def visit(name: str, path: list[str]) -> None:
        if name in path:
            cycle = " -> ".join([*path[path.index(name) :], name])
            raise AssertionError(f"import circle: {cycle}")
        if name in done:
            return
        for other in sorted(graph[name]):
            visit(other, [*path, name])
        done.add(name)

    for name in sorted(graph):
        visit(name, [])


def test_the_core_has_no_textual_in_it() -> None:
    for name, path in modules().items():
        if name.startswith("termlm.conversation"):
            text = path.read_text(encoding="utf-8")
            assert "textual" not in text.lower().replace("no textual", ""), name
            assert "termlm.tui" not in text, name


def test_the_docs_tables_list_every_module_with_its_lines() -> None:
    """docs/chat.md's developer section: each module of both packages, tui's line counts."""
    text = (ROOT / "docs" / "chat.md").read_text(encoding="utf-8")
    section = text[text.index("## For developers") :]
    rows = dict(re.findall(r"^\| `(\w+)\.py` \| (\d+) \|", section, flags=re.MULTILINE))
    listed = set(re.findall(r"^\| `(\w+)\.py` \|", section, flags=re.MULTILINE))
    for name, path in modules().items():
        stem = path.stem
        if stem == "__init__":
            continue
        assert stem in listed, f"docs/chat.md does not list {name}"
        if stem in rows:
            lines = len(path.read_text(encoding="utf-8").splitlines())
            assert abs(int(rows[stem]) - lines) <= max(15, lines // 10), (
                f"docs/chat.md says {stem}.py has {rows[stem]} lines; it has {lines}"
            )
