"""Whether the system clock is synchronized (NTP, PTP or GPS), as the kernel reports it."""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

_TIME_ERROR = 5  # adjtimex() state: clock not synchronized


class _Timex(ctypes.Structure):
    # struct timex from <sys/timex.h>; only `modes` must be zero, the rest is read back.
    _fields_ = [("modes", ctypes.c_uint), ("_rest", ctypes.c_byte * 204)]


def clock_synchronized() -> bool:
    """True when the kernel says the clock is disciplined; False when unknown or unsynchronized."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        tx = _Timex()
        state = libc.adjtimex(ctypes.byref(tx))
    except (OSError, AttributeError):
        return False
    return state not in (-1, _TIME_ERROR)
