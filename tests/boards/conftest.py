"""Fixtures for the serial link: the real firmware loop on a pseudo-terminal, driven by dial sensors a
test turns."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from linkkit import ClockHAL, Dials, setup_doc

from firmware.sim.board import SimulatedBoard


@pytest.fixture
def dials() -> Dials:
    return Dials()


@pytest.fixture
def make_board(dials: Dials) -> Iterator[Any]:
    boards: list[SimulatedBoard] = []

    def make(**kwargs: Any) -> SimulatedBoard:
        setup = kwargs.pop("setup", None) or setup_doc()
        board = SimulatedBoard(setup, hal=ClockHAL(kwargs.pop("start_ms", 0)), make_sensor=dials, **kwargs)
        boards.append(board.start())
        return board

    yield make
    for board in boards:
        board.close()
