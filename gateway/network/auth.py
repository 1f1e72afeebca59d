"""Access-token checks shared by every server adapter.

The token comes from `?access_token=` when that is non-empty, else from `Authorization:
Bearer T` (or `Token T`, go-cqhttp's legacy scheme; a bare value also works, as in NapCat).
Comparison is constant-time. Callers check before any other work, and before a WebSocket upgrade.
"""

from __future__ import annotations

import hmac

from aiohttp import web


def request_token(request: web.BaseRequest) -> str | None:
    """The token a request presents, or None when it presents none."""
    query_token = request.query.get("access_token")
    if query_token:
        return query_token
    header = request.headers.get("Authorization")
    if not header:
        return None
    scheme, _, value = header.strip().partition(" ")
    if value and scheme.lower() in ("bearer", "token"):
        return value.strip()
    return header.strip()


def token_matches(expected: str, presented: str | None) -> bool:
    """True when no token is configured, or the presented one equals it (constant-time)."""
    if not expected:
        return True
    if presented is None:
        return False
    # Header bytes that are not UTF-8 reach us as surrogate escapes; they are compared as the
    # bytes the client sent (and so never match) instead of failing to encode.
    return hmac.compare_digest(expected.encode(), presented.encode("utf-8", "surrogateescape"))
