"""Time, always timezone-aware UTC, and its one text form in hashed data."""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    return datetime.now(UTC)


def isoformat(moment: datetime) -> str:
    """``2026-11-24T12:00:00.123456Z``: fixed width, sorts as text."""
    if moment.tzinfo is None:
        raise ValueError("naive datetime; use timezone-aware UTC")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
