"""Plugin loading: folders, broken files, collisions, the CLI listing, the docs' examples, and
the example package found through its entry point."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from termlm.decoding import PluginRegistry, build_plugin_manager, generate, validate_options
from termlm.decoding import registry as registry_module
from termlm.decoding.events import DoneEvent
from termlm.decoding.testing import TinyRNN, char_tokenizer

ROOT = Path(__file__).resolve().parent.parent
TOK = char_tokenizer("abcdefgh aeiou")

GOOD = """
from typing import ClassVar
import numpy as np
from termlm.decoding import OptionSpec, hookimpl

class Last:
    name: ClassVar[str] = "last"
    description: ClassVar[str] = "Always the least likely allowed token."
    options: ClassVar[tuple] = (OptionSpec("unused", int, 0, min=0, max=3),)

    def __init__(self, unused=0):
        pass

    def run(self, ctx):
        while True:
            scores = ctx.scores()[0]
            allowed = np.where(np.isfinite(scores), scores, np.inf)  # banned ids are -inf
            token = int(np.argmin(allowed))
            ctx.session.feed([token])
            yield ctx.choice(scores, token)

@hookimpl
def register_plugins(register):
    register(Last)
"""


def write(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(textwrap.dedent(text))
    return path


def by_name(registry: PluginRegistry) -> dict[tuple[str, str], Any]:
    return {(i.name, i.source): i for i in registry.infos()}


def finish(registry: PluginRegistry, strategy: str, **kw: Any) -> Any:
    events = list(
        generate(
            TinyRNN(TOK.vocab_size),
            TOK,
            "ab",
            registry=registry,
            strategy=strategy,
            max_new_tokens=8,
            **kw,
        )
    )
    assert isinstance(events[-1], DoneEvent)
    return events[-1].result


def test_folder_plugin_loads_and_runs(tmp_path: Path) -> None:
    write(tmp_path, "last.py", GOOD)
    registry = build_plugin_manager(plugins_dirs=[tmp_path], entry_points=False, user_dir=False)
    info = by_name(registry)[("last", f"folder {tmp_path}")]
    assert info.kind == "strategy" and info.error is None
    assert "last" in registry.strategy_names()
    result = finish(registry, "last")
    assert result.stop_reason == "length" and len(result.token_ids) == 8


def test_broken_files_are_listed_and_others_work(tmp_path: Path) -> None:
    write(tmp_path, "last.py", GOOD)
    write(tmp_path, "syntax.py", "def oops(:\n")
    write(tmp_path, "raises.py", "raise RuntimeError('no GPU here')\n")
    write(tmp_path, "exits.py", "import sys\nsys.exit(3)\n")
    write(
        tmp_path,
        "misspelled.py",
        "from termlm.decoding import hookimpl\n@hookimpl\ndef register_plugin(register):\n    pass\n",
    )
    write(
        tmp_path,
        "bad_class.py",
        """
        from termlm.decoding import hookimpl
        class NoDescription:
            name = "nodesc"
            options = ()
            def run(self, ctx):
                yield from ()
        @hookimpl
        def register_plugins(register):
            register(NoDescription)
        """,
    )
    write(
        tmp_path,
        "hook_raises.py",
        "from termlm.decoding import hookimpl\n@hookimpl\ndef register_plugins(register):\n    raise ValueError('bad')\n",
    )
    write(tmp_path, "_private.py", "raise RuntimeError('never loaded')\n")
    registry = build_plugin_manager(plugins_dirs=[tmp_path], entry_points=False, user_dir=False)
    errors = {i.name: i.error for i in registry.infos() if i.error}
    assert "SyntaxError" in errors["syntax"]
    assert "no GPU here" in errors["raises"]
    assert "SystemExit" in errors["exits"]
    assert "register_plugin" in errors["misspelled"]
    assert "description" in errors["nodesc"]
    assert "register_plugins failed" in errors["hook_raises"]
    assert "_private" not in errors
    assert finish(registry, "last").stop_reason == "length"
    assert finish(registry, "greedy").stop_reason == "length"


def test_name_collision_first_source_wins(tmp_path: Path) -> None:
    write(tmp_path, "greedy_again.py", GOOD.replace('"last"', '"greedy"'))
    registry = build_plugin_manager(plugins_dirs=[tmp_path], entry_points=False, user_dir=False)
    second = by_name(registry)[("greedy", f"folder {tmp_path}")]
    assert second.error == "name already taken by builtin"
    greedy = finish(registry, "greedy")
    model = TinyRNN(TOK.vocab_size)
    assert greedy.token_ids[0] == int(
        np.argmax(model.step(np.array([TOK.encode("ab")]), model.initial_state(1)).logits[0, -1])
    )


def test_unreadable_or_missing_folders_are_errors(tmp_path: Path) -> None:
    not_a_folder = write(tmp_path, "file.txt", "hello")
    missing = tmp_path / "missing"
    registry = build_plugin_manager(
        plugins_dirs=[not_a_folder, missing], entry_points=False, user_dir=False
    )
    errors = {i.name: i.error for i in registry.infos() if i.error}
    assert "cannot read the folder" in errors[str(not_a_folder)]
    assert "does not exist" in errors[str(missing)]
    assert "greedy" in registry.strategy_names()


def test_env_folders_and_user_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    one, two, user = tmp_path / "one", tmp_path / "two", tmp_path / "user"
    write(one, "last.py", GOOD)
    write(two, "first.py", GOOD.replace('"last"', '"first"'))
    write(user, "mine.py", GOOD.replace('"last"', '"mine"'))
    monkeypatch.setenv("TERMLM_PLUGINS_DIR", os.pathsep.join([str(one), str(two)]))
    monkeypatch.setattr(registry_module, "user_folder", lambda: user)
    registry = build_plugin_manager(entry_points=False)
    sources = {i.name: i.source for i in registry.infos()}
    assert sources["last"] == f"folder {one}" and sources["first"] == f"folder {two}"
    assert sources["mine"] == f"user folder {user}"
    assert "mine" not in build_plugin_manager(entry_points=False, user_dir=False).strategy_names()


def test_each_manager_is_fresh(tmp_path: Path) -> None:
    write(tmp_path, "last.py", GOOD)
    with_folder = build_plugin_manager(plugins_dirs=[tmp_path], entry_points=False, user_dir=False)
    plain = build_plugin_manager(entry_points=False, user_dir=False)
    assert "last" in with_folder.strategy_names() and "last" not in plain.strategy_names()


def test_cli_lists_plugins_as_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from termlm.cli.app import main

    write(tmp_path, "last.py", GOOD)
    write(tmp_path, "broken.py", "import not_a_module_anywhere\n")
    with pytest.raises(SystemExit) as exit_info:
        main(["plugins", "--json", "--plugins-dir", str(tmp_path)])
    assert exit_info.value.code in (0, None)
    rows = json.loads(capsys.readouterr().out)
    named = {r["name"]: r for r in rows}
    assert named["greedy"]["kind"] == "strategy" and named["greedy"]["source"] == "builtin"
    temperature = next(o for o in named["sample"]["options"] if o["name"] == "temperature")
    assert temperature == {
        "name": "temperature",
        "type": "float",
        "default": 0.8,
        "min": 0.0,
        "max": 10.0,
        "choices": None,
        "range": "(0, 10]",
        "help": temperature["help"],
    }
    assert named["last"]["source"] == f"folder {tmp_path}"
    assert "ModuleNotFoundError" in named["broken"]["error"]


def test_cli_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from termlm.cli.app import main

    write(tmp_path, "broken.py", "raise ImportError('missing thing')\n")
    with pytest.raises(SystemExit):
        main(["plugins", "--plugins-dir", str(tmp_path)])
    out = capsys.readouterr().out
    for word in ("beam", "lookahead", "repetition_penalty", "missing thing", "(0, 10]"):
        assert word in out


def test_docs_tutorial_plugins_work(tmp_path: Path) -> None:
    """The code in docs/plugins.md: each `# file:` block is a plugin file that loads and runs."""
    doc = (ROOT / "docs" / "plugins.md").read_text()
    blocks = re.findall(r"```python\n# file: (\S+)\n(.*?)```", doc, flags=re.S)
    assert {name for name, _ in blocks} == {"vowels.py", "coin.py"}
    for name, code in blocks:
        write(tmp_path, name, code)
    registry = build_plugin_manager(plugins_dirs=[tmp_path], entry_points=False, user_dir=False)
    assert not [i for i in registry.infos() if i.error]
    assert validate_options(registry, "coin", {"vowel_bias": "2"})["vowel_bias"] == 2.0
    result = finish(registry, "coin", options={"vowel_bias": 5.0, "heads": 0.7}, seed=3)
    assert result.stop_reason == "length" and result.error is None
    biased = finish(registry, "greedy", options={"vowel_bias": 10.0})
    assert all(TOK.token_text(i) in "aeiou" for i in biased.token_ids)


def test_example_package_found_through_entry_point(tmp_path: Path) -> None:
    """pip-installs examples/termlm-plugin-example (offline) into a scratch target folder and
    loads it by its entry point in a fresh interpreter."""
    target = tmp_path / "site"
    example = tmp_path / "example"  # a copy: building leaves files next to the sources
    shutil.copytree(
        ROOT / "examples" / "termlm-plugin-example",
        example,
        ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"),
    )
    install = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--quiet",
            "--target",
            str(target),
            str(example),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert install.returncode == 0, install.stderr
    script = textwrap.dedent(
        """
        import json
        from termlm.decoding import build_plugin_manager, generate
        from termlm.decoding.testing import TinyRNN, char_tokenizer
        registry = build_plugin_manager(user_dir=False)
        tok = char_tokenizer("abcABC ")
        events = list(generate(TinyRNN(tok.vocab_size), tok, "ab", registry=registry,
                               strategy="alternate", options={"shout": 20.0},
                               max_new_tokens=6, seed=1))
        found = {i.name: i.source for i in registry.infos()}
        print(json.dumps({"found": found, "text": events[-1].result.text}))
        """
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(target), str(ROOT)])}
    run = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=tmp_path
    )
    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout)
    assert out["found"]["shout"] == "entry point termlm-plugin-example"
    assert out["found"]["alternate"] == "entry point termlm-plugin-example"
    assert out["text"] and out["text"].strip(" ") == out["text"].strip(" ").upper()
    listing = subprocess.run(
        [sys.executable, "-m", "termlm", "plugins", "--json"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    assert listing.returncode == 0, listing.stderr
    assert "shout" in {r["name"] for r in json.loads(listing.stdout)}
