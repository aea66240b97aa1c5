"""lnurl routes."""

ROUTES: list = []
