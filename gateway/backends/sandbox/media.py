"""Sandbox actions: stored media (images, records, files) and the local cache they are read from.

Every file the sandbox is given is stored in the `media` table, keyed by a media id derived from
its content (`<MD5>.<ext>`, as QQ names images), so it survives restarts. Readers get a real
local file: a copy written on demand into the cache directory (`<database dir>/sandbox-media/`, or
a temporary directory for `:memory:`), which `clean_cache` may empty at any time.

File URIs accepted wherever a file is given (napcat-network.md §11.1): `base64://…`,
`data:<mime>;base64,…`, `file://…` or an absolute path that exists, a media id this sandbox
issued, and `http(s)://` to a loopback host only: the sandbox never reaches the internet.
Malformed data is a 1400; a file that cannot be found or fetched is a 1200.
"""

from __future__ import annotations

import atexit
import base64
import binascii
import hashlib
import ipaddress
import mimetypes
import shutil
import sqlite3
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from http.client import HTTPMessage
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any
from urllib.parse import unquote, unquote_to_bytes, urlsplit

import aiohttp

from gateway.actions.catalog import NoParams
from gateway.actions.media import DownloadFile, GetMedia, GetRecord
from gateway.backends.sandbox.registry import handler
from gateway.protocol.envelope import ActionFailed, BadRequest

if TYPE_CHECKING:
    from gateway.backends.sandbox.backend import SandboxBackend

MAX_MEDIA_BYTES = 64 * 1024 * 1024
FETCH_TIMEOUT = 10.0
_CACHE_KEY = "media:cache_dir"

# Magic numbers of the formats bots send most, so a base64 image gets a proper extension.
_SIGNATURES = (
    (b"\x89PNG\r\n\x1a\n", ".png"),
    (b"\xff\xd8\xff", ".jpg"),
    (b"GIF8", ".gif"),
    (b"BM", ".bmp"),
    (b"#!SILK", ".silk"),
    (b"\x02#!SILK", ".silk"),
    (b"#!AMR", ".amr"),
    (b"ID3", ".mp3"),
    (b"OggS", ".ogg"),
    (b"fLaC", ".flac"),
)


@dataclass(frozen=True, slots=True)
class Blob:
    """File content and the name it came with ("" when it had none)."""

    content: bytes
    name: str = ""
    mime: str = ""


# --- the public API other sandbox modules use ---------------------------------------------------


def ingest(db: sqlite3.Connection, kind: str, data: str, name: str = "") -> dict[str, Any]:
    """Store the file `data` names (any accepted URI form) and describe it.

    Returns `{file, file_id, file_name, file_size, url, path}`: `file` and `file_id` are the media
    id (use it as a segment's `file`), `file_size` an int, `url` a file:// URL of `path`, a cached
    copy. A loopback `http(s)://` URL is fetched here, on the store's thread (bounded by
    FETCH_TIMEOUT and MAX_MEDIA_BYTES).
    """
    row = media_row(db, data)
    if row is None:
        row = store_blob(db, kind, read_source(data), name)
    return describe(db, row, name)


def store_blob(db: sqlite3.Connection, kind: str, blob: Blob, name: str = "") -> sqlite3.Row:
    """Insert content (deduplicated by media id) and return its media row."""
    if len(blob.content) > MAX_MEDIA_BYTES:
        raise ActionFailed(f"file is larger than the sandbox's limit of {MAX_MEDIA_BYTES} bytes")
    media_id = hashlib.md5(blob.content).hexdigest().upper() + _extension(blob)  # noqa: S324
    db.execute(
        "INSERT OR IGNORE INTO media (media_id, kind, file_name, size, content, time) "
        "VALUES (?,?,?,?,?,?)",
        (
            media_id,
            kind,
            name or blob.name or media_id,
            len(blob.content),
            blob.content,
            int(time.time()),
        ),
    )
    row = media_row(db, media_id)
    assert row is not None
    return row


def media_row(db: sqlite3.Connection, media_id: str) -> sqlite3.Row | None:
    """The media row with this id, or None."""
    row: sqlite3.Row | None = db.execute(
        "SELECT * FROM media WHERE media_id = ?", (media_id,)
    ).fetchone()
    return row


def describe(db: sqlite3.Connection, row: sqlite3.Row, file_name: str = "") -> dict[str, Any]:
    """`{file, file_id, file_name, file_size, url, path}` of a media row, its cache copy written."""
    path = materialize(db, row)
    return {
        "file": row["media_id"],
        "file_id": row["media_id"],
        "file_name": file_name or row["file_name"],
        "file_size": row["size"],
        "url": path.as_uri(),
        "path": str(path),
    }


def materialize(db: sqlite3.Connection, row: sqlite3.Row, path: Path | None = None) -> Path:
    """A cached copy of a media row: at its default place, named by the media id (so written
    only when missing), or at `path` (always written: another content may have had that name)."""
    target = path or cache_dir(db) / row["media_id"]
    if path is not None or not target.is_file() or target.stat().st_size != row["size"]:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(row["content"])
    return target


def cache_dir(db: sqlite3.Connection) -> Path:
    """`<database dir>/sandbox-media`, or a temporary directory kept per in-memory database."""
    database = db.execute("PRAGMA database_list").fetchone()["file"]
    if database:
        return Path(database).resolve().parent / "sandbox-media"
    row = db.execute("SELECT value FROM kv WHERE key = ?", (_CACHE_KEY,)).fetchone()
    if row is not None:
        return Path(row["value"])
    directory = tempfile.mkdtemp(prefix="onebot-sandbox-media-")
    # An in-memory database dies with the process; so does its cache.
    atexit.register(shutil.rmtree, directory, True)
    db.execute("INSERT INTO kv (key, value) VALUES (?, ?)", (_CACHE_KEY, directory))
    return Path(directory)


# --- reading sources ----------------------------------------------------------------------------


def read_source(data: str) -> Blob:
    """The content a file URI names; BadRequest when malformed, ActionFailed when unreachable."""
    if data.startswith("base64://"):
        return Blob(decode_base64(data.removeprefix("base64://")))
    if data.startswith("data:"):
        return _read_data_url(data)
    if data.startswith("file://"):
        parts = urlsplit(data)
        if parts.netloc not in ("", "localhost"):
            raise ActionFailed(f"file URL {data!r} names another host")
        return _read_local(Path(unquote(parts.path)))
    if data.startswith(("http://", "https://")):
        return _fetch_sync(data)
    if Path(data).is_absolute():
        return _read_local(Path(data))
    raise ActionFailed(
        f"file {_short(data)!r} is not a media id of this sandbox, an absolute path, "
        "base64:// data, a data: URL or a loopback http(s) URL"
    )


def decode_base64(text: str) -> bytes:
    """Strict base64 (whitespace allowed); BadRequest when it is not."""
    try:
        content = base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError):
        raise BadRequest("file: invalid base64 data") from None
    if not content:
        raise BadRequest("file: the base64 data is empty")
    return content


def _read_data_url(data: str) -> Blob:
    header, comma, payload = data.partition(",")
    if not comma:
        raise BadRequest("file: a data: URL needs a comma before its payload")
    mime = header.removeprefix("data:").split(";")[0]
    if header.endswith(";base64"):
        return Blob(decode_base64(payload), mime=mime)
    return Blob(unquote_to_bytes(payload), mime=mime)


def _read_local(path: Path) -> Blob:
    if not path.is_file():
        raise ActionFailed(f"local file {str(path)!r} does not exist")
    if path.stat().st_size > MAX_MEDIA_BYTES:
        raise ActionFailed(f"file is larger than the sandbox's limit of {MAX_MEDIA_BYTES} bytes")
    try:
        return Blob(path.read_bytes(), path.name)
    except OSError as error:
        raise ActionFailed(f"cannot read {str(path)!r}: {error.strerror}") from None


def check_loopback(url: str) -> None:
    """ActionFailed unless `url` points at this machine (127.0.0.0/8, ::1 or localhost)."""
    host = urlsplit(url).hostname or ""
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise ActionFailed(
            f"the sandbox only fetches loopback URLs and never reaches the internet; "
            f"refusing {_short(url)!r}"
        )


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    # A redirect could lead off the loopback interface.
    def redirect_request(
        self,
        req: urllib.request.Request,
        fp: IO[bytes],
        code: int,
        msg: str,
        headers: HTTPMessage,
        newurl: str,
    ) -> None:
        return None


def _fetch_sync(url: str) -> Blob:
    check_loopback(url)
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirects())
    try:
        with opener.open(url, timeout=FETCH_TIMEOUT) as response:
            content = response.read(MAX_MEDIA_BYTES + 1)
            mime = response.headers.get_content_type()
    except urllib.error.HTTPError as error:
        raise ActionFailed(f"fetching {_short(url)!r}: HTTP {error.code}") from None
    except (urllib.error.URLError, OSError) as error:
        raise ActionFailed(f"fetching {_short(url)!r} failed: {error}") from None
    return Blob(content, _url_name(url), mime)


async def fetch(url: str, headers: dict[str, str]) -> Blob:
    """GET a loopback URL with aiohttp (no redirects, no proxy, bounded size and time)."""
    check_loopback(url)
    timeout = aiohttp.ClientTimeout(total=FETCH_TIMEOUT)
    try:
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.get(url, headers=headers, allow_redirects=False) as response,
        ):
            if response.status != 200:
                raise ActionFailed(f"fetching {_short(url)!r}: HTTP {response.status}")
            content = bytearray()
            async for chunk in response.content.iter_chunked(65536):
                content += chunk
                if len(content) > MAX_MEDIA_BYTES:
                    break
            return Blob(bytes(content), _url_name(url), response.content_type)
    except (aiohttp.ClientError, TimeoutError) as error:
        raise ActionFailed(f"fetching {_short(url)!r} failed: {error!r}") from None


def _url_name(url: str) -> str:
    return unquote(urlsplit(url).path.rsplit("/", 1)[-1])


def _extension(blob: Blob) -> str:
    for magic, extension in _SIGNATURES:
        if blob.content.startswith(magic):
            return extension
    if blob.content[:4] == b"RIFF" and blob.content[8:12] in (b"WEBP", b"WAVE"):
        return ".webp" if blob.content[8:12] == b"WEBP" else ".wav"
    suffix = Path(blob.name).suffix.lower()
    if suffix and len(suffix) <= 8 and suffix[1:].isalnum():
        return suffix
    return (mimetypes.guess_extension(blob.mime) or "") if blob.mime else ""


def _short(text: str) -> str:
    return text if len(text) <= 80 else text[:77] + "..."


# --- actions ------------------------------------------------------------------------------------


def lookup(db: sqlite3.Connection, key: str) -> tuple[sqlite3.Row, str]:
    """(media row, file name) for a media id or a group file id; 1200 when neither exists."""
    row = media_row(db, key)
    if row is not None:
        return row, row["file_name"]
    file = db.execute(
        "SELECT media_id, file_name FROM group_files WHERE file_id = ?", (key,)
    ).fetchone()
    row = media_row(db, file["media_id"]) if file is not None else None
    if row is None:
        raise ActionFailed(f"no stored file with id {_short(key)!r}")
    return row, file["file_name"]


async def _get(sandbox: SandboxBackend, p: GetMedia) -> dict[str, Any]:
    key = p.file_id or p.file or ""

    def read(db: sqlite3.Connection) -> dict[str, Any]:
        row, name = lookup(db, key)
        info = describe(db, row, name)
        answer = {
            "file": info["path"],
            "url": info["url"],
            "file_size": str(info["file_size"]),
            "file_name": name,
        }
        if p.base64:
            answer["base64"] = base64.b64encode(row["content"]).decode("ascii")
        return answer

    return await sandbox.store.run(read)


@handler("get_image")
async def get_image(sandbox: SandboxBackend, p: GetMedia) -> dict[str, Any]:
    return await _get(sandbox, p)


@handler("get_record")
async def get_record(sandbox: SandboxBackend, p: GetRecord) -> dict[str, Any]:
    return await _get(sandbox, p)


@handler("get_file")
async def get_file(sandbox: SandboxBackend, p: GetMedia) -> dict[str, Any]:
    return await _get(sandbox, p)


@handler("download_file")
async def download_file(sandbox: SandboxBackend, p: DownloadFile) -> dict[str, str]:
    name = Path(p.name or "").name
    if p.name is not None and name in ("", ".", ".."):
        raise BadRequest(f"name: {p.name!r} is not a file name")
    if p.url:
        blob = await fetch(p.url, _parse_headers(p.headers))
    else:
        blob = Blob(decode_base64((p.base64 or "").removeprefix("base64://")))

    def save(db: sqlite3.Connection) -> str:
        row = store_blob(db, "file", blob, name)
        target = cache_dir(db) / "downloads" / name if name else None
        return str(materialize(db, row, target))

    return {"file": await sandbox.store.run(save)}


def _parse_headers(headers: str | list[str] | None) -> dict[str, str]:
    lines = headers.splitlines() if isinstance(headers, str) else headers or []
    parsed = {}
    for line in lines:
        key, colon, value = line.partition(":")
        if not colon or not key.strip():
            raise BadRequest(f"headers: {line!r} is not a 'Name: value' header")
        parsed[key.strip()] = value.strip()
    return parsed


@handler("clean_cache")
async def clean_cache(sandbox: SandboxBackend, _: NoParams) -> None:
    def clean(db: sqlite3.Connection) -> None:
        directory = cache_dir(db)
        if directory.is_dir():
            for entry in directory.iterdir():
                if entry.is_dir():
                    shutil.rmtree(entry)
                else:
                    entry.unlink()

    await sandbox.store.run(clean)
