"""Training (torch): models, data, the loop, checkpoints. Install with `pip install termlm[train]`."""
