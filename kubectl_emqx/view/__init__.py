"""The read model: one status model, rendered as text, json or yaml."""
