"""termlm's built-in decoding plugins, installed as `termlm.builtin_plugins` and loaded through
termlm's own entry points (group `termlm.plugins`), like a third-party plugin package."""
