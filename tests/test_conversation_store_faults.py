"""A chats.db that cannot be used never stops the chat: read-only, locked by another process,
corrupted, or a data folder that is a file. The store says why once and goes on in memory."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from termlm.conversation.store import ChatStore
from termlm.conversation.tree import Message

ROOT = Path(__file__).resolve().parents[1]


def use(store: ChatStore) -> list[str]:
    """Write a chat and read it back: the chat's work, whatever the file."""
    chat = store.create_chat("t", "continue", "m", "s")
    store.add_message(chat, 0, Message(role="user", text="typed", fed="typed"))
    store.add_message(chat, 1, Message(role="model", text="said", fed="said", token_ids=[1, 2]))
    conversation, *_ = store.load_chat(chat)
    return [m.text for m in conversation.messages]


def test_a_corrupted_database_goes_on_in_memory(tmp_path: Path) -> None:
    path = tmp_path / "chats.db"
    path.write_bytes(b"this is not a database\n" * 200)
    said: list[str] = []
    store = ChatStore(path, on_problem=said.append)
    assert store.problem is not None and str(path) in store.problem
    assert "damaged" in store.problem and "move it away" in store.problem
    assert use(store) == ["typed", "said"]
    assert said == [store.problem]  # said once
    assert path.read_bytes().startswith(b"this is not a database")  # never overwritten


def test_a_data_folder_that_is_a_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    not_a_folder = tmp_path / "data"
    not_a_folder.write_text("a file")
    monkeypatch.setenv("TERMLM_DATA_DIR", str(not_a_folder))
    store = ChatStore()
    assert store.problem is not None and "is a file, not a folder" in store.problem
    assert "TERMLM_DATA_DIR" in store.problem
    assert use(store) == ["typed", "said"]


def hold_lock(path: Path) -> subprocess.Popen[str]:
    """Another process holding an exclusive write lock on ``path`` until a line on its stdin."""
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                f"""
                import sqlite3, sys
                db = sqlite3.connect({str(path)!r}, isolation_level=None)
                db.execute("BEGIN EXCLUSIVE")
                print("locked", flush=True)
                sys.stdin.readline()
                db.execute("COMMIT")
                """
            ),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
    return holder


@pytest.fixture
def locked_db(tmp_path: Path) -> Iterator[tuple[Path, subprocess.Popen[str]]]:
    """A database with a chat in it, then another process holding an exclusive write lock."""
    path = tmp_path / "chats.db"
    first = ChatStore(path)
    first.create_chat("before", "continue", None, None)
    first.close()
    holder = hold_lock(path)
    yield path, holder
    if holder.poll() is None:
        assert holder.stdin is not None
        holder.stdin.write("\n")
        holder.stdin.flush()
        holder.wait(10)


def test_a_locked_database_is_waited_for_then_left(
    locked_db: tuple[Path, subprocess.Popen[str]],
) -> None:
    path, _ = locked_db
    said: list[str] = []
    started = time.monotonic()
    store = ChatStore(path, on_problem=said.append, busy_seconds=0.3)
    store.on_problem = said.append
    assert use(store) == ["typed", "said"]
    assert time.monotonic() - started >= 0.3  # it retried for the busy timeout first
    assert store.problem is not None and "locked by another program" in store.problem
    assert str(path) in store.problem
    assert len(said) <= 1  # said once, not at every write
    use(store)
    assert len(said) <= 1


def test_a_lock_released_in_time_is_no_fault(
    locked_db: tuple[Path, subprocess.Popen[str]],
) -> None:
    path, holder = locked_db

    def release() -> None:
        time.sleep(0.3)
        assert holder.stdin is not None
        holder.stdin.write("\n")
        holder.stdin.flush()

    threading.Thread(target=release, daemon=True).start()
    store = ChatStore(path, busy_seconds=10)
    assert use(store) == ["typed", "said"]
    assert store.problem is None
    store.close()
    titles = [c.title for c in ChatStore(path).list_chats()]
    assert sorted(titles) == ["before", "t"]  # on disk


def test_a_lock_taken_while_the_chat_is_open_is_waited_for_only_the_busy_timeout(
    tmp_path: Path,
) -> None:
    path = tmp_path / "chats.db"
    said: list[str] = []
    store = ChatStore(path, on_problem=said.append, busy_seconds=0.3)
    chat = store.create_chat("t", "continue", "m", "s")
    store.add_message(chat, 0, Message(role="user", text="typed", fed="typed"))
    holder = hold_lock(path)
    try:
        started = time.monotonic()
        # the write waits, then the copy into memory waits no longer than the busy timeout
        # (a plain backup would retry for as long as the other program holds its lock)
        store.add_message(chat, 1, Message(role="model", text="said", fed="said", token_ids=[1]))
        assert time.monotonic() - started < 5
        assert store.problem is not None and "locked by another program" in store.problem
        assert said == [store.problem]
        conversation, *_ = store.load_chat(chat)
        assert "said" in [m.text for m in conversation.messages]
    finally:
        assert holder.stdin is not None
        holder.stdin.write("\n")
        holder.stdin.flush()
        holder.wait(10)


READ_ONLY_CHECK = """
import sys
from pathlib import Path
sys.path.insert(0, {root!r})
from termlm.conversation.store import ChatStore
from termlm.conversation.tree import Message
said = []
store = ChatStore(Path({path!r}), on_problem=said.append)
chat = store.create_chat("t", "continue", None, None)
store.add_message(chat, 0, Message(role="user", text="typed", fed="typed"))
conversation, *_ = store.load_chat(chat)
print(store.problem)
print(len(said), [m.text for m in conversation.messages])
"""


def _an_ordinary_user_can_run(python: str) -> bool:
    try:
        done = subprocess.run(
            [python, "-c", "pass"],
            capture_output=True,
            timeout=60,
            preexec_fn=lambda: os.setuid(65534),
            check=False,
        )
    except (PermissionError, subprocess.SubprocessError):
        return False
    return done.returncode == 0


def test_a_read_only_database(tmp_path: Path) -> None:
    folder = Path(tempfile.mkdtemp(prefix="termlm-ro-"))  # readable by the user the check runs as
    path = folder / "chats.db"
    ChatStore(path).close()
    path.chmod(0o444)
    folder.chmod(0o555)
    code = READ_ONLY_CHECK.format(root=str(ROOT), path=str(path))
    as_nobody = os.geteuid() == 0  # root writes anywhere: check as an ordinary user
    if as_nobody and not _an_ordinary_user_can_run(sys.executable):
        folder.chmod(0o755)
        pytest.skip(
            "root writes any file, and this Python lives where an ordinary user cannot run it "
            "(under a private home folder): a read-only file cannot be made here"
        )
    try:
        done = subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            timeout=60,
            preexec_fn=(lambda: os.setuid(65534)) if as_nobody else None,
            env={**os.environ, "HOME": str(folder)},
            check=False,
        )
    finally:
        folder.chmod(0o755)
        path.chmod(0o644)
    assert done.returncode == 0, done.stderr
    problem, outcome = done.stdout.strip().splitlines()[-2:]
    assert "read-only" in problem and str(path) in problem
    assert outcome == "1 ['typed']"


def test_integrity_errors_are_not_hidden(tmp_path: Path) -> None:
    """A row that refers to a chat that is gone is a bug to fix, not a fault of the file."""
    store = ChatStore(tmp_path / "chats.db")
    with pytest.raises(sqlite3.IntegrityError):
        store.add_message(12345, 0, Message(role="user", text="x", fed="x"))
    assert store.problem is None
