"""Sandbox media through the real HTTP adapter: file URI forms, stored bytes, downloads, cache."""

from __future__ import annotations

import base64
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from aiohttp import web

from tests.sandbox_client import SandboxClient, sandbox_client, sandbox_document

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 16 + b"sandbox-png"
SILK = b"#!SILK_V3" + b"\x01\x02\x03"
LAB = 30001


def content(where: str) -> bytes:
    """The bytes of a local path or a file:// URL the sandbox returned."""
    return Path(urlsplit(where).path if where.startswith("file://") else where).read_bytes()


def b64(content: bytes) -> str:
    return "base64://" + base64.b64encode(content).decode()


@contextlib.asynccontextmanager
async def loopback_server(
    routes: dict[str, bytes], seen: list[dict[str, str]] | None = None
) -> AsyncIterator[str]:
    """A tiny aiohttp server on 127.0.0.1 serving fixed bodies; yields its base URL.

    The headers of every request it gets are appended to `seen`.
    """
    seen = [] if seen is None else seen

    async def serve(request: web.Request) -> web.StreamResponse:
        seen.append(dict(request.headers))
        body = routes.get(request.path)
        if body is None:
            return web.Response(status=404)
        if request.path == "/redirect":
            raise web.HTTPFound("http://example.com/")
        return web.Response(body=body, content_type="application/octet-stream")

    app = web.Application()
    app.router.add_get("/{tail:.*}", serve)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def upload(sandbox: SandboxClient, file: str, name: str = "f.bin") -> str:
    """Upload to the lab group and return the stored media id (the file segment's url name)."""
    data = await sandbox.ok("upload_group_file", group_id=LAB, file=file, name=name)
    url = await sandbox.ok("get_group_file_url", group_id=LAB, file_id=data["file_id"])
    return Path(urlsplit(url["url"]).path).name


async def test_get_image_returns_a_local_file_with_the_uploaded_bytes(
    sandbox: SandboxClient,
) -> None:
    media_id = await upload(sandbox, b64(PNG), "pic.png")
    assert media_id.endswith(".png")
    data = await sandbox.ok("get_image", file=media_id)
    assert content(data["file"]) == PNG
    assert data["url"] == Path(data["file"]).as_uri()
    assert (data["file_size"], data["file_name"]) == (str(len(PNG)), "pic.png")
    assert "base64" not in data


async def test_get_image_base64_only_when_asked(sandbox: SandboxClient) -> None:
    media_id = await upload(sandbox, b64(PNG))
    data = await sandbox.ok("get_image", file_id=media_id, base64=True)
    assert base64.b64decode(data["base64"]) == PNG


async def test_get_record_keeps_the_stored_bytes(sandbox: SandboxClient) -> None:
    media_id = await upload(sandbox, b64(SILK), "voice")
    assert media_id.endswith(".silk")
    data = await sandbox.ok("get_record", file=media_id, out_format="mp3")
    assert content(data["file"]) == SILK


async def test_get_record_rejects_an_unknown_format(sandbox: SandboxClient) -> None:
    body = await sandbox.call("get_record", file="x", out_format="exe")
    assert body["retcode"] == 1400 and "out_format" in body["message"]


async def test_get_file_accepts_a_group_file_id_and_its_name(sandbox: SandboxClient) -> None:
    data = await sandbox.ok("upload_group_file", group_id=LAB, file=b64(b"report"), name="r.txt")
    got = await sandbox.ok("get_file", file_id=data["file_id"])
    assert content(got["file"]) == b"report"
    assert got["file_name"] == "r.txt"


async def test_data_url_file_url_and_plain_path_are_accepted(
    sandbox: SandboxClient, tmp_path: Path
) -> None:
    local = tmp_path / "local.png"
    local.write_bytes(PNG + b"local")
    data_url = "data:image/png;base64," + base64.b64encode(PNG + b"data").decode()
    for source, expected in (
        (data_url, PNG + b"data"),
        (local.as_uri(), PNG + b"local"),
        (str(local), PNG + b"local"),
    ):
        media_id = await upload(sandbox, source)
        got = await sandbox.ok("get_image", file=media_id)
        assert content(got["file"]) == expected


async def test_a_media_id_can_be_given_back_as_a_file(sandbox: SandboxClient) -> None:
    media_id = await upload(sandbox, b64(PNG))
    assert await upload(sandbox, media_id, "again.png") == media_id


async def test_loopback_url_is_fetched(sandbox: SandboxClient) -> None:
    async with loopback_server({"/img.png": PNG}) as base:
        media_id = await upload(sandbox, f"{base}/img.png")
    got = await sandbox.ok("get_image", file=media_id)
    assert content(got["file"]) == PNG


@pytest.mark.parametrize(
    ("source", "retcode", "words"),
    [
        ("https://example.com/a.png", 1200, "only loopback URLs are fetched"),
        ("http://10.0.0.1/a.png", 1200, "never reaches the internet"),
        ("base64://not base64!!", 1400, "invalid base64"),
        ("/no/such/file.png", 1200, "does not exist"),
        ("relative/name.png", 1200, "is not a media id"),
        ("data:image/png;base64", 1400, "comma"),
    ],
)
async def test_bad_sources_fail_and_store_nothing(
    sandbox: SandboxClient, source: str, retcode: int, words: str
) -> None:
    body = await sandbox.call("upload_group_file", group_id=LAB, file=source, name="x")
    assert body["retcode"] == retcode and words in body["message"]
    listing = await sandbox.ok("get_group_root_files", group_id=LAB)
    assert listing["files"] == []


async def test_loopback_errors_and_redirects_fail(sandbox: SandboxClient) -> None:
    async with loopback_server({"/redirect": b""}) as base:
        missing = await sandbox.call("upload_group_file", group_id=LAB, file=f"{base}/x", name="x")
        moved = await sandbox.call(
            "upload_group_file", group_id=LAB, file=f"{base}/redirect", name="x"
        )
    assert missing["retcode"] == 1200 and "HTTP 404" in missing["message"]
    assert moved["retcode"] == 1200 and "HTTP 302" in moved["message"]


async def test_unknown_media_id_is_1200(sandbox: SandboxClient) -> None:
    body = await sandbox.call("get_image", file="0123.png")
    assert body["retcode"] == 1200 and "no stored file" in body["message"]
    body = await sandbox.call("get_image")
    assert body["retcode"] == 1400 and "file or file_id" in body["message"]


async def test_download_file_from_loopback_with_headers_and_name(sandbox: SandboxClient) -> None:
    seen: list[dict[str, str]] = []
    async with loopback_server({"/dl": b"downloaded"}, seen) as base:
        data = await sandbox.ok(
            "download_file", url=f"{base}/dl", name="saved.txt", headers=["X-Test: yes"]
        )
    assert seen[0]["X-Test"] == "yes"
    assert Path(data["file"]).name == "saved.txt"
    assert content(data["file"]) == b"downloaded"


async def test_download_file_sends_string_headers(sandbox: SandboxClient) -> None:
    seen: list[dict[str, str]] = []
    async with loopback_server({"/dl": b"x"}, seen) as base:
        await sandbox.ok("download_file", url=f"{base}/dl", headers="X-A: 1\r\nX-B: 2")
    assert (seen[0]["X-A"], seen[0]["X-B"]) == ("1", "2")


async def test_download_file_from_base64(sandbox: SandboxClient) -> None:
    data = await sandbox.ok("download_file", base64=base64.b64encode(PNG).decode())
    assert content(data["file"]) == PNG


async def test_download_file_refuses_the_internet(sandbox: SandboxClient) -> None:
    body = await sandbox.call("download_file", url="https://example.com/x")
    assert body["retcode"] == 1200 and "loopback" in body["message"]
    body = await sandbox.call("download_file")
    assert body["retcode"] == 1400 and "url or base64" in body["message"]


async def test_clean_cache_deletes_the_copies_but_not_the_media(sandbox: SandboxClient) -> None:
    media_id = await upload(sandbox, b64(PNG))
    path = (await sandbox.ok("get_image", file=media_id))["file"]
    assert content(path) == PNG
    assert await sandbox.ok("clean_cache") is None
    with pytest.raises(FileNotFoundError):
        content(path)
    again = await sandbox.ok("get_image", file=media_id)
    assert content(again["file"]) == PNG


async def test_cache_lives_next_to_a_database_file(tmp_path: Path) -> None:
    document = sandbox_document(str(tmp_path / "sandbox.db"))
    async with sandbox_client(document) as sandbox:
        media_id = await upload(sandbox, b64(PNG))
        data = await sandbox.ok("get_image", file=media_id)
    assert Path(data["file"]).parent == tmp_path / "sandbox-media"
    async with sandbox_client(document) as sandbox:
        (tmp_path / "sandbox-media" / media_id).unlink()
        again = await sandbox.ok("get_image", file=media_id)
    assert content(again["file"]) == PNG
