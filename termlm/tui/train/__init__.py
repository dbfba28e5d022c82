"""The chat's Train view: train a model on a text file, watch it, export it, chat with it."""
