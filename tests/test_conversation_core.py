"""The conversation core without Textual: the reply job's states, and what quitting, deleting and
switching chats save at each of them."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from termlm.conversation.chat import ChatCore
from termlm.conversation.demo import FakeEngine
from termlm.conversation.reply import BadTransition, ReplyJob, ReplyState
from termlm.conversation.settings import Settings
from termlm.conversation.store import ChatStore


def wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.005)


def make_core(tmp_path: Path, **engine_args: object) -> tuple[ChatCore, FakeEngine]:
    engine = FakeEngine(**engine_args)  # type: ignore[arg-type]
    core = ChatCore(engine, ChatStore(tmp_path / "chats.db"), Settings(seed=5, max_tokens=50))
    core.model = engine.load(None)
    return core, engine


def pump(core: ChatCore, job: ReplyJob) -> None:
    """Drain a job the way the chat's timer does, until it ends; then the core saves it."""
    while True:
        _, result = job.take(job.drain())
        if result is not None:
            core.finish(job, result)
            return
        time.sleep(0.005)


def streaming(core: ChatCore, gate: threading.Event, text: str = "hello there") -> ReplyJob:
    """A reply in the streaming state with two tokens drained and the rest held by ``gate``."""
    job = core.send(text, {})
    wait_for(lambda: len(job.events) + len(job._pending) >= 2)
    job.take(job.drain())
    assert job.phase is ReplyState.STREAMING and job.tokens == 2
    return job


def saved_rows(core: ChatCore) -> list[tuple[str, str, str | None]]:
    chats = core.store.list_chats()
    rows = []
    for chat in chats:
        conversation, *_ = core.store.load_chat(chat.id)
        rows += [(m.role, m.text, m.stop_reason) for m in conversation.messages]
    return rows


# ------------------------------------------------------------------ the state machine


def test_a_reply_goes_through_its_states_in_order(tmp_path: Path) -> None:
    core, _ = make_core(tmp_path)
    job = core.send("hello", {})
    assert job.phase in (ReplyState.STREAMING,)
    pump(core, job)
    assert job.phase is ReplyState.SAVED and core.job is None
    with pytest.raises(BadTransition):
        job.mark_saved()
    with pytest.raises(BadTransition):
        job.end(job.cut_short())
    reply = core.conversation.messages[-1]
    assert reply.role == "model" and reply.id is not None and reply.token_ids


def test_stop_then_end_keeps_the_tokens_so_far(tmp_path: Path) -> None:
    gate = threading.Event()
    core, _ = make_core(tmp_path, gate=gate, hold_after=2)
    job = streaming(core, gate)
    job.request_stop()
    assert job.phase is ReplyState.STOPPING
    pump(core, job)
    reply = core.conversation.messages[-1]
    assert reply.stop_reason == "cancelled" and reply.tokens == 2
    assert saved_rows(core)[-1][2] == "cancelled"


# ------------------------------------------------------------------ quit at every state


@pytest.mark.parametrize("phase", ["idle", "streaming", "stopping", "stopped", "saved"])
def test_quit_saves_what_exists(tmp_path: Path, phase: str) -> None:
    gate = threading.Event()
    core, _ = make_core(tmp_path, gate=gate, hold_after=2)
    if phase == "idle":
        core.append(core.turn_for("typed and sent")[0])
    else:
        job = streaming(core, gate)
        if phase == "stopping":
            job.request_stop()
        elif phase == "stopped":
            job.end(job.cut_short())
        elif phase == "saved":
            gate.set()
            pump(core, job)
    core.close()

    reopened = ChatStore(tmp_path / "chats.db")
    [summary] = reopened.list_chats()
    conversation, *_ = reopened.load_chat(summary.id)
    roles = [m.role for m in conversation.messages]
    if phase == "idle":
        assert roles == ["user"]
        return
    assert roles == ["user", "model"]  # the prompt and the partial reply, never the prompt alone
    reply = conversation.messages[-1]
    assert reply.text.split()  # the words that were shown are saved
    if phase != "saved":
        assert reply.stop_reason == "cancelled" and len(reply.token_ids) >= 2


# ------------------------------------------------------------------ delete at every state


@pytest.mark.parametrize("phase", ["idle", "streaming", "stopping", "stopped", "saved"])
def test_deleting_the_open_chat_then_sending_works(tmp_path: Path, phase: str) -> None:
    gate = threading.Event()
    core, _ = make_core(tmp_path, gate=gate, hold_after=2)
    core.append(core.turn_for("first")[0])
    if phase != "idle":
        job = streaming(core, gate)
        if phase == "stopping":
            job.request_stop()
        elif phase == "stopped":
            job.end(job.cut_short())
        elif phase == "saved":
            gate.set()
            pump(core, job)
    chat_id = core.conversation.chat_id
    assert chat_id is not None
    assert core.delete_chat(chat_id)
    assert core.conversation.messages == [] and core.job is None

    gate.set()
    job = core.send("after the delete", {})  # was: FOREIGN KEY constraint failed
    pump(core, job)
    assert [c.title for c in core.store.list_chats()] == ["after the delete"]
    assert [r[0] for r in saved_rows(core)] == ["user", "model"]
    assert saved_rows(core)[0][1] == "after the delete"


def test_deleting_another_chat_leaves_the_open_one(tmp_path: Path) -> None:
    core, _ = make_core(tmp_path)
    pump(core, core.send("one", {}))
    first = core.conversation.chat_id
    core.new_chat()
    pump(core, core.send("two", {}))
    assert first is not None and not core.delete_chat(first)
    assert [m.role for m in core.conversation.messages] == ["user", "model"]


# ------------------------------------------------------------------ switch at every state


@pytest.mark.parametrize("phase", ["streaming", "stopping", "stopped"])
@pytest.mark.parametrize("how", ["new", "open"])
def test_switching_chats_saves_the_reply_in_its_own_chat(
    tmp_path: Path, phase: str, how: str
) -> None:
    gate = threading.Event()
    core, _ = make_core(tmp_path, gate=gate, hold_after=2)
    gate.set()
    pump(core, core.send("an older chat", {}))
    older = core.conversation.chat_id
    gate.clear()
    core.new_chat()
    job = streaming(core, gate, "the chat being written")
    current = core.conversation.chat_id
    if phase == "stopping":
        job.request_stop()
    elif phase == "stopped":
        job.end(job.cut_short())
    if how == "new":
        core.new_chat()
    else:
        assert older is not None
        core.open_chat(older)
    assert core.job is None and job.phase is ReplyState.SAVED
    assert current is not None
    conversation, *_ = core.store.load_chat(current)
    assert [m.role for m in conversation.messages] == ["user", "model"]
    assert conversation.messages[-1].stop_reason == "cancelled"


# ------------------------------------------------------------------ prefill and branches


def test_a_reply_cut_short_is_read_again_before_the_next_prompt(tmp_path: Path) -> None:
    gate = threading.Event()
    core, engine = make_core(tmp_path, gate=gate, hold_after=2)
    job = streaming(core, gate)
    job.end(job.cut_short())  # the engine did not end in time: no state came back
    core.close()  # saved with its tokens and no state

    gate.set()
    store = ChatStore(tmp_path / "chats.db")
    again = ChatCore(engine, store, Settings(seed=5))
    again.model = core.model
    again.open_chat(store.list_chats()[0].id)
    reply = again.conversation.messages[-1]
    assert reply.state is None and reply.token_ids == [e.token_id for e in job.events]
    _, turn = again.turn_for("next")
    assert turn.state is not None  # the reply was read again (a replay), not skipped
    assert turn.state["seen"][0, 0] == len("hello there") + len(reply.fed)


def test_branch_keeps_the_tokens_as_reply(tmp_path: Path) -> None:
    core, engine = make_core(tmp_path)
    pump(core, core.send("hello", {}))
    reply = core.conversation.messages[-1]
    turn = core.branch_turn(1, 2, 7)
    assert [e.token_id for e in turn.prefix] == [*reply.token_ids[:2], 7]
    assert turn.prompt == core.conversation.messages[0].fed  # the prompt alone
    core.conversation.branch_at(1)
    job = core.start_reply(turn, {})
    pump(core, job)
    assert engine.calls[-1]["reply_prefix"] == [*reply.token_ids[:2], 7]
    branch = core.conversation.messages[-1]
    assert branch.token_ids[:3] == [*reply.token_ids[:2], 7]
    assert branch.tokens == len(branch.token_ids)


# ------------------------------------------------------------------ saved states are bounded


def test_only_the_newest_reply_keeps_its_state_on_disk(tmp_path: Path) -> None:
    core, _ = make_core(tmp_path)
    for text in ("one", "two", "three", "four"):
        pump(core, core.send(text, {}))
    db = sqlite3.connect(tmp_path / "chats.db")
    states = db.execute("SELECT role, state IS NOT NULL FROM messages ORDER BY position").fetchall()
    assert states == [("user", 0), ("model", 0)] * 3 + [("user", 0), ("model", 1)]
    # undo: the reply before becomes the newest, and its state is kept again
    core.drop_last_exchange()
    kept = db.execute("SELECT COUNT(*) FROM messages WHERE state IS NOT NULL").fetchone()
    assert kept == (1,)
    assert core.conversation.messages[-1].state is not None


# ------------------------------------------------------------------ a reopened chat continues


@pytest.mark.parametrize("kind", ["rnn", "memory"])
def test_a_reopened_chat_continues_exactly_as_before(tmp_path: Path, kind: str) -> None:
    pytest.importorskip("onnx")
    from tiny_onnx import write_tiny_model

    from termlm.conversation.engine import OnnxEngine
    from termlm.tokenizers import fit_tokenizer

    text = "the quick brown fox jumps over the lazy dog\n" * 3
    tokenizer = fit_tokenizer("char", text)
    path = write_tiny_model(
        tmp_path / f"{kind}.onnx", kind, vocab=tokenizer.vocab_size, tokenizer=tokenizer.to_json()
    )
    settings = Settings(seed=3, max_tokens=12, strategy="sample")

    def open_core() -> ChatCore:
        engine = OnnxEngine(entry_points=False, user_dir=False)
        core = ChatCore(engine, ChatStore(tmp_path / "chats.db"), settings)
        core.model = engine.load(str(path))
        return core

    core = open_core()
    for prompt in ("the ", "quick ", "brown "):
        pump(core, core.send(prompt, {}))
    pump(core, core.send("fox ", {}))
    in_session = core.conversation.messages[-1].token_ids
    core.drop_last_exchange()
    pump(core, core.send("lazy ", {}))
    regenerated_before = core.conversation.messages[-1].token_ids
    core.close()

    again = open_core()
    again.open_chat(again.store.list_chats()[0].id)
    again.drop_last_exchange()  # back to the third reply, whose state was kept on disk
    reply = again.conversation.messages[-1]
    assert reply.state is None  # an older reply: its state was not kept on disk
    pump(again, again.send("fox ", {}))  # read again from its tokens, then continued
    assert again.conversation.messages[-1].token_ids == in_session  # exactly as before
    assert regenerated_before  # (the reply the reopened chat dropped)
    again.close()
