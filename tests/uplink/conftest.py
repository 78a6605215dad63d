"""Fixtures for the uplink tests."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def outbox_path(tmp_path: Path) -> Path:
    return tmp_path / "outbox.sqlite"
