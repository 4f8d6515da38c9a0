"""Fixtures of the dashboard's browser tests (one Chromium for the whole session)."""

from tests.dashboard.town import browser, context, town

__all__ = ["browser", "context", "town"]
