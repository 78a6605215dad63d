"""Logging setup: plain text for a terminal, JSON lines for a log collector."""

from __future__ import annotations

import json
import logging
import sys

from .redact import redact_text


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return redact_text(json.dumps(out, ensure_ascii=False))


class _TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        # URL passwords out of every line, whoever logs it (our code, OpenCV, aiomqtt, tracebacks)
        return redact_text(super().format(record))


def setup_logging(level: str = "INFO", fmt: str = "text") -> None:
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(_JsonFormatter())
    else:
        handler.setFormatter(_TextFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


_CONTROL = (
    {c: f"\\x{c:02x}" for c in (*range(0x20), 0x7F)}
    | {0x0A: "\\n", 0x0D: "\\r", 0x09: "\\t"}
    | {0x85: "\\x85", 0x2028: "\\u2028", 0x2029: "\\u2029"}
)


def untrusted(value: object, limit: int = 200) -> str:
    """Text from outside (a board, an MQTT client) made safe to log: control characters and line
    breaks escaped, so a message cannot forge a log line, and cut to ``limit`` characters."""
    text = value if isinstance(value, str) else str(value)
    if len(text) > limit:
        text = text[:limit] + "…"
    return text.translate(_CONTROL)
