"""events routes."""

ROUTES: list = []
