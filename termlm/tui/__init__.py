"""`termlm chat`: a Textual app to talk to an exported model. Never imports torch."""
