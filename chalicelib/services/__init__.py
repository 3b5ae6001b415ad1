"""Use cases: what Herald does when asked, whichever API asks.

HTTP routes, seed dialects and queue handlers call these; they sit above the store, the
channels and the queue contracts (pyproject.toml [tool.importlinter]). A use case decides
in full before it writes anything, and raises the domain's error types, which each API
maps to its own error shape once.
"""
