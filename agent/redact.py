"""Secrets kept out of everything the agent and edgectl show: logs, health, replies, errors, checks.

A password can sit in a URL's userinfo (``rtsp://admin:secret@10.0.0.5/stream``, a broker URL), and
config keys name the files and variables that hold the others. Both are replaced before text leaves
the process; the config itself is never changed.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

# scheme://user:password@  (the password ends at the last @ before the host)
_USERINFO = re.compile(r"(?P<head>\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s:/@]*):(?P<pw>[^\s@/]*)@")
# Keys whose values are never sent out, even though the file holds only where secrets are.
SECRET_KEYS = frozenset(
    {"password", "password_file", "password_env", "key_file", "source_password_file", "source_password_env"}
)
MASK = "***"


def redact_text(text: str) -> str:
    """``text`` with the password of every URL in it replaced by ``***``."""
    if "://" not in text:
        return text
    return _USERINFO.sub(lambda m: f"{m['head']}:{MASK}@", text)


def redact_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    return redact_text(url)


def redacted(value: Any) -> Any:
    """A config dump (dicts, lists, strings) with secret keys masked and URL passwords removed."""
    if isinstance(value, dict):
        return {k: ("(set)" if k in SECRET_KEYS and v is not None else redacted(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [redacted(v) for v in value]
    if isinstance(value, str):
        return redact_text(value)
    return value
