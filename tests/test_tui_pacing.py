"""The frame budget of a streaming reply, on fake clocks; and the job's end wakes its owner."""

from __future__ import annotations

import threading

import pytest

from termlm.conversation.reply import ReplyJob
from termlm.tui.pacing import FramePacer, HeldBack


class Clocks:
    """The UI thread's CPU, the process's CPU and the wall clock, moved by hand."""

    def __init__(self) -> None:
        self.ui = 0.0
        self.process = 0.0
        self.wall = 0.0

    def run(self, seconds: float, *, ui: float, model: float) -> None:
        """``seconds`` of wall time in which the UI used ``ui`` and the model ``model`` CPU."""
        self.wall += seconds
        self.ui += ui
        self.process += ui + model


def make(share: float = 0.1, max_gap: float = 10.0) -> tuple[FramePacer, Clocks]:
    clocks = Clocks()
    pacer = FramePacer(
        share,
        max_gap=max_gap,
        cpu=lambda: clocks.ui,
        total=lambda: clocks.process,
        wall=lambda: clocks.wall,
    )
    return pacer, clocks


def test_cheap_frames_are_drawn_at_every_tick() -> None:
    pacer, clocks = make(0.1)
    pacer.start()
    for _ in range(10):
        clocks.run(0.1, ui=0.005, model=0.1)
        assert pacer.due()
    assert (pacer.frames, pacer.skipped) == (10, 0)


def test_expensive_frames_are_spread_out_to_the_share() -> None:
    pacer, clocks = make(0.1)
    pacer.start()
    drawn = []
    for _ in range(11):
        drawn.append(pacer.due())
        ui = 0.045 if drawn[-1] else 0.0  # every frame costs 45 ms of the UI's CPU
        clocks.run(0.1, ui=ui, model=0.1 - ui)
    # after a frame, the next waits until the process has used 450 ms of CPU since the last one
    assert [t for t, d in enumerate(drawn) if d] == [0, 5, 10]
    assert pacer.skipped == 8


def test_a_starved_process_keeps_the_ui_to_its_share_of_what_it_gets() -> None:
    """Under load the process gets 10% of a core: frames are fewer, not the model's time."""
    pacer, clocks = make(0.1)
    pacer.start()
    for _ in range(100):
        if pacer.due():
            clocks.run(0.0, ui=0.004, model=0.0)  # a frame costs 4 ms
        clocks.run(0.1, ui=0.0, model=0.01)
    assert clocks.ui <= 0.1 * clocks.process + 0.004


def test_a_frame_is_drawn_at_least_every_max_gap() -> None:
    pacer, clocks = make(0.1, max_gap=0.5)
    pacer.start()
    assert pacer.due()
    clocks.run(0.0, ui=1.0, model=0.0)  # a very expensive frame, and the model stalls
    clocks.run(0.4, ui=0.0, model=0.0)
    assert not pacer.due()
    clocks.run(0.1, ui=0.0, model=0.0)
    assert pacer.due()


def test_share_one_draws_every_tick() -> None:
    pacer, clocks = make(1.0)
    pacer.start()
    for _ in range(5):
        clocks.run(0.1, ui=0.05, model=0.05)
        assert pacer.due()


def test_start_makes_the_next_frame_due() -> None:
    pacer, clocks = make(0.1)
    pacer.start()
    assert pacer.due()
    clocks.run(0.1, ui=10.0, model=0.0)
    assert not pacer.due()
    pacer.start()
    assert pacer.due() and pacer.frames == 1


@pytest.mark.parametrize("share", [0.0, -0.1, 1.5])
def test_share_is_checked(share: float) -> None:
    with pytest.raises(ValueError, match="share"):
        FramePacer(share)


def test_the_job_says_when_its_thread_has_ended() -> None:
    ended = threading.Event()
    job = ReplyJob(
        prompt="", state=None, strategy="", options={}, seed=0, max_tokens=0, on_end=ended.set
    )
    job.start(lambda _job: iter(()))
    assert ended.wait(10)
    assert job.finished


def test_held_back_gives_back_what_it_took_once() -> None:
    import gc

    class Prompt:
        cursor_blink = False  # a cursor that did not blink before stays so

    prompt = Prompt()
    held = HeldBack()
    held.hold(prompt)  # type: ignore[arg-type]
    held.hold(prompt)  # type: ignore[arg-type]  # a second hold changes nothing
    assert held.holding and gc.get_freeze_count() > 0 and not prompt.cursor_blink
    held.release(prompt)  # type: ignore[arg-type]
    assert not held.holding and gc.get_freeze_count() == 0 and not prompt.cursor_blink
    prompt.cursor_blink = True
    held.hold(prompt)  # type: ignore[arg-type]
    assert not prompt.cursor_blink
    held.release(None)  # the screen went away: the collector still gets everything back
    held.release(prompt)  # type: ignore[arg-type]  # nothing left to give
    assert gc.get_freeze_count() == 0 and not prompt.cursor_blink
