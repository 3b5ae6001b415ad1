"""Use cases: what Herald does when asked, whichever API asks (HTTP routes, seed dialects, queue handlers).

They sit below those callers and above the store, the channels and the queue contracts
(pyproject.toml [tool.importlinter]).
"""
