"""Every test gets its own cache folder (token files, fitted tokenizers), never the user's."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def _own_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path_factory.mktemp("termlm-cache")
    monkeypatch.setenv("TERMLM_CACHE_DIR", str(folder))
    return folder
