"""Runnable examples next to ``recipes/`` (not part of the installed library)."""
