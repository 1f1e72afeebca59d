"""Sandbox actions: stored media (images, records, files) and the local cache they are read from.

Every file the sandbox is given is stored in the `media` table, keyed by a media id derived from
its content (`<MD5>.<ext>`, as QQ names images), so it survives restarts. Readers get a real
local file: a copy written on demand into the cache directory (`<database dir>/sandbox-media/`, or
a temporary directory for `:memory:`), which `clean_cache` may empty at any time.

File URIs accepted wherever a file is given (napcat-network.md §11.1): `base64://…`,
`data:<mime>;base64,…`, `file://…` or an absolute path that exists, a media id this sandbox
issued, and `http(s)://` to a loopback host only: the sandbox never reaches the internet.
Malformed data is a 1400; a file that cannot be found or fetched is a 1200.

Two steps, so that the database thread never waits on the network: `prepare` (on the event loop,
before the call's transaction) turns a URI into a `Source`, fetching an http(s) URL with the
backend's `gateway.fetcher.Fetcher`; `ingest` (inside the transaction) stores a Source. Every
other form is read by `ingest` itself, on the database thread: it never waits on another machine
(a local file is checked against the size limit before it is read; base64 is as large as the
request that carried it).
"""

from __future__ import annotations

import atexit
import base64
import binascii
import hashlib
import mimetypes
import shutil
import sqlite3
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, unquote_to_bytes, urlsplit

from gateway.actions.catalog import NoParams
from gateway.actions.media import DownloadFile, GetMedia, GetRecord
from gateway.fetcher import Fetched, short
from gateway.protocol.envelope import ActionFailed, BadRequest

if TYPE_CHECKING:
    from gateway.backends.sandbox.context import HandlerTable, Sandbox

_CACHE_KEY = "media:cache_dir"
IMAGE_TYPES = (".png", ".jpg", ".gif", ".bmp", ".webp")
"""Extensions of stored media that QQ takes as an image (an avatar, a portrait)."""

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

    @classmethod
    def of(cls, fetched: Fetched) -> Blob:
        """The body of a fetched URL, named after the URL's last path segment."""
        return cls(fetched.content, fetched.name, fetched.content_type)


@dataclass(frozen=True, slots=True)
class Source:
    """A file URI made ready for the database thread by `prepare`."""

    uri: str
    max_size: int
    """Largest content accepted, in bytes (the backend's `mediaMaxSize`)."""
    fetched: Blob | None = None
    """The content of an http(s) URI, fetched before the transaction; None for other forms."""


# --- the public API other sandbox modules use ---------------------------------------------------


def is_url(uri: str) -> bool:
    """Whether `uri` is fetched over the network (http or https)."""
    return uri.startswith(("http://", "https://"))


async def prepare(sandbox: Sandbox, uri: str) -> Source:
    """The Source for `uri`, fetched now (on the event loop) when it is an http(s) URL.

    Call it before `store.run`: `ingest` never fetches. ActionFailed/BadRequest as the fetcher
    raises them (a refused host, an HTTP error, a timeout, a file over the size limit).
    """
    limit = sandbox.media_max_size
    if not is_url(uri):
        local = local_path(uri)
        if local is not None:
            allowed_path(sandbox, local, "file")
        return Source(uri, limit)
    return Source(uri, limit, Blob.of(await sandbox.fetcher.fetch(uri)))


async def prepare_all(sandbox: Sandbox, uris: Iterable[str]) -> dict[str, Source]:
    """`prepare` of each distinct URI (one fetch per URL however often it appears), by URI."""
    sources: dict[str, Source] = {}
    for uri in uris:
        if uri not in sources:
            sources[uri] = await prepare(sandbox, uri)
    return sources


def ingest(db: sqlite3.Connection, kind: str, source: Source, name: str = "") -> dict[str, Any]:
    """Store the file `source` names (any accepted URI form) and describe it.

    Returns `{file, file_id, file_name, file_size, url, path}`: `file` and `file_id` are the media
    id (use it as a segment's `file`), `file_size` an int, `url` a file:// URL of `path`, a cached
    copy. Runs on the database thread and never touches the network: an http(s) Source carries
    its content already.
    """
    row = None if source.fetched is not None else media_row(db, source.uri)
    if row is None:
        row = store_blob(db, kind, read_source(source), name, source.max_size)
    return describe(db, row, name)


def store_blob(
    db: sqlite3.Connection, kind: str, blob: Blob, name: str, max_size: int
) -> sqlite3.Row:
    """Insert content (deduplicated by media id) and return its media row; 1200 when it is
    larger than `max_size` bytes."""
    if len(blob.content) > max_size:
        raise ActionFailed(f"file is larger than the sandbox's limit of {max_size} bytes")
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


def read_source(source: Source) -> Blob:
    """The content a Source names; BadRequest when malformed, ActionFailed when unreachable."""
    if source.fetched is not None:
        return source.fetched
    data = source.uri
    if data.startswith("base64://"):
        return Blob(decode_base64(data.removeprefix("base64://")))
    if data.startswith("data:"):
        return _read_data_url(data)
    if data.startswith("file://"):
        parts = urlsplit(data)
        if parts.netloc not in ("", "localhost"):
            raise ActionFailed(f"file URL {data!r} names another host")
        return _read_local(Path(unquote(parts.path)), source.max_size)
    if is_url(data):
        # A programming error, not a client's: the caller skipped `prepare`.
        raise RuntimeError(f"{short(data)!r} was not fetched before the transaction")
    if Path(data).is_absolute():
        return _read_local(Path(data), source.max_size)
    raise ActionFailed(
        f"file {short(data)!r} is not a media id of this sandbox, an absolute path, "
        "base64:// data, a data: URL or a loopback http(s) URL"
    )


def local_path(uri: str) -> Path | None:
    """The local file a `file://` URL or an absolute path names, else None."""
    if uri.startswith("file://"):
        return Path(unquote(urlsplit(uri).path))
    path = Path(uri)
    return path if path.is_absolute() else None


def allowed_path(sandbox: Sandbox, path: Path, what: str) -> Path:
    """`path` when the account's `localFileRoots` allow it (symbolic links and `..` resolved
    first, so neither leads out of a root); ActionFailed naming the setting otherwise."""
    roots = sandbox.local_file_roots
    if roots is None:
        return path
    try:
        real = path.resolve()
    except (OSError, ValueError, RuntimeError):  # a NUL byte, a symbolic link loop
        raise ActionFailed(f"{what}: {short(str(path))!r} is not a usable local path") from None
    if any(real.is_relative_to(root) for root in roots):
        return path
    raise ActionFailed(
        f"{what}: local path {short(str(path))!r} is outside backend.localFileRoots; "
        "send the content as base64:// or a loopback http(s) URL, or put the file there"
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


def _read_local(path: Path, max_size: int) -> Blob:
    if not path.is_file():
        raise ActionFailed(f"local file {str(path)!r} does not exist")
    if path.stat().st_size > max_size:
        raise ActionFailed(f"file is larger than the sandbox's limit of {max_size} bytes")
    try:
        return Blob(path.read_bytes(), path.name)
    except OSError as error:
        raise ActionFailed(f"cannot read {str(path)!r}: {error.strerror}") from None


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
        raise ActionFailed(f"no stored file with id {short(key)!r}")
    return row, file["file_name"]


async def _get(sandbox: Sandbox, p: GetMedia) -> dict[str, Any]:
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


async def get_image(sandbox: Sandbox, p: GetMedia) -> dict[str, Any]:
    return await _get(sandbox, p)


async def get_record(sandbox: Sandbox, p: GetRecord) -> dict[str, Any]:
    return await _get(sandbox, p)


async def get_file(sandbox: Sandbox, p: GetMedia) -> dict[str, Any]:
    return await _get(sandbox, p)


async def download_file(sandbox: Sandbox, p: DownloadFile) -> dict[str, str]:
    name = Path(p.name or "").name
    if p.name is not None and name in ("", ".", ".."):
        raise BadRequest(f"name: {p.name!r} is not a file name")
    if p.url:
        blob = Blob.of(await sandbox.fetcher.fetch(p.url, _parse_headers(p.headers)))
    else:
        blob = Blob(decode_base64((p.base64 or "").removeprefix("base64://")))

    def save(db: sqlite3.Connection) -> str:
        row = store_blob(db, "file", blob, name, sandbox.media_max_size)
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


async def clean_cache(sandbox: Sandbox, _: NoParams) -> None:
    def clean(db: sqlite3.Connection) -> None:
        directory = cache_dir(db)
        if directory.is_dir():
            for entry in directory.iterdir():
                if entry.is_dir():
                    shutil.rmtree(entry)
                else:
                    entry.unlink()

    await sandbox.store.run(clean)


HANDLERS: HandlerTable = {
    "get_image": get_image,
    "get_record": get_record,
    "get_file": get_file,
    "download_file": download_file,
    "clean_cache": clean_cache,
}
