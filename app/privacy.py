"""Ids in logs: never the id itself, at most a short keyed hash of it."""

from __future__ import annotations

import hashlib
import hmac
import secrets

# A key per process: a hash lets one follow one user through this process's log lines, and
# without the key nobody can test guessed ids (e-mail addresses, say) against it.
_KEY = secrets.token_bytes(32)


def pseudonym(value: str) -> str:
    """`u:` and 12 hex digits of HMAC-SHA256(key, value)."""
    return "u:" + hmac.new(_KEY, value.encode(), hashlib.sha256).hexdigest()[:12]
