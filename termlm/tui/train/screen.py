"""The Train view: a form (text file, level, architecture or bake-off, minutes), then the run as
it goes (curve, samples, tokens/s, time left), then export and use in the chat, one key each.

The training is a `termlm train --events` process run by a ``TrainJob`` (termlm/runs/job.py);
this screen only shows the job and asks it to act, on a timer. The chat never imports torch.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Button, Footer, Input, Label, Select, Static

from termlm.errors import TermlmError
from termlm.runs.job import JobState, TrainJob, format_seconds
from termlm.runs.plan import ARCHS, BAKEOFF, INSTALL_TRAIN, LEVELS, TrainRequest
from termlm.runs.plan import missing_train_modules as _missing
from termlm.tui.safetext import safe_line
from termlm.tui.train.confirm import ConfirmScreen
from termlm.tui.train.curve import CurveView
from termlm.tui.train.pathinput import PathInput, path_matches

if TYPE_CHECKING:
    from textual.app import App

POLL_SECONDS = 0.25
SAMPLES_SHOWN = 4

STATE_TEXT = {
    JobState.IDLE: "ready",
    JobState.STARTING: "starting (loading PyTorch, reading the text)…",
    JobState.TRAINING: "training",
    JobState.STOPPING: "stopping: saving a checkpoint…",
    JobState.STOPPED: "stopped",
    JobState.FINISHED: "finished",
    JobState.EXPORTING: "exporting (checked against PyTorch)…",
    JobState.EXPORTED: "exported",
    JobState.FAILED: "failed",
}


def missing_train_modules() -> list[str]:
    """Which train-extra modules are missing (tests make this fail to see the advice)."""
    return _missing()


class TrainScreen(Screen[None]):
    """Kept by the app while it runs: leaving the view does not stop the training."""

    DEFAULT_CSS = """
    TrainScreen { layout: vertical; }
    TrainScreen #train-form { height: auto; }
    TrainScreen #train-form Horizontal { height: auto; }
    TrainScreen #corpus { width: 1fr; }
    TrainScreen #matches { height: 1; color: $text-muted; padding: 0 1; }
    TrainScreen #level { width: 14; }
    TrainScreen #arch { width: 20; }
    TrainScreen #minutes { width: 12; }
    TrainScreen #start { min-width: 9; }
    TrainScreen .label { padding: 1 0 0 1; width: auto; }
    TrainScreen #summary { height: auto; padding: 0 1; text-style: bold; }
    TrainScreen #stats { height: 1; padding: 0 1; background: $boost; }
    TrainScreen #problem { height: auto; padding: 0 1; color: $error; }
    TrainScreen #curve { padding: 0 1; }
    TrainScreen #samples { height: auto; max-height: 6; padding: 0 1; color: $text-muted; }
    TrainScreen #next { height: auto; padding: 0 1; color: $success; }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "leave", "Stop / back"),
        Binding("f10", "back", "Chat", priority=True),
        Binding("e", "export", "Export"),
        Binding("u", "use", "Use in chat"),
        Binding("n", "new", "New training"),
    ]

    def __init__(self, *, launcher: Any = None, exported_dir: Path | None = None) -> None:
        super().__init__()
        self.job: TrainJob | None = None
        self.launcher = launcher  # tests and the CLI use the real one (None)
        self.exported_dir = exported_dir or Path("exported")
        self.extra: list[str] = []  # more `termlm train` options (tests: tiny sizes)
        self.run_name: str | None = None  # None: corpus-level-arch-time
        self.form_problem = ""  # why the form's request was refused
        self._shown_state: JobState | None = None

    def compose(self) -> ComposeResult:
        missing = missing_train_modules()
        with Vertical(id="train-form"):
            with Horizontal():
                yield Label("Text file", classes="label")
                yield PathInput(placeholder="path of a text file (Tab completes)", id="corpus")
            yield Static("", id="matches")
            with Horizontal():
                yield Label("level", classes="label")
                yield Select([(x, x) for x in LEVELS], value="char", allow_blank=False, id="level")
                yield Label("model", classes="label")
                yield Select(
                    [(x, x) for x in (*ARCHS, BAKEOFF)], value="lstm", allow_blank=False, id="arch"
                )
                yield Label("min", classes="label")
                yield Input("2", id="minutes", restrict=r"[0-9.]*", max_length=6)
                yield Button("Start", id="start", variant="primary", disabled=bool(missing))
        yield Static("", id="summary")
        yield Static("", id="stats")
        yield Static(
            f"Training needs PyTorch ({', '.join(missing)} not installed here). "
            f"Install it with:  {INSTALL_TRAIN}"
            if missing
            else "",
            id="problem",
        )
        yield CurveView(id="curve")  # empty until a training runs
        yield Static("", id="samples")
        yield Static("", id="next")
        yield Footer()

    def on_mount(self) -> None:
        self.set_interval(POLL_SECONDS, self.tick)
        self.query_one("#corpus", PathInput).focus()
        self.refresh_view()

    # -- the form ---------------------------------------------------------------------------

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id == "corpus":
            found = path_matches(event.value, limit=8) if event.value else []
            names = "  ".join(
                Path(m.rstrip("/")).name + ("/" if m.endswith("/") else "") for m in found
            )
            self.query_one("#matches", Static).update(Text(names))

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.start()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "start":
            self.start()

    def request(self) -> TrainRequest:
        minutes_text = self.query_one("#minutes", Input).value or "0"
        try:
            minutes = float(minutes_text)
        except ValueError:
            minutes = 0.0
        return TrainRequest(
            corpus=self.query_one("#corpus", PathInput).value.strip(),
            level=str(self.query_one("#level", Select).value),
            arch=str(self.query_one("#arch", Select).value),
            minutes=minutes,
            name=self.run_name,
            extra=list(self.extra),
        )

    def start(self) -> None:
        if self.job is not None and self.job.running:
            return
        if missing_train_modules():
            self.refresh_view()
            return
        request = self.request()
        try:
            request.check()  # a wrong path or budget is said under the form, which stays
        except TermlmError as exc:
            self.form_problem = str(exc)
            self.refresh_view()
            return
        self.form_problem = ""
        kwargs: dict[str, Any] = {"exported_dir": self.exported_dir}
        if self.launcher is not None:
            kwargs["launcher"] = self.launcher
        self.job = TrainJob(request, **kwargs)
        self.job.start()
        self.refresh_view()

    # -- watching ---------------------------------------------------------------------------

    def tick(self) -> None:
        job = self.job
        if job is None:
            return
        seen = job.poll()
        if seen or job.state is not self._shown_state or job.state is JobState.TRAINING:
            self.refresh_view(
                redraw_curve=any(e.get("event") in ("validation", "say", "setup") for e in seen)
            )

    def refresh_view(self, redraw_curve: bool = True) -> None:
        job = self.job
        state = job.state if job is not None else JobState.IDLE
        changed = state is not self._shown_state
        self._shown_state = state
        form_shown = job is None
        form = self.query_one("#train-form")
        if form.display != form_shown:
            form.display = form_shown
            if form_shown:
                self.query_one("#corpus", PathInput).focus()
            else:
                self.set_focus(None)  # the keys (e, u, n, Esc) are the screen's now
        self.query_one("#summary", Static).update(self._summary())
        self.query_one("#stats", Static).update(self._stats())
        problem = self.query_one("#problem", Static)
        if job is not None:
            problem.update(Text(job.problem or ""))
        elif self.form_problem:
            problem.update(Text(self.form_problem))
        elif missing_train_modules():
            problem.update(
                Text(
                    f"Training needs PyTorch ({', '.join(missing_train_modules())} not "
                    f"installed here). Install it with:  {INSTALL_TRAIN}"
                )
            )
        if job is not None and not job.curves and state is JobState.FAILED:
            self.query_one(CurveView).clear()
        elif job is not None and (redraw_curve or changed):
            curve = job.curves[-1] if job.curves else None
            title = Path(curve.run_dir).name if curve is not None and job.request.bakeoff else ""
            self.query_one(CurveView).show(curve.records if curve else [], title, job.notes)
            self.query_one("#samples", Static).update(self._samples())
        self.query_one("#next", Static).update(self._next_steps())
        if changed:
            self.refresh_bindings()

    def _summary(self) -> Text:
        job = self.job
        if job is None:
            return Text("Train a model on a text file: pick it, then Enter (Esc: back to chat)")
        r = job.request
        what = "bake-off of every architecture" if r.bakeoff else r.arch
        return Text(
            safe_line(
                f"{Path(r.corpus).name} · {r.level} · {what} · {r.minutes:g} min → {r.folder}"
            )
        )

    def _stats(self) -> Text:
        job = self.job
        if job is None:
            return Text("")
        p = job.progress
        parts = [STATE_TEXT[job.state]]
        step, total = p.get("step"), p.get("total_steps")
        if isinstance(step, int):
            parts.append(f"step {step:,}" + (f"/{total:,}" if isinstance(total, int) else ""))
        loss = p.get("loss")
        if isinstance(loss, int | float):
            parts.append(f"loss {loss:.3f}")
        speed = job.tokens_per_s()
        if speed is not None:
            parts.append(f"{speed:,.0f} tok/s")
        if job.state in (JobState.STARTING, JobState.TRAINING):
            parts.append(f"{format_seconds(job.seconds_left())} left")
        if job.rows:
            best = job.rows[0]
            parts.append(f"best: {best.get('arch')}")
        return Text(" · ".join(parts))

    def _samples(self) -> Text:
        job = self.job
        text = Text()
        if job is None:
            return text
        if job.rows:  # a bake-off's leaderboard, best first
            for place, row in enumerate(job.rows[:SAMPLES_SHOWN], 1):
                bpc, loss = row.get("val_bpc"), row.get("val_loss")
                figure = f"{bpc:.3f} bits/char" if isinstance(bpc, float) else f"{loss:.3f}"
                text.append(f"{place}. {row.get('arch', '?'):<12} {figure}\n")
            return text
        for step, sample in job.samples()[-SAMPLES_SHOWN:]:
            line = safe_line(sample.replace("\r", "").replace("\n", " ⏎ ")).strip()
            text.append(f"step {step:>5}: ", style="bold")
            text.append(line + "\n")
        return text

    def _next_steps(self) -> Text:
        job = self.job
        if job is None:
            return Text("")
        state = job.state
        if state is JobState.FINISHED:
            return Text("Done. e: export the model, then u: chat with it; n: train another")
        if state is JobState.STOPPED:
            resume = f"resume later with: {job.resume_hint()}" if job.resumable else ""
            export = "e: export what it learnt so far; " if job.can_export else ""
            return Text(f"{export}n: train another. {resume}".strip())
        if state is JobState.EXPORTED:
            return Text(f"Wrote {job.model_path}. u: chat with it now; n: train another")
        if state is JobState.FAILED:
            return Text("e: export anyway; n: try again" if job.can_export else "n: try again")
        if state in (JobState.STARTING, JobState.TRAINING):
            return Text("Esc: stop (a checkpoint is kept); F10: back to the chat, it goes on")
        return Text("")

    # -- keys -------------------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        job = self.job
        if action == "export":
            return job is not None and job.can_export
        if action == "use":
            return job is not None and job.state is JobState.EXPORTED
        if action == "new":
            return job is not None and not job.running
        return True

    def action_leave(self) -> None:
        """Esc: asks, then stops a running training; otherwise back to the chat."""
        job = self.job
        if job is not None and job.state in (JobState.STARTING, JobState.TRAINING):

            def answered(yes: bool | None) -> None:
                if yes and self.job is job:
                    job.stop()
                    self.refresh_view()

            self.app.push_screen(
                ConfirmScreen(
                    "Stop the training?",
                    f"A checkpoint is saved; resume with: {job.resume_hint()}",
                ),
                answered,
            )
            return
        self.action_back()

    def action_back(self) -> None:
        if self.app.screen is self:
            self.app.pop_screen()

    def action_export(self) -> None:
        if self.job is not None and self.job.export():
            self.refresh_view()

    def action_use(self) -> None:
        job = self.job
        if job is None or job.model_path is None or job.state is not JobState.EXPORTED:
            return
        path = str(job.model_path)
        self.action_back()
        chat = self.app.chat  # type: ignore[attr-defined]
        chat.start_load(path)

    def action_new(self) -> None:
        if self.job is None or self.job.running:
            return
        self.job = None
        self.refresh_view()
        self.query_one(CurveView).clear()
        self.query_one("#samples", Static).update("")
        self.query_one("#corpus", PathInput).focus()

    # -- leaving the chat ---------------------------------------------------------------------

    @property
    def training(self) -> bool:
        return self.job is not None and self.job.running

    def close_job(self) -> None:
        """The chat ends: stop the process and wait for it (no process is left behind)."""
        if self.job is not None:
            self.job.close()


def open_train_view(app: App[Any]) -> None:
    """F10 and the palette: the one Train view of this app (made on first use)."""
    view = getattr(app, "train_view", None)
    if view is None:
        view = TrainScreen()
        app.train_view = view  # type: ignore[attr-defined]
        app.install_screen(view, name="train")  # kept when left: the training goes on
    if app.screen is not view:
        app.push_screen("train")


async def quit_asking(app: App[Any]) -> None:
    """Ctrl+Q: with a training running, ask first; yes stops it (checkpoint saved), then quits."""
    view = getattr(app, "train_view", None)
    if view is None or not view.training:
        app.exit()
        return
    job = view.job

    def answered(yes: bool | None) -> None:
        if yes:
            view.close_job()
            app.exit()

    app.push_screen(
        ConfirmScreen(
            "A training is running. Stop it and quit?",
            f"A checkpoint is saved; resume with: {job.resume_hint()}",
        ),
        answered,
    )
