"""Sandbox actions: the account's web credentials and profile, device model, URL checks, guilds.

Credentials are generated once per account and kept in `kv`, so they are stable across calls and
restarts: one `skey` (and a seed from which each domain's `p_skey` is derived) and the CSRF
token QQ computes from the skey. `get_csrf_token`, `bkn` of `get_cookies` and `token` of
`get_credentials` are therefore always the same number.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import sqlite3
import string
from typing import TYPE_CHECKING, Any

from gateway.actions.account import (
    CheckUrlSafely,
    Credentials,
    Domain,
    GetModelShow,
    SetModelShow,
    SetQQProfile,
)
from gateway.actions.catalog import NoParams
from gateway.backends.sandbox import nt

if TYPE_CHECKING:
    from gateway.backends.sandbox.context import HandlerTable, Sandbox

_SKEY = "credentials:skey"
_SEED = "credentials:p_skey_seed"
_MODEL_SHOW = "account:model_show"
_SEXES = {0: "unknown", 1: "male", 2: "female"}


# --- credentials --------------------------------------------------------------------------------


def csrf_token(skey: str) -> int:
    """QQ's `bkn` / `g_tk`: the DJB-style hash of the skey, as its web pages compute it."""
    value = 5381
    for char in skey:
        value += (value << 5) + ord(char)
    return value & 0x7FFFFFFF


def _kv(db: sqlite3.Connection, key: str, make: Any) -> str:
    """The stored value of `key`, generating and storing `make()` the first time."""
    row = db.execute("SELECT value FROM kv WHERE key = ?", (key,)).fetchone()
    if row is not None:
        return str(row["value"])
    value = str(make())
    db.execute("INSERT INTO kv (key, value) VALUES (?, ?)", (key, value))
    return value


def _credentials(db: sqlite3.Connection, self_id: int, domain: str) -> tuple[str, int]:
    """(cookie string for `domain`, CSRF token); without a domain, the account's own cookies
    (no domain-bound `p_skey`)."""
    alphabet = string.ascii_letters + string.digits
    skey = _kv(db, _SKEY, lambda: "@" + "".join(secrets.choice(alphabet) for _ in range(9)))
    if not domain.strip():
        return f"skey={skey}; uin=o{self_id}", csrf_token(skey)
    seed = _kv(db, _SEED, lambda: secrets.token_hex(32))
    digest = hmac.new(seed.encode(), domain.strip().lower().encode(), hashlib.sha256).digest()
    p_skey = base64.urlsafe_b64encode(digest).decode()[:44]
    cookies = f"p_skey={p_skey}; p_uin=o{self_id}; skey={skey}; uin=o{self_id}"
    return cookies, csrf_token(skey)


async def get_cookies(sandbox: Sandbox, p: Domain) -> dict[str, str]:
    cookies, token = await sandbox.store.run(lambda db: _credentials(db, sandbox.self_id, p.domain))
    return {"cookies": cookies, "bkn": str(token)}


async def get_csrf_token(sandbox: Sandbox, _: NoParams) -> dict[str, int]:
    _cookies, token = await sandbox.store.run(lambda db: _credentials(db, sandbox.self_id, ""))
    return {"token": token}


async def get_credentials(sandbox: Sandbox, p: Credentials) -> dict[str, Any]:
    """NapCat's `{cookies, token}`, plus `csrf_token` (the same token as a string), the name
    spec-extended-actions.txt documents."""
    cookies, token = await sandbox.store.run(lambda db: _credentials(db, sandbox.self_id, p.domain))
    return {"cookies": cookies, "token": token, "csrf_token": str(token)}


# --- profile and device -------------------------------------------------------------------------


async def set_qq_profile(sandbox: Sandbox, p: SetQQProfile) -> dict[str, Any]:
    """Stores the profile in `account` (and the bot's own `users` row, which group member
    listings read); fields left out are unchanged. Answers the kernel's general result, which
    NapCat passes through."""

    def write(db: sqlite3.Connection) -> None:
        sex = _SEXES[p.sex] if p.sex is not None else None
        db.execute(
            "UPDATE account SET nickname = ?, long_nick = COALESCE(?, long_nick), "
            "sex = COALESCE(?, sex)",
            (p.nickname, p.personal_note, sex),
        )
        db.execute(
            "UPDATE users SET nickname = ?, sex = COALESCE(?, sex) WHERE user_id = ?",
            (p.nickname, sex, sandbox.self_id),
        )

    await sandbox.store.run(write)
    sandbox.nickname = p.nickname
    return nt.general_ok()


async def get_model_show(sandbox: Sandbox, p: GetModelShow) -> list[dict[str, Any]]:
    """The name `_set_model_show` stored, else the model asked about, else NapCat's `napcat`."""

    def read(db: sqlite3.Connection) -> str:
        row = db.execute("SELECT value FROM kv WHERE key = ?", (_MODEL_SHOW,)).fetchone()
        return str(row["value"]) if row is not None else p.model or "napcat"

    show = await sandbox.store.run(read)
    return [{"variants": {"model_show": show, "need_pay": False}}]


async def set_model_show(sandbox: Sandbox, p: SetModelShow) -> None:
    show = p.model_show or p.model
    if show:
        await sandbox.store.run(
            lambda db: db.execute(
                "INSERT OR REPLACE INTO kv (key, value) VALUES (?, ?)", (_MODEL_SHOW, show)
            )
        )


# --- answers that need no state -------------------------------------------------------------


async def check_url_safely(_sandbox: Sandbox, _: CheckUrlSafely) -> dict[str, int]:
    """Level 1 (safe), as NapCat always answers: the sandbox never visits URLs."""
    return {"level": 1}


async def get_guild_list(_sandbox: Sandbox, _: NoParams) -> None:
    """QQ guilds are not simulated; NapCat's handler returns nothing, so `data` is null."""
    return None


async def get_guild_service_profile(_sandbox: Sandbox, _: NoParams) -> None:
    """No guild profile, as NapCat (null)."""
    return None


HANDLERS: HandlerTable = {
    "get_cookies": get_cookies,
    "get_csrf_token": get_csrf_token,
    "get_credentials": get_credentials,
    "set_qq_profile": set_qq_profile,
    "_get_model_show": get_model_show,
    "_set_model_show": set_model_show,
    "check_url_safely": check_url_safely,
    "get_guild_list": get_guild_list,
    "get_guild_service_profile": get_guild_service_profile,
}
