"""The web UI: host pages (`pages.py`), the operator's page (`admin.py`) and
what plugin pages share with them (`core.py`)."""

from .core import (
    SignInRequired,
    WebSession,
    checked_form,
    current_web_session,
    field_errors,
    page_environment,
    redirect,
    render_page,
    require_web_session,
)

__all__ = [
    "SignInRequired",
    "WebSession",
    "checked_form",
    "current_web_session",
    "field_errors",
    "page_environment",
    "redirect",
    "render_page",
    "require_web_session",
]
