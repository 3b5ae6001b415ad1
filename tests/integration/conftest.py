"""The send pipeline's fixtures (tests/send_kit.py), for every integration test module."""

from tests.send_kit import fast_sends, frozen, send_requests, ses_hooks, shop

__all__ = ["fast_sends", "frozen", "send_requests", "ses_hooks", "shop"]
