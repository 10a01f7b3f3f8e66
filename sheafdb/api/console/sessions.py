"""Who is using the console: a login form when ``--auth`` is on, then a session cookie.

The same credentials and privileges as every other client (engine/access.py): a login checks
the user and password with the access control, and each page and action checks the privilege
of the gRPC method it stands for. Sessions live in memory (a restart logs everyone out) and
expire; the cookie is HttpOnly and SameSite=Strict, so another site cannot submit the
console's forms with it. With authentication off nobody logs in and every page is open.

Threads: request threads log in and look sessions up; ``_lock`` guards ``_sessions``.
"""

from __future__ import annotations

import secrets
import threading
import time

from sheafdb.engine.access import AccessControl
from sheafdb.errors import PermissionDenied

COOKIE = "sheafdb_console"
SESSION_SECONDS = 12 * 3600
# Sessions kept at most: a flood of logins cannot grow memory without bound.
MAX_SESSIONS = 10_000


class NotLoggedIn(Exception):
    """The page needs a login (authentication is on and there is no valid session)."""


class Sessions:
    def __init__(self, access: AccessControl | None) -> None:
        self._access = access
        self._lock = threading.Lock()
        self._sessions: dict[str, tuple[str, float]] = {}

    @property
    def required(self) -> bool:
        return self._access is not None and self._access.enabled

    def login(self, user: str, password: str) -> str:
        """A new session token; CredentialInvalid when the user or password is wrong."""
        assert self._access is not None
        self._access.authenticate(user, password)
        token = secrets.token_urlsafe(32)
        now = time.monotonic()
        with self._lock:
            if len(self._sessions) >= MAX_SESSIONS:
                self._sessions = {t: s for t, s in self._sessions.items() if s[1] > now}
                while len(self._sessions) >= MAX_SESSIONS:
                    self._sessions.pop(next(iter(self._sessions)))
            self._sessions[token] = (user, now + SESSION_SECONDS)
        return token

    def logout(self, token: str | None) -> None:
        if token:
            with self._lock:
                self._sessions.pop(token, None)

    def user(self, token: str | None) -> str | None:
        """The session's user; None when authentication is off. NotLoggedIn otherwise."""
        if not self.required:
            return None
        with self._lock:
            session = self._sessions.get(token or "")
        if session is None or session[1] < time.monotonic():
            raise NotLoggedIn()
        return session[0]

    def allowed(self, user: str | None, operation: str, db: str, collection: str = "*") -> bool:
        try:
            self.check(user, operation, db, collection)
        except PermissionDenied:
            return False
        return True

    def check(self, user: str | None, operation: str, db: str, collection: str = "*") -> None:
        """PermissionDenied (Milvus's message) unless ``user`` may run ``operation``."""
        if user is not None and self._access is not None:
            self._access.authorize(user, operation, db, collection)
