"""Every test gets its own cache, settings and data folders (token files, fitted tokenizers, the
chat's settings and saved chats), never the user's; and Ctrl-C works in the tests even when the
test run was started in the background."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

# A background job starts with SIGINT ignored, and its children inherit that: the tests that send
# a real Ctrl-C (to this process or to a training they start) need the usual handler.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(autouse=True, scope="session")
def _session_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """For fixtures of a module or session (set up before any test's own folder)."""
    folder = tmp_path_factory.mktemp("termlm-session-cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TERMLM_CACHE_DIR", str(folder))
        yield folder


@pytest.fixture(autouse=True)
def _own_cache(
    _session_cache: Path, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Path:
    folder = tmp_path_factory.mktemp("termlm-cache")
    monkeypatch.setenv("TERMLM_CACHE_DIR", str(folder))
    monkeypatch.setenv("TERMLM_CONFIG_DIR", str(tmp_path_factory.mktemp("termlm-config")))
    monkeypatch.setenv("TERMLM_DATA_DIR", str(tmp_path_factory.mktemp("termlm-data")))
    return folder
