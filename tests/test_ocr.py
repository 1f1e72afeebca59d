"""`ocr_image` reads back text from an image the test renders itself, over the HTTP adapter.

Needs the `ocr` extra (RapidOCR, whose wheel carries its models); `make test` installs it.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import io
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from tests.napcat_schema import validate_data
from tests.sandbox_client import SandboxClient

pytest.importorskip(
    "rapidocr_onnxruntime",
    reason="the ocr extra is not installed (pip install '.[ocr]'); make test installs it",
)
Image = pytest.importorskip("PIL.Image", reason="Pillow (a dev dependency) renders the image")
ImageDraw = pytest.importorskip("PIL.ImageDraw")
ImageFont = pytest.importorskip("PIL.ImageFont")


def render(text: str) -> bytes:
    """Big black text on white, as PNG."""
    image = Image.new("RGB", (900, 220), "white")
    ImageDraw.Draw(image).text((40, 50), text, fill="black", font=ImageFont.load_default(size=100))
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def words(data: dict[str, Any]) -> str:
    return " ".join(t["text"] for t in data["texts"])


@contextlib.asynccontextmanager
async def serving(body: bytes) -> AsyncIterator[str]:
    """A loopback HTTP server answering every GET with `body`; yields its URL."""

    async def serve(_request: web.Request) -> web.Response:
        return web.Response(body=body, content_type="image/png")

    app = web.Application()
    app.router.add_get("/{tail:.*}", serve)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}/hello.png"
    finally:
        await runner.cleanup()


@pytest.fixture(scope="module")
def hello() -> bytes:
    return render("HELLO 2026")


async def test_ocr_reads_back_rendered_text_from_base64(
    sandbox: SandboxClient, hello: bytes
) -> None:
    data = await sandbox.ok("ocr_image", image="base64://" + base64.b64encode(hello).decode())
    assert "HELLO 2026" in words(data), data
    assert data["language"] == "en"
    validate_data("ocr_image", data)
    first = data["texts"][0]
    assert 0 < first["confidence"] <= 1
    assert len(first["coordinates"]) == 4 and all(len(p) == 2 for p in first["coordinates"])


async def test_dot_ocr_image_reads_a_path_and_plain_base64(
    sandbox: SandboxClient, hello: bytes, tmp_path: Path
) -> None:
    path = tmp_path / "hello.png"
    await asyncio.to_thread(path.write_bytes, hello)
    from_path = await sandbox.ok(".ocr_image", image=str(path))
    assert "2026" in words(from_path)
    plain = await sandbox.ok(".ocr_image", image=base64.b64encode(hello).decode())
    assert "HELLO" in words(plain)


async def test_ocr_fetches_a_loopback_url(sandbox: SandboxClient, hello: bytes) -> None:
    async with serving(hello) as url:
        data = await sandbox.ok("ocr_image", image=url)
    assert "HELLO" in words(data) and "2026" in words(data)


async def test_ocr_errors(sandbox: SandboxClient) -> None:
    missing = await sandbox.call("ocr_image")
    assert missing["retcode"] == 1400 and "image" in missing["message"]
    remote = await sandbox.call("ocr_image", image="https://example.com/a.png")
    assert remote["retcode"] == 1200 and "loopback" in remote["message"]
    garbage = await sandbox.call(
        "ocr_image", image="base64://" + base64.b64encode(b"not an image at all").decode()
    )
    assert garbage["retcode"] == 1200 and "not an image" in garbage["message"]
    blank = io.BytesIO()
    Image.new("RGB", (200, 100), "white").save(blank, format="PNG")
    empty = await sandbox.ok(
        "ocr_image", image="base64://" + base64.b64encode(blank.getvalue()).decode()
    )
    assert empty == {"texts": [], "language": ""}
