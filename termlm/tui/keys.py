"""Every key of the chat and what it does: the help screen and the command palette read this."""

from __future__ import annotations

from collections.abc import Sequence

from textual.binding import Binding, BindingType

EXTRA_KEYS = (
    ("enter", "send the prompt"),
    ("ctrl+j", "new line in the prompt (also shift+enter, alt+enter)"),
    ("up / down", "recall earlier prompts (on the first / last line)"),
    ("ctrl+p", "command palette: every action, themes"),
    ("ctrl+q", "quit (a reply in flight is saved as it is)"),
)


ACTION_HELP = {
    "stop": "stop the reply now",
    "regenerate": "write the last reply again (with the current settings)",
    "undo": "remove the last prompt and reply; the prompt returns to the input box",
    "toggle_panel": "show or hide the side panel: model, strategy, options, seed",
    "toggle_mode": "switch between continue and dialogue",
    "chats": "saved chats: open, rename, delete",
    "new_chat": "start a new chat",
    "copy_reply": "copy the last reply to the clipboard",
    "export": "save this chat as a Markdown file in the current folder",
    "help": "keys and modes",
    "inspect": "inside the last reply: candidates per token, attention, hidden units; branch",
    "colour": "colour replies by confidence: off, probability, entropy",
    "score": "score a pasted text: every token coloured by surprisal",
    "arena": "decoding arena: several strategies side by side, with measures",
    "tokens": "show how the prompt is cut into tokens (unknown ones are always marked)",
    "next_branch": "switch to the next branch of the conversation",
    "beams": "live beam search panel, then the n-best (Enter takes one as the reply)",
    "train": "train a model on a text file, watch its curve, export it and chat with it",
}


def key_table(bindings: Sequence[BindingType]) -> list[tuple[str, str]]:
    """Every key of the chat and what it does, for the help screen."""
    rows = [
        (str(b.key), ACTION_HELP.get(str(b.action), str(b.description)))
        for b in bindings
        if isinstance(b, Binding)
    ]
    return list(EXTRA_KEYS[:3]) + rows + list(EXTRA_KEYS[3:])
