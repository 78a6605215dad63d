"""Who may use the commissioning page: one password from a file, then an expiring session cookie.

The cookie is HttpOnly and SameSite=Strict (Secure under TLS); every state-changing request also
carries the session's CSRF token in a header, so another site's page cannot act for a logged-in
technician. Failed logins are rate-limited per address so a password cannot be guessed quickly.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

COOKIE = "edge_session"
CSRF_HEADER = "X-CSRF-Token"
MAX_SESSIONS = 16  # a few technicians' browsers; the oldest login goes first
FAILURES_PER_MINUTE = 5
CHANGES_PER_S = 2.0  # a technician's clicks; a script looping on the lamp is slowed to this
CHANGES_BURST = 10


class PasswordFileError(ValueError):
    """The password file cannot be used; the message says how to fix it."""


def read_password(path: Path) -> str:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PasswordFileError(f"web.password_file {path} cannot be read: {exc.strerror}") from None
    password = text.strip()
    if len(password) < 8:
        raise PasswordFileError(
            f"web.password_file {path} holds a password shorter than 8 characters; write a longer one"
        )
    return password


@dataclass
class Session:
    token: str
    csrf: str
    expires: float
    _tokens: float = CHANGES_BURST
    _stamp: float = field(default_factory=time.monotonic)

    def may_change(self) -> bool:
        """A token bucket over the session's state-changing requests."""
        now = time.monotonic()
        self._tokens = min(CHANGES_BURST, self._tokens + (now - self._stamp) * CHANGES_PER_S)
        self._stamp = now
        if self._tokens < 1:
            return False
        self._tokens -= 1
        return True


@dataclass
class Sessions:
    password: str
    lifetime_s: float
    _sessions: dict[str, Session] = field(default_factory=dict)
    _failures: dict[str, deque[float]] = field(default_factory=dict)

    def check_password(self, given: str) -> bool:
        # Digests first: compare_digest is constant time only for inputs of equal length.
        want = hashlib.sha256(self.password.encode()).digest()
        got = hashlib.sha256(given.encode("utf-8", "replace")).digest()
        return hmac.compare_digest(want, got)

    def may_try(self, peer: str, now: float | None = None) -> bool:
        """False while ``peer`` has failed FAILURES_PER_MINUTE times within the last minute."""
        now = time.monotonic() if now is None else now
        failures = self._failures.get(peer)
        if failures is None:
            return True
        while failures and now - failures[0] > 60:
            failures.popleft()
        return len(failures) < FAILURES_PER_MINUTE

    def failed(self, peer: str) -> None:
        if len(self._failures) > 1024:  # many addresses: forget the quiet ones, keep the bound
            self._failures = {p: f for p, f in self._failures.items() if f}
        self._failures.setdefault(peer, deque(maxlen=FAILURES_PER_MINUTE)).append(time.monotonic())

    def open(self) -> Session:
        now = time.monotonic()
        self._sessions = {t: s for t, s in self._sessions.items() if s.expires > now}
        while len(self._sessions) >= MAX_SESSIONS:
            oldest = min(self._sessions.values(), key=lambda s: s.expires)
            del self._sessions[oldest.token]
        session = Session(secrets.token_urlsafe(32), secrets.token_urlsafe(24), now + self.lifetime_s)
        self._sessions[session.token] = session
        return session

    def get(self, token: str | None) -> Session | None:
        if not token:
            return None
        session = self._sessions.get(token)
        if session is None:
            return None
        if session.expires <= time.monotonic():
            del self._sessions[token]
            return None
        return session

    def close(self, token: str | None) -> None:
        if token:
            self._sessions.pop(token, None)
