"""The relay fixtures (see nostr_testing.py)."""

from nostr_testing import relay, relay_installed  # noqa: F401 - fixtures
