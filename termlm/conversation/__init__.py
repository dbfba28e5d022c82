"""The conversation core: everything the chat and `termlm generate` share, with no Textual in it.

* ``tree``: messages, branches and how prompts are built (continue and dialogue modes).
* ``reply``: ``ReplyJob``, one reply in flight as a state machine (idle, streaming, stopping,
  stopped, saved) fed by a thread; ``stream`` drains one for the CLI.
* ``chat``: ``ChatCore``, the open chat: every change saved as it is made; quit, delete and switch
  at any moment; prefill and branching.
* ``store``: ``ChatStore``, chats in SQLite with bounded saved states; keeps working in memory
  when the database cannot be used.
* ``settings``: the chat's remembered choices (a small JSON file, written atomically).
* ``engine`` and ``demo``: the model behind a chat (real, or a scripted stand-in over the real
  plugin registry).

The submodules are imported by name (nothing is imported here, so `termlm generate` pays only
for what it uses).
"""
