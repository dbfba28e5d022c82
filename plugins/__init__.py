"""termlm's built-in decoding plugins. Each module is loaded like a third-party plugin file."""
