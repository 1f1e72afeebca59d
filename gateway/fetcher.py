"""Fetching files named by URL in an action (an image segment, an upload, `download_file`).

One `Fetcher` per owner, one aiohttp session in it, on the event loop: a slow or huge URL only
delays the call that named it, never the database thread or other calls. Every fetch is bounded:

- hosts: loopback only (127.0.0.0/8, ::1, `localhost`). A client's URL never makes the gateway
  reach another machine; redirects are not followed (one could lead anywhere); no proxy from the
  environment, no cookies kept between fetches.
- time: `timeout` seconds for the whole exchange, connect to last byte.
- size: `max_size` bytes. A declared Content-Length over the cap fails before the body is read;
  a body without one (chunked, or delimited by the connection's close) is read until it passes
  the cap, then the connection is dropped.

Failures are ActionFailed (1200) whose message names the URL and what went wrong; a URL that is
not http(s) or cannot be parsed is BadRequest (1400).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

import aiohttp

from gateway.protocol.envelope import ActionFailed, BadRequest

CHUNK = 64 * 1024
SHOWN_URL_LENGTH = 80
SHOWN_REASON_LENGTH = 120


@dataclass(frozen=True, slots=True)
class Fetched:
    """The body of a successful (200) answer."""

    url: str
    content: bytes
    content_type: str
    """The media type the server declared (`application/octet-stream` when it declared none)."""

    @property
    def name(self) -> str:
        """The last segment of the URL's path, percent-decoded ("" for a bare host)."""
        return unquote(urlsplit(self.url).path.rsplit("/", 1)[-1])


class Fetcher:
    """GETs loopback URLs with one shared session (opened on first use, closed by `close`)."""

    def __init__(self, *, timeout: float, max_size: int) -> None:
        self.timeout = timeout
        """Seconds one fetch may take in all."""
        self.max_size = max_size
        """Largest body accepted, in bytes."""
        self._session: aiohttp.ClientSession | None = None

    async def fetch(self, url: str, headers: Mapping[str, str] | None = None) -> Fetched:
        """GET `url` and return its body; ActionFailed or BadRequest as the module says."""
        shown = short(url)
        check_loopback(url)
        try:
            async with self._open().get(
                url, headers=dict(headers or {}), allow_redirects=False
            ) as response:
                if 300 <= response.status < 400:
                    target = short(response.headers.get("Location", ""))
                    raise ActionFailed(
                        f"fetching {shown!r}: HTTP {response.status} redirect to {target!r}, "
                        "which is not followed"
                    )
                if response.status != 200:
                    raise ActionFailed(f"fetching {shown!r}: HTTP {response.status}")
                content = await self._read(response, shown)
                return Fetched(url, content, response.content_type)
        except ActionFailed:
            raise
        except TimeoutError:
            raise ActionFailed(
                f"fetching {shown!r}: no complete answer within {self.timeout:g} s"
            ) from None
        except aiohttp.InvalidURL:
            raise BadRequest(f"{shown!r} is not a valid URL") from None
        except (aiohttp.ClientError, OSError) as error:
            # aiohttp's parser errors quote the offending bytes: keep the message short.
            reason = (str(error) or type(error).__name__).splitlines()[0][:SHOWN_REASON_LENGTH]
            raise ActionFailed(f"fetching {shown!r} failed: {reason}") from None

    async def _read(self, response: aiohttp.ClientResponse, shown: str) -> bytes:
        declared = response.content_length
        if declared is not None and declared > self.max_size:
            response.close()
            raise ActionFailed(
                f"fetching {shown!r}: the file is {declared} bytes, over the limit of "
                f"{self.max_size} bytes"
            )
        # Counted as it arrives: a body without Content-Length has no size until it ends.
        content = bytearray()
        async for chunk in response.content.iter_chunked(CHUNK):
            content += chunk
            if len(content) > self.max_size:
                response.close()  # drop the connection rather than drain the rest
                raise ActionFailed(
                    f"fetching {shown!r}: the file is larger than the limit of "
                    f"{self.max_size} bytes; stopped reading"
                )
        return bytes(content)

    def _open(self) -> aiohttp.ClientSession:
        # Opened lazily so a backend that stops and starts again (set_restart) fetches on.
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.timeout),
                cookie_jar=aiohttp.DummyCookieJar(),
                trust_env=False,
            )
        return self._session

    async def close(self) -> None:
        """Close the session; fetches in flight fail with ActionFailed."""
        if self._session is not None:
            await self._session.close()
            self._session = None


def check_loopback(url: str) -> None:
    """BadRequest unless `url` is http(s); ActionFailed unless its host is this machine."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
    except ValueError:
        raise BadRequest(f"{short(url)!r} is not a valid URL") from None
    if parts.scheme not in ("http", "https"):
        raise BadRequest(f"{short(url)!r} is not an http(s) URL")
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise ActionFailed(
            "only loopback URLs are fetched: the gateway never reaches the internet on a "
            f"client's behalf; refusing {short(url)!r}"
        )


def short(text: str) -> str:
    """`text` cut to SHOWN_URL_LENGTH characters for an error message."""
    return text if len(text) <= SHOWN_URL_LENGTH else text[: SHOWN_URL_LENGTH - 3] + "..."
