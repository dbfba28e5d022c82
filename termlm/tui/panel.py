"""The side panel: model, preset, strategy, the strategy's options as a form, seed, length, mode.

It holds no settings itself: every accepted change goes up as a ``SidePanel.Changed`` message and
the screen decides. A value that fails validation stays in its field, marked, with the allowed
range shown under it, and is not sent.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical, VerticalScroll
from textual.message import Message
from textual.validation import ValidationResult, Validator
from textual.widgets import Input, Label, Select, Switch
from textual.widgets.select import InvalidSelectValueError

from termlm.bounds import SEED_MAX
from termlm.conversation.engine import ModelInfo
from termlm.conversation.tree import MODES
from termlm.decoding.options import OptionSpec, format_value
from termlm.errors import TermlmError
from termlm.tui.safetext import safe_line

Checker = Callable[[str, Any], str | None]  # (option name, value) -> problem or None
MAX_TOKENS = (1, 100_000)


class OptionValidator(Validator):
    """Checks one field: its type and range first, then the strategy's own validation."""

    def __init__(self, spec: OptionSpec, check: Checker | None = None) -> None:
        super().__init__()
        self.spec = spec
        self.check = check

    def validate(self, value: str) -> ValidationResult:
        try:
            parsed = self.spec.check(value)
        except TermlmError as exc:
            return self.failure(exc.message)
        problem = self.check(self.spec.name, parsed) if self.check else None
        return self.failure(problem) if problem else self.success()


class OptionField(Vertical):
    """One option: a label with its range, the right input for its type, and an error line.

    While the field shows an error, the option is the value it had before the edit began (a
    half-typed "5x" never leaves "5" applied).
    """

    def __init__(self, spec: OptionSpec, value: Any, check: Checker | None) -> None:
        super().__init__(classes="option-field")
        self.spec = spec
        self.value = value
        self.before = value  # the value when the field last took the focus
        self.check = check

    def compose(self) -> ComposeResult:
        spec = self.spec
        allowed = spec.describe_range()
        label = f"{spec.name}  {allowed}" if allowed else spec.name
        yield Label(label, classes="field-label")
        if spec.help:
            yield Label(spec.help, classes="field-help")
        if spec.type is bool:
            yield Switch(value=bool(self.value), name=spec.name)
        elif spec.choices is not None:
            yield Select(
                [(str(choice), choice) for choice in spec.choices],
                value=self.value if self.value in spec.choices else spec.default,
                allow_blank=False,
                name=spec.name,
            )
        else:
            yield Input(
                value=format_value(self.value),
                name=spec.name,
                validators=[OptionValidator(spec, self.check)],
                valid_empty=spec.type is str,
            )
        yield Label("", classes="field-error")

    def on_input_changed(self, event: Input.Changed) -> None:
        event.stop()
        error = self.query_one(".field-error", Label)
        result = event.validation_result
        if result is not None and not result.is_valid:
            _show_error(error, "; ".join(result.failure_descriptions))
            self._set(self.before)
            return
        _show_error(error, "")
        self._set(self.spec.check(event.value))

    def on_descendant_focus(self) -> None:
        self.before = self.value

    def _set(self, value: Any) -> None:
        if value != self.value:
            self.value = value
            self.post_message(SidePanel.Changed("option", (self.spec.name, value)))

    def on_switch_changed(self, event: Switch.Changed) -> None:
        event.stop()
        self._accept(bool(event.value))

    def on_select_changed(self, event: Select.Changed) -> None:
        event.stop()
        if event.value is not Select.BLANK:
            self._accept(event.value)

    def _accept(self, value: Any) -> None:
        error = self.query_one(".field-error", Label)
        problem = self.check(self.spec.name, value) if self.check else None
        _show_error(error, problem or "")
        if not problem and value != self.value:
            self.value = value
            self.post_message(SidePanel.Changed("option", (self.spec.name, value)))


class SidePanel(VerticalScroll):
    """Model and strategy pickers, the option form, seed, max tokens, mode and names."""

    can_focus = False  # Tab goes to its fields (which scroll into view), not to the container

    class Changed(Message):
        """``field``: model, preset, strategy, option, seed, max_tokens, mode, user_name, bot_name."""

        def __init__(self, field: str, value: Any) -> None:
            super().__init__()
            self.field = field
            self.value = value

    def __init__(
        self,
        *,
        seed: int | None = None,
        max_tokens: int = 200,
        mode: str = "continue",
        user_name: str = "",
        bot_name: str = "",
        id: str | None = None,
    ) -> None:
        super().__init__(id=id)
        self.initial = {
            "seed": "" if seed is None else str(seed),
            "max_tokens": str(max_tokens),
            "mode": mode if mode in MODES else MODES[0],
            "user_name": user_name,
            "bot_name": bot_name,
        }
        # seed and max tokens as applied, and as they were when their field took the focus
        self.applied: dict[str, Any] = {"seed": seed, "max_tokens": max_tokens}
        self.before = dict(self.applied)

    def compose(self) -> ComposeResult:
        initial = self.initial
        yield Label("Model", classes="section")
        yield Select[str]([], id="model-select", prompt="loading…")
        yield Label("Preset  (arena, F6)", classes="section")
        yield Select[str]([], id="preset-select", prompt="none")
        yield Label("Strategy", classes="section")
        yield Select[str]([], id="strategy-select", prompt="loading…")
        yield Vertical(id="option-fields")
        yield Label("Seed  (blank: a new one each reply)", classes="section")
        yield Input(initial["seed"], id="seed", placeholder="random", validators=[_SeedValidator()])
        yield Label("", id="seed-error", classes="field-error")
        yield Label(f"Max tokens  [{MAX_TOKENS[0]}, {MAX_TOKENS[1]}]", classes="section")
        yield Input(
            initial["max_tokens"],
            id="max-tokens",
            validators=[_MaxTokensValidator()],
            valid_empty=False,
        )
        yield Label("", id="max-tokens-error", classes="field-error")
        yield Label("Mode", classes="section")
        yield Select(
            [(mode, mode) for mode in MODES],
            value=initial["mode"],
            id="mode-select",
            allow_blank=False,
        )
        yield Label("You speak as  (dialogue)", classes="section")
        yield Input(initial["user_name"], id="user-name")
        yield Label("Model speaks as  (blank: it picks)", classes="section")
        yield Input(initial["bot_name"], id="bot-name", placeholder="the model picks")

    # ------------------------------------------------------------------ filling it from settings

    def show_models(self, models: Sequence[ModelInfo], current: str | None) -> None:
        select = self.query_one("#model-select", Select)
        if models and (current is None or any(info.name == current for info in models)):
            select._allow_blank = False  # "no model" is not a choice once there are models
        with self.prevent(Select.Changed):
            select.set_options([(Text(safe_line(info.label())), info.name) for info in models])
            if current is not None and any(info.name == current for info in models):
                select.value = current

    def select_model(self, name: str | None) -> None:
        """Show ``name`` as the chosen model (None: no model), without announcing a change."""
        select = self.query_one("#model-select", Select)
        # a name not in the list (its file is gone) leaves the list as it is
        with self.prevent(Select.Changed), contextlib.suppress(InvalidSelectValueError):
            if name is None:  # nothing loaded: the blank entry says so (it is not a choice)
                select._allow_blank = True
                select.prompt = "no model"
                select.set_options([o for o in select._options if o[1] is not Select.NULL])
                select.clear()
            else:
                select.value = name

    def show_presets(self, names: Sequence[str], current: str | None = None) -> None:
        """List the presets ("none" is the blank entry), without announcing a change."""
        select = self.query_one("#preset-select", Select)
        with self.prevent(Select.Changed):
            select.set_options([(name, name) for name in names])
        self.show_preset(current)

    def show_preset(self, name: str | None) -> None:
        """Show ``name`` as the preset in use (None: none), without announcing a change."""
        select = self.query_one("#preset-select", Select)
        with self.prevent(Select.Changed), contextlib.suppress(InvalidSelectValueError):
            if name is None:
                select.clear()
            else:
                select.value = name

    def show_strategies(self, names: Sequence[str], current: str) -> None:
        select = self.query_one("#strategy-select", Select)
        if names and current in names:
            # A strategy is always chosen: no blank "loading…" entry once the names are known.
            # (Select has no public setter for this; the flag is read by set_options.)
            select._allow_blank = False
        with self.prevent(Select.Changed):
            select.set_options([(name, name) for name in names])
            if current in names:
                select.value = current

    async def show_options(
        self, specs: Sequence[OptionSpec], values: Mapping[str, Any], check: Checker | None
    ) -> None:
        container = self.query_one("#option-fields", Vertical)
        await container.remove_children()
        fields = [OptionField(spec, values.get(spec.name, spec.default), check) for spec in specs]
        if fields:
            await container.mount_all(fields)
        else:
            await container.mount(Label("(no options)", classes="field-help"))

    # ------------------------------------------------------------------ sending changes up

    def on_select_changed(self, event: Select.Changed) -> None:
        fields = {
            "model-select": "model",
            "preset-select": "preset",
            "strategy-select": "strategy",
            "mode-select": "mode",
        }
        field = fields.get(event.select.id or "")
        # Select.NULL: the blank entry ("none", "no model") was picked, which changes nothing
        if field is not None and event.value is not Select.NULL and event.value is not Select.BLANK:
            event.stop()
            self.post_message(self.Changed(field, event.value))

    def on_input_changed(self, event: Input.Changed) -> None:
        input_id = event.input.id or ""
        if input_id in ("user-name", "bot-name"):
            event.stop()
            self.post_message(self.Changed(input_id.replace("-", "_"), event.value.strip()))
            return
        if input_id not in ("seed", "max-tokens"):
            return
        event.stop()
        error = self.query_one(f"#{input_id}-error", Label)
        result = event.validation_result
        field = input_id.replace("-", "_")
        if result is not None and not result.is_valid:
            _show_error(error, "; ".join(result.failure_descriptions))
            self._apply(field, self.before[field])  # never a half-typed value
            return
        _show_error(error, "")
        text = event.value.strip()
        self._apply(field, int(text) if text else None)

    def on_descendant_focus(self, event: Any) -> None:
        if getattr(event.widget, "id", None) in ("seed", "max-tokens"):
            self.before = dict(self.applied)

    def _apply(self, field: str, value: Any) -> None:
        if value != self.applied[field]:
            self.applied[field] = value
            self.post_message(self.Changed(field, value))


def _show_error(label: Label, text: str) -> None:
    label.update(text)
    label.display = bool(text)


class _SeedValidator(Validator):
    def validate(self, value: str) -> ValidationResult:
        text = value.strip()
        if not text:
            return self.success()
        try:
            seed = int(text)
        except ValueError:
            return self.failure("the seed must be a whole number >= 0, or blank")
        if 0 <= seed <= SEED_MAX:
            return self.success()
        return self.failure(f"the seed must be from 0 to {SEED_MAX}")


class _MaxTokensValidator(Validator):
    def validate(self, value: str) -> ValidationResult:
        low, high = MAX_TOKENS
        try:
            count = int(value.strip())
        except ValueError:
            return self.failure(f"max tokens must be a whole number in [{low}, {high}]")
        if not low <= count <= high:
            return self.failure(f"max tokens must be in [{low}, {high}], got {count}")
        return self.success()
