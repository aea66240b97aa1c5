"""Fixtures come from `fulmen.testing` (a pytest plugin the host installs)."""
