"""The frame budget of a streaming reply, on fake clocks; and the job's end wakes its owner."""

from __future__ import annotations

import threading

import pytest

from termlm.conversation.reply import ReplyJob
from termlm.tui.pacing import FramePacer


class Clocks:
    def __init__(self) -> None:
        self.cpu = 0.0
        self.wall = 0.0


def make(share: float = 0.1) -> tuple[FramePacer, Clocks]:
    clocks = Clocks()
    return FramePacer(share, cpu=lambda: clocks.cpu, wall=lambda: clocks.wall), clocks


def test_cheap_frames_are_drawn_at_every_tick() -> None:
    pacer, clocks = make(0.1)
    pacer.start()
    for _ in range(10):
        clocks.wall += 0.1
        clocks.cpu += 0.005  # 5% of the time
        assert pacer.due()
    assert (pacer.frames, pacer.skipped) == (10, 0)


def test_expensive_frames_are_spread_out_to_the_share() -> None:
    pacer, clocks = make(0.1)
    pacer.start()
    drawn = []
    for tick in range(11):
        clocks.wall = 0.1 * tick
        drawn.append(pacer.due())
        if drawn[-1]:
            clocks.cpu += 0.045  # every frame costs 45 ms: the next one waits 450 ms
    assert [t for t, d in enumerate(drawn) if d] == [0, 5, 10]
    assert pacer.skipped == 8


def test_start_makes_the_next_frame_due() -> None:
    pacer, clocks = make(0.1)
    pacer.start()
    assert pacer.due()
    clocks.cpu += 10.0
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
