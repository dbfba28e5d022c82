"""Decoding: the plugin contract, the plugin manager, and the generation loop."""
