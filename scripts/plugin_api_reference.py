"""Write docs/plugin-api.md, the plugin API's reference, from termlm.plugin_api itself.

    python scripts/plugin_api_reference.py            # rewrite the page
    python scripts/plugin_api_reference.py --check    # exit 1 when the page is stale

Every name of ``termlm.plugin_api.__all__`` appears under one heading, with its signature, its
docstring, and for classes their fields (with the comments beside them in the source) and
public methods. tests/test_plugin_api.py fails when the committed page differs from this output.
"""

from __future__ import annotations

import dataclasses
import inspect
import re
import sys
import textwrap
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "plugin-api.md"

GROUPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Version", ("API_VERSION",)),
    (
        "Writing a plugin",
        (
            "hookimpl",
            "OptionSpec",
            "Strategy",
            "Processor",
            "Tracker",
            "StepInfo",
            "DecodeContext",
            "Session",
            "Choice",
            "Hypothesis",
            "BeamsUpdate",
            "NBest",
            "TokenizerLike",
            "PluginError",
        ),
    ),
    (
        "Sampling helpers (scores in, scores or probabilities out)",
        (
            "log_softmax",
            "apply_temperature",
            "top_k_filter",
            "top_p_filter",
            "min_p_filter",
            "typical_filter",
            "warp",
            "draw",
            "UniformSource",
        ),
    ),
    (
        "Running a generation",
        (
            "load_model",
            "OnnxLanguageModel",
            "build_plugin_manager",
            "PluginRegistry",
            "generate",
            "TokenEvent",
            "Alternative",
            "BeamsEvent",
            "Beam",
            "DoneEvent",
            "GenerationResult",
        ),
    ),
    (
        "Testing without a trained model",
        (
            "char_tokenizer",
            "PieceTokenizer",
            "BigramModel",
            "TinyRNN",
            "MemoryModel",
            "WindowModel",
        ),
    ),
)


def _doc(obj: Any) -> str:
    doc = inspect.getdoc(obj) or ""
    return _markdown(doc)


def _markdown(doc: str) -> str:
    """reST's ``::`` code blocks as fenced Python blocks; the rest as it is."""
    out: list[str] = []
    lines = doc.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.rstrip().endswith("::") and not line.lstrip().startswith(".."):
            out.append(line.rstrip()[:-1] if not line.rstrip().endswith(" ::") else line[:-3])
            block: list[str] = []
            i += 1
            while i < len(lines) and (not lines[i].strip() or lines[i].startswith("    ")):
                block.append(lines[i])
                i += 1
            while block and not block[-1].strip():
                block.pop()
            while block and not block[0].strip():
                block.pop(0)
            out += ["", "```python", *textwrap.dedent("\n".join(block)).splitlines(), "```", ""]
            continue
        out.append(line)
        i += 1
    return "\n".join(out).strip()


def _signature(name: str, obj: Any) -> str:
    try:
        sig = str(inspect.signature(obj))
    except (TypeError, ValueError):
        return name
    return re.sub(r"(: |-> )'([^']*)'", r"\1\2", f"{name}{sig}")  # annotations, not defaults


def _field_comments(cls: type) -> dict[str, str]:
    """`name: type = default  # comment` lines of a class body: {name: comment}."""
    try:
        source = inspect.getsource(cls)
    except (OSError, TypeError):
        return {}
    found = {}
    for match in re.finditer(r"^    (\w+): [^\n#]+#\s*([^\n]+)$", source, re.M):
        found[match[1]] = match[2].strip()
    return found


def _indent(text: str) -> str:
    """A docstring as one list item: later lines indented under the bullet."""
    return "\n".join(
        ("  " + line) if i and line else line for i, line in enumerate(text.splitlines())
    )


def _cell(text: str) -> str:
    """Text for a table cell: a bar would end the cell."""
    return text.replace("|", "\\|")


def _class(name: str, cls: type) -> list[str]:
    kind = "protocol" if getattr(cls, "_is_protocol", False) else "class"
    out = [f"### {kind} `{name}`", ""]
    if dataclasses.is_dataclass(cls) or (kind == "class" and "__init__" in cls.__dict__):
        out += ["```python", _signature(name, cls), "```", ""]
    out += [_doc(cls), ""]
    comments = _field_comments(cls)
    if dataclasses.is_dataclass(cls):
        rows = []
        for field in dataclasses.fields(cls):
            note = comments.get(field.name, "")
            rows.append(f"| `{field.name}` | `{_cell(str(field.type))}` | {_cell(note)} |")
        out += ["| field | type | note |", "|---|---|---|", *rows, ""]
    elif kind == "protocol":
        attrs = getattr(cls, "__annotations__", {})
        if attrs:
            out += ["| attribute | type |", "|---|---|"]
            out += [f"| `{attr}` | `{_cell(str(kind_))}` |" for attr, kind_ in attrs.items()]
            out.append("")
    for attr, member in cls.__dict__.items():
        if attr.startswith("_"):
            continue
        if isinstance(member, property):
            doc = _doc(member)
            out += [f"- `{name}.{attr}` (property)" + (f": {_indent(doc)}" if doc else "")]
        elif inspect.isfunction(member):
            sig = _signature(attr, member)
            doc = _doc(member)
            note = comments.get(attr) or _method_comment(cls, attr)
            out += [
                f"- `{name}.{sig}`" + (f": {_indent(doc)}" if doc else f": {note}" if note else "")
            ]
    if out[-1] != "":
        out.append("")
    return out


def _method_comment(cls: type, attr: str) -> str:
    """A Protocol method's trailing comment (`def push(...) -> None: ...  # [B] int64`)."""
    try:
        source = inspect.getsource(cls)
    except (OSError, TypeError):
        return ""
    match = re.search(rf"def {attr}\(.*?: \.\.\.\s*#\s*([^\n]+)", source, re.S)
    return match[1].strip() if match else ""


def _entry(name: str, obj: Any) -> list[str]:
    if isinstance(obj, type):
        return _class(name, obj)
    if callable(obj) and not inspect.isfunction(obj):  # hookimpl: a marker object
        return [f"### `{name}`", "", _doc(type(obj)).split("\n\n")[0], ""]
    if inspect.isfunction(obj):
        return [f"### `{name}`", "", "```python", _signature(name, obj), "```", "", _doc(obj), ""]
    return [f"### `{name}` = `{obj!r}`", ""]


def render() -> str:
    import termlm.plugin_api as api

    listed = [name for _, names in GROUPS for name in names]
    missing = sorted(set(api.__all__) - set(listed))
    extra = sorted(set(listed) - set(api.__all__))
    if missing or extra:
        raise SystemExit(f"GROUPS and __all__ differ: not grouped {missing}, not public {extra}")
    out = [
        "# Plugin API reference",
        "",
        "<!-- Generated from termlm/plugin_api.py by scripts/plugin_api_reference.py: edit the",
        "     docstrings, then run the script. tests/test_plugin_api.py fails when it is stale. -->",
        "",
        f"`termlm.plugin_api`, API version {'.'.join(map(str, api.API_VERSION))}. "
        "The tutorial is [plugins.md](plugins.md).",
        "",
        _markdown(inspect.getdoc(api) or ""),
        "",
    ]
    for title, names in GROUPS:
        out += [f"## {title}", ""]
        for name in names:
            obj = getattr(api, name)
            if name == "API_VERSION":
                out += [f"### `API_VERSION` = `{obj!r}`", "", "(major, minor): see above.", ""]
                continue
            if name == "hookimpl":
                out += [
                    "### `hookimpl`",
                    "",
                    "The decorator of a plugin module's one hook:",
                    "",
                    "```python",
                    "@hookimpl",
                    "def register_plugins(register: Callable[[type], None]) -> None:",
                    "    register(MyStrategy)",
                    "```",
                    "",
                    "`register(cls)` records a strategy or processor class with its source; the "
                    "first class of a name wins.",
                    "",
                ]
                continue
            out += _entry(name, obj)
    text = "\n".join(out)
    return re.sub(r"\n{3,}", "\n\n", text).rstrip() + "\n"


def main(argv: list[str]) -> int:
    text = render()
    if "--check" in argv:
        if not PAGE.is_file() or PAGE.read_text("utf-8") != text:
            print(f"{PAGE.relative_to(ROOT)} is stale: run python {Path(__file__).name}")
            return 1
        print(f"{PAGE.relative_to(ROOT)} is up to date")
        return 0
    PAGE.write_text(text, encoding="utf-8")
    print(f"wrote {PAGE.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
