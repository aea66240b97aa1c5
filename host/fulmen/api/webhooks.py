"""webhooks routes."""

ROUTES: list = []
