"""Puts the integrator's drivers (firmware/lib) on the path, as the loader does on a board, and makes
`streetfw` importable under CPython (the board's package name for firmware.streetfw)."""

from __future__ import annotations

import sys
from pathlib import Path

import firmware  # noqa: F401  (installs the streetfw alias)

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "firmware" / "lib"))
sys.path.insert(0, str(HERE))
