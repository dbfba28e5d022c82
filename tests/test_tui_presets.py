"""Presets saved from the decoding arena can be picked again: in the side panel or the palette."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("textual")

from textual.widgets import Input, Select
from tui_helpers import make_app, wait_until

from termlm.conversation.settings import Settings
from termlm.tui.chat_screen import ChatScreen
from termlm.tui.panel import OptionField
from termlm.tui.widgets import PromptInput

pytestmark = pytest.mark.anyio

PRESETS: dict[str, dict[str, Any]] = {
    "beam beams=3": {"strategy": "beam", "options": {"num_beams": 3, "length_penalty": 0.5}},
    "sample temperature=1.5": {"strategy": "sample", "options": {"temperature": 1.5}},
    "gone": {"strategy": "no-such-strategy", "options": {}},
}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def field_value(chat: ChatScreen, name: str) -> Any:
    """The field's shown value; None while the field or its input is still being mounted."""
    field = next((f for f in chat.query(OptionField) if f.spec.name == name), None)
    if field is None:
        return None
    if field.query(Input):
        return field.query_one(Input).value
    selects = field.query(Select)
    return selects.first().value if selects else None


def option_names(chat: ChatScreen) -> list[str]:
    return [f.spec.name for f in chat.query(OptionField)]


async def test_a_preset_picked_in_the_panel_sets_the_form_and_the_next_reply(
    tmp_path: Path,
) -> None:
    app = make_app(tmp_path, settings=Settings(seed=7, presets=dict(PRESETS)))
    async with app.run_test(size=(120, 60)) as pilot:
        chat = app.chat
        await wait_until(pilot, lambda: chat.model is not None)
        await pilot.press("f2")
        await wait_until(pilot, lambda: option_names(chat)[:1] == ["temperature"])
        presets = chat.query_one("#preset-select", Select)
        assert presets.value is Select.NULL  # "none" until one is picked
        assert [str(option[0]) for option in presets._options[1:]] == list(PRESETS)

        presets.value = "beam beams=3"
        await wait_until(pilot, lambda: option_names(chat)[:1] == ["num_beams"])
        await wait_until(pilot, lambda: field_value(chat, "num_beams") == "3")
        await wait_until(pilot, lambda: field_value(chat, "length_penalty") == "0.5")
        assert chat.query_one("#strategy-select", Select).value == "beam"
        assert presets.value == "beam beams=3"
        saved = json.loads((tmp_path / "chat.json").read_text())
        assert saved["strategy"] == "beam" and saved["options"]["beam"]["num_beams"] == 3

        chat.query_one(PromptInput).load_text("go")
        chat.query_one(PromptInput).focus()
        await pilot.press("enter")
        await wait_until(
            pilot, lambda: not chat.generating and len(chat.conversation.messages) == 2
        )
        reply = chat.conversation.messages[-1]
        assert reply.strategy == "beam" and reply.options["num_beams"] == 3

        # changing the decoding by hand: the panel no longer claims the preset
        chat.query_one("#strategy-select", Select).value = "greedy"
        await wait_until(pilot, lambda: app.settings.strategy == "greedy")
        assert presets.value is Select.NULL


async def test_a_preset_from_the_palette_and_a_broken_one(tmp_path: Path) -> None:
    app = make_app(tmp_path, settings=Settings(seed=7, presets=dict(PRESETS), panel=True))
    async with app.run_test(size=(120, 60)) as pilot:
        chat = app.chat
        await wait_until(pilot, lambda: chat.model is not None and len(option_names(chat)) > 0)
        titles = [command.title for command in app.get_system_commands(app.screen)]
        assert "Preset: sample temperature=1.5" in titles

        await pilot.press("ctrl+p")
        await wait_until(pilot, lambda: type(app.screen).__name__ == "CommandPalette")
        await pilot.press(*"Preset: sample temp")
        await pilot.pause()
        await pilot.press("enter")
        await wait_until(pilot, lambda: app.screen is chat)
        await wait_until(
            pilot, lambda: app.settings.options_for("sample").get("temperature") == 1.5
        )
        await wait_until(pilot, lambda: field_value(chat, "temperature") == "1.5")
        assert app.settings.strategy == "sample"
        assert chat.query_one("#preset-select", Select).value == "sample temperature=1.5"

        # a preset whose strategy is not installed is refused, and nothing changes
        chat.query_one("#preset-select", Select).value = "gone"
        await wait_until(
            pilot, lambda: chat.query_one("#preset-select", Select).value is Select.NULL
        )
        assert app.settings.strategy == "sample"
        assert any("no-such-strategy" in str(n.message) for n in app._notifications)
