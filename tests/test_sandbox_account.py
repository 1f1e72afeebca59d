"""Sandbox account actions through the real HTTP adapter: profile, credentials, model, guilds."""

from __future__ import annotations

from pathlib import Path

from tests.sandbox_client import SandboxClient, sandbox_client, sandbox_document

BOT, ALICE = 10001, 20001
LAB = 30001


def cookie_jar(cookies: str) -> dict[str, str]:
    return dict(part.split("=", 1) for part in cookies.split("; "))


async def test_credentials_agree_with_each_other(sandbox: SandboxClient) -> None:
    token = (await sandbox.ok("get_csrf_token"))["token"]
    assert isinstance(token, int) and 0 < token < 2**31
    cookies = await sandbox.ok("get_cookies", domain="qun.qq.com")
    assert cookies["bkn"] == str(token)
    credentials = await sandbox.ok("get_credentials", domain="qun.qq.com")
    assert (credentials["token"], credentials["csrf_token"]) == (token, str(token))
    assert credentials["cookies"] == cookies["cookies"]
    jar = cookie_jar(cookies["cookies"])
    assert (jar["uin"], jar["p_uin"]) == (f"o{BOT}", f"o{BOT}")
    assert jar["skey"].startswith("@") and jar["p_skey"]


async def test_cookies_are_stable_and_p_skey_is_per_domain(sandbox: SandboxClient) -> None:
    first = await sandbox.ok("get_cookies", domain="qun.qq.com")
    again = await sandbox.ok("get_cookies", domain="qun.qq.com")
    other = await sandbox.ok("get_cookies", domain="qzone.qq.com")
    assert first == again
    a, b = cookie_jar(first["cookies"]), cookie_jar(other["cookies"])
    assert a["skey"] == b["skey"] and a["p_skey"] != b["p_skey"]
    assert first["bkn"] == other["bkn"]


async def test_cookies_need_a_domain(sandbox: SandboxClient) -> None:
    body = await sandbox.call("get_cookies")
    assert body["retcode"] == 1400 and "domain" in body["message"]


async def test_credentials_without_a_domain_are_the_accounts_own(sandbox: SandboxClient) -> None:
    # The extended-actions spec lists no parameter for get_credentials.
    plain = await sandbox.ok("get_credentials")
    scoped = await sandbox.ok("get_credentials", domain="qun.qq.com")
    assert "p_skey" not in plain["cookies"] and "skey=" in plain["cookies"]
    assert plain["token"] == scoped["token"] and plain["csrf_token"] == str(plain["token"])


async def test_credentials_survive_a_restart(tmp_path: Path) -> None:
    document = sandbox_document(str(tmp_path / "sandbox.db"))
    async with sandbox_client(document) as sandbox:
        before = await sandbox.ok("get_credentials", domain="qun.qq.com")
    async with sandbox_client(document) as sandbox:
        after = await sandbox.ok("get_credentials", domain="qun.qq.com")
        token = await sandbox.ok("get_csrf_token")
    assert before == after and token["token"] == before["token"]


async def test_set_qq_profile_renames_the_bot(sandbox: SandboxClient) -> None:
    answer = await sandbox.ok("set_qq_profile", nickname="Renamed", personal_note="hi", sex=1)
    assert answer == {"result": 0, "errMsg": ""}
    assert await sandbox.ok("get_login_info") == {"user_id": BOT, "nickname": "Renamed"}
    assert (await sandbox.ok("get_stranger_info", user_id=BOT))["nickname"] == "Renamed"
    await sandbox.ok("send_group_msg", group_id=LAB, message="after")
    sent = await sandbox.event(lambda e: e.get("post_type") == "message_sent")
    assert sent["sender"]["nickname"] == "Renamed"


async def test_set_qq_profile_persists(tmp_path: Path) -> None:
    document = sandbox_document(str(tmp_path / "sandbox.db"))
    async with sandbox_client(document) as sandbox:
        await sandbox.ok("set_qq_profile", nickname="Kept")
    async with sandbox_client(document) as sandbox:
        assert (await sandbox.ok("get_login_info"))["nickname"] == "Kept"


async def test_set_qq_profile_rejects_bad_input_and_changes_nothing(
    sandbox: SandboxClient,
) -> None:
    for params, field in (({"nickname": ""}, "nickname"), ({"nickname": "x", "sex": 5}, "sex")):
        body = await sandbox.call("set_qq_profile", **params)
        assert body["retcode"] == 1400 and field in body["message"]
    assert (await sandbox.ok("get_login_info"))["nickname"] == "Sandbox Bot"


async def test_model_show_round_trip(sandbox: SandboxClient) -> None:
    shown = await sandbox.ok("_get_model_show", model="iPhone")
    assert shown == [{"variants": {"model_show": "iPhone", "need_pay": False}}]
    assert await sandbox.ok("_set_model_show", model="x", model_show="Sandbox Phone") is None
    shown = await sandbox.ok("_get_model_show", model="iPhone")
    assert shown[0]["variants"]["model_show"] == "Sandbox Phone"


async def test_check_url_safely_and_guilds(sandbox: SandboxClient) -> None:
    assert await sandbox.ok("check_url_safely", url="https://example.com") == {"level": 1}
    assert (await sandbox.call("check_url_safely"))["retcode"] == 1400
    assert await sandbox.ok("get_guild_list") is None
    assert await sandbox.ok("get_guild_service_profile") is None
