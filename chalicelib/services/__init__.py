"""Use cases: what Herald does when asked, whichever API asks.

HTTP routes, seed dialects and queue handlers call these; they sit above the store, the
channels and the queue contracts (pyproject.toml [tool.importlinter]).
"""
