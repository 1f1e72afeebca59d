"""Which account a request or a WebSocket connection is bound to, by path or `X-Self-ID`.

A server entry serving several accounts tells them apart as OneBot clients already expect: a
path prefix (`/<self_id>/send_msg`, `/<self_id>/`, `/<self_id>/api`, `/<self_id>/event`) or an
`X-Self-ID` header. A bound request or connection calls that account only (a call naming another
gets 1403) and a bound connection receives that account's events only. Without either, calls
are routed per call by the entry's front (`params.self_id`).
"""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from gateway.accounts import Account, qq_number
from gateway.front import Caller, EntryFront
from gateway.protocol.envelope import ActionError, BadRequest


@dataclass(frozen=True, slots=True)
class Binding:
    """What a request or connection calls through, and the account it is bound to (None:
    unbound, every account of the entry)."""

    caller: Caller
    account: Account | None


def split_account_path(path: str) -> tuple[str | None, str]:
    """A leading path segment of ASCII digits and the rest: `/10001/api` → (`10001`, `/api`),
    `/10001` → (`10001`, `/`), `/api` → (None, `/api`). Actions and roles are never all
    digits, so the prefix is unambiguous."""
    if len(path) < 2 or not "0" <= path[1] <= "9":
        return None, path
    head, slash, rest = path[1:].partition("/")
    if not (head.isascii() and head.isdigit()):
        return None, path
    return head, "/" + rest if slash else "/"


def bind(front: EntryFront, request: web.BaseRequest, path_id: str | None) -> Binding | ActionError:
    """The binding a request asks for by its path prefix (`path_id`) and `X-Self-ID` header:
    1400 when either is not a QQ number or they disagree, 1403 when the entry does not serve
    the account. Binding does not need the account online (its calls then fail with 1200)."""
    named: int | None = None
    for source, value in (("the path", path_id), ("X-Self-ID", request.headers.get("X-Self-ID"))):
        if value is None:
            continue
        self_id = qq_number(value.strip())
        if self_id is None:
            return BadRequest(f"{source} names account {value!r}, which is not a QQ number")
        if named is not None and named != self_id:
            return BadRequest(
                f"the path names account {named} but X-Self-ID names {self_id}; name one"
            )
        named = self_id
    if named is None:
        return Binding(front, None)
    target = front.route({"self_id": named}, None, online=False)
    if isinstance(target, ActionError):
        return target
    return Binding(front.bind(target), target)
