"""`termlm plugins` and `termlm models` at 80 columns and narrower: whole names, no overflow."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from cli_helpers import plain_env, run, termlm, write_models
from hypothesis import given, settings
from hypothesis import strategies as st
from rich.console import Console

from termlm.cli.tables import Column, print_records, table_width


def _lines(text: str) -> list[str]:
    return [line.rstrip() for line in text.splitlines()]


def test_plugins_at_80_columns_is_a_table_with_every_name_whole(tmp_path: Path) -> None:
    proc = termlm("plugins", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    lines = _lines(proc.stdout)
    assert all(len(line) <= 80 for line in lines)
    listed = json.loads(termlm("plugins", "--json", cwd=tmp_path).stdout)
    heads = {line.split()[0] for line in lines if line.strip()}
    for plugin in listed:
        assert plugin["name"] in heads  # the name starts a row, whole
        for option in plugin["options"]:
            assert any(line.split()[:1] == [option["name"]] for line in lines), option["name"]
    header = next(line for line in lines if line.startswith("name"))
    assert header.split() == ["name", "kind", "source", "description"]  # a table, not blocks
    descriptions = " ".join(" ".join(lines).split())
    for plugin in listed:  # the wrapped descriptions are there, whole
        assert " ".join(plugin["description"].split()) in descriptions


def test_plugins_in_a_narrow_terminal_become_blocks(tmp_path: Path) -> None:
    proc = termlm("plugins", cwd=tmp_path, env=plain_env(COLUMNS="40"))
    assert proc.returncode == 0, proc.stderr
    lines = _lines(proc.stdout)
    assert all(len(line) <= 40 for line in lines)
    assert "  kind: strategy" in lines and "greedy" in lines
    assert "    type: float" in lines and "  temperature" in lines


def _models_folder(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    folder = tmp_path / "models"
    folder.mkdir()
    paths = write_models(folder)
    long_name = "a-very-long-model-name-that-people-must-type-whole-" + "x" * 20
    paths["char-rnn"].rename(folder / f"{long_name}.onnx")
    (folder / "broken.onnx").write_bytes(b"not a model")
    env = plain_env(TERMLM_MODELS_DIR=str(folder), XDG_DATA_HOME=str(tmp_path / "data"))
    return folder, env


def test_models_never_cut_a_name(tmp_path: Path) -> None:
    folder, env = _models_folder(tmp_path)
    (tmp_path / "cwd").mkdir()
    listed = json.loads(termlm("models", "--json", cwd=tmp_path / "cwd", env=env).stdout)
    for columns in ("80", "40"):
        proc = termlm("models", cwd=tmp_path / "cwd", env={**env, "COLUMNS": columns})
        assert proc.returncode == 0, proc.stderr
        lines = _lines(proc.stdout)
        assert all(len(line) <= int(columns) for line in lines if "/" not in line)
        names = {line.strip() for line in lines} | {line.split()[0] for line in lines if line}
        for entry in listed:
            if len(entry["name"]) + 2 <= int(columns):
                assert entry["name"] in names, (columns, entry["name"])
        assert "broken.onnx: " in proc.stdout  # why the file cannot be used, said
        assert str(folder) in proc.stdout.replace("\n", "")


def test_models_at_80_columns_with_short_names_is_a_table(tmp_path: Path) -> None:
    folder = tmp_path / "models"
    folder.mkdir()
    write_models(folder)
    env = plain_env(TERMLM_MODELS_DIR=str(folder), XDG_DATA_HOME=str(tmp_path / "data"))
    (tmp_path / "cwd").mkdir()
    proc = termlm("models", cwd=tmp_path / "cwd", env=env)
    lines = _lines(proc.stdout)
    header = next(line for line in lines if "name" in line)
    assert header.split() == ["name", "default", "arch", "level", "params", "val", "loss", "size"]
    assert any(line.split()[:1] == ["char-rnn"] for line in lines)


WORDS = st.text(alphabet="abcdefghij-", min_size=1, max_size=30)


@settings(max_examples=80, deadline=None)
@given(
    width=st.integers(min_value=20, max_value=120),
    rows=st.lists(
        st.tuples(WORDS, WORDS, st.lists(WORDS, max_size=12).map(" ".join)), min_size=1, max_size=6
    ),
)
def test_records_fit_the_width_and_keep_every_fixed_value_whole(
    width: int, rows: list[tuple[str, str, str]]
) -> None:
    out = io.StringIO()
    console = Console(file=out, width=width, no_color=True, highlight=False)
    columns = [Column("name", bold=True), Column("kind"), Column("help", wrap=True)]
    print_records(console, columns, [list(r) for r in rows])
    lines = _lines(out.getvalue())
    assert all(len(line) <= width for line in lines)
    is_table = table_width(columns, [list(r) for r in rows]) <= width
    squeezed = "".join(out.getvalue().split())
    for name, kind, help_text in rows:
        if is_table:
            assert any(line.split()[:2] == [name, kind] for line in lines)
        elif len(name) <= width:
            assert name in lines
        else:  # longer than the terminal: folded over lines, never cut
            assert name in "".join(lines)
        if not is_table and len(kind) + 4 <= width:  # on its label's line, or the next: whole
            assert any(line.strip() in (f"kind: {kind}", kind) for line in lines)
        assert "".join(help_text.split()) in squeezed  # every word, in order


def test_listings_keep_their_hints_off_stdout(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    proc = termlm("plugins", cwd=tmp_path)
    assert "user plugin folder" in proc.stderr and "user plugin folder" not in proc.stdout
    import termlm.runtime.registry as registry

    monkeypatch.setattr(registry, "find_models", lambda dirs=None: [])
    code, out, err = run(capsys, "models")
    assert code == 0 and out == ""
    assert "no models found" in err and "termlm export" in err
    code, out, err = run(capsys, "models", "--json")
    assert code == 0 and json.loads(out) == []
