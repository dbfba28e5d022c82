"""termlm: train small language models on any text and talk to them in the terminal."""

__version__ = "0.1.0"
