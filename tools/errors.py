"""User-facing errors of edgectl: one clear sentence and a documented exit code, never a traceback."""

from __future__ import annotations

# Exit codes, documented in docs/edgectl.md. Scripts may rely on them.
OK = 0
FAILED = 1  # a check failed (config check, doctor, verify)
USAGE = 2  # wrong arguments or invalid input file
NO_PORT = 3  # serial port missing or not accessible
NO_BOARD = 4  # the board does not answer or answers wrongly
BROKER = 5  # the MQTT broker refused or cannot be reached
MODEL = 6  # a model package is missing, corrupt or misbehaves
FLASH = 7  # flashing failed; the board keeps its previous firmware
SIGNATURE = 8  # a signature is missing, invalid or from an untrusted key; or files differ from it
DOWNGRADE = 9  # the bundle is older than the installed firmware (pass --allow-downgrade to force)
BYTECODE = 10  # the firmware cannot be compiled for the board's MicroPython bytecode (mpy) version
INTERNAL = 70  # a bug in edgectl: rerun with --verbose and report the traceback
INTERRUPTED = 130  # stopped with Ctrl-C


class EdgectlError(Exception):
    """An error a user can act on: ``message`` says what failed and how to fix it."""

    def __init__(self, message: str, exit_code: int = FAILED) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code
