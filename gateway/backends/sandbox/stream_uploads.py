"""The stream API's files on disk: upload sessions and the files they assemble.

Everything lives under one directory per sandbox (`<database dir>/sandbox-streams`, or a
temporary directory for `:memory:`): `uploads/<random>/<index>` holds the chunks of an upload in
progress, `files/<random>/<filename>` an assembled file (its `file_path`, which every action that
takes a local path accepts). A small upload (`file_size` declared, at most `MEMORY_THRESHOLD`)
keeps its chunks in memory instead. A file is assembled a chunk at a time, hashed as it is
written: memory stays bounded whatever its size.

Nothing runs in the background: sessions idle for `SESSION_TIMEOUT` seconds and assembled files
past their retention are removed by the next stream call (`sweep`).
"""

from __future__ import annotations

import asyncio
import atexit
import hashlib
import secrets
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway.protocol.envelope import ActionFailed, BadRequest

MEMORY_THRESHOLD = 256 * 1024
"""Uploads that declare a `file_size` up to this keep their chunks in memory (NapCat: 10 MB)."""
MAX_SESSIONS = 64
"""Uploads in progress at once; past it a new stream is refused (1200) until one ends."""
SESSION_TIMEOUT = 600.0
"""Seconds an upload may go without a call before it is dropped, as NapCat (10 minutes)."""
MAX_LISTED = 10
"""Missing chunk indexes named in an error."""


@dataclass(eq=False)
class Upload:
    """One `stream_id`'s upload in progress."""

    stream_id: str
    filename: str
    total_chunks: int
    file_size: int | None
    expected_sha256: str | None
    retention: float
    """Seconds the assembled file is kept; 0 keeps it."""
    directory: Path | None
    """Where its chunks are written; None when they are kept in `memory`."""
    touched: float
    memory: dict[int, bytes] = field(default_factory=dict)
    have: bytearray = field(default_factory=bytearray)
    """One byte per chunk: 1 once received."""
    received: int = 0
    size: int = 0
    """Bytes received so far."""
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    """Held by each call on this stream: a chunk write never races the assembly."""

    def status(self, status: str = "file_created") -> dict[str, Any]:
        """The answer of a call that neither completed nor added a chunk (NapCat's shape)."""
        return {
            "type": "stream",
            "stream_id": self.stream_id,
            "status": status,
            "received_chunks": self.received,
            "total_chunks": self.total_chunks,
        }

    def missing(self) -> list[int]:
        """The first `MAX_LISTED` indexes not received yet."""
        found: list[int] = []
        start = 0
        while len(found) < MAX_LISTED and (index := self.have.find(0, start)) >= 0:
            found.append(index)
            start = index + 1
        return found


class StreamFiles:
    """One sandbox's upload sessions and assembled files."""

    def __init__(self, root: Path, clock: Callable[[], float] = time.monotonic) -> None:
        self.root = root
        self.clock = clock
        self.uploads: dict[str, Upload] = {}
        self.retained: dict[Path, float] = {}
        """Assembled files with a retention: when (`clock`) each is removed."""
        # Chunks left by an earlier run can never be completed: their sessions are gone.
        shutil.rmtree(root / "uploads", ignore_errors=True)

    async def sweep(self) -> None:
        """Drop sessions idle past `SESSION_TIMEOUT` and files past their retention."""
        now = self.clock()
        stale = [u for u in self.uploads.values() if now - u.touched > SESSION_TIMEOUT]
        for upload in stale:
            await self.drop(upload)
        expired = [path for path, until in self.retained.items() if until <= now]
        for path in expired:
            del self.retained[path]
        if expired:
            await asyncio.to_thread(_remove_files, expired)

    def start(self, stream_id: str, p: Any, max_size: int) -> Upload:
        """A new session from the first call of `stream_id` (an `UploadFileStream`)."""
        if p.total_chunks is None:
            raise BadRequest(
                f"upload_file_stream: total_chunks: required on the first call of stream "
                f"{stream_id!r} (no upload with this stream_id is in progress)"
            )
        if p.file_size is not None and p.file_size > max_size:
            raise BadRequest(
                f"upload_file_stream: file_size: {p.file_size} bytes is over the sandbox's "
                f"limit of {max_size} bytes"
            )
        if len(self.uploads) >= MAX_SESSIONS:
            raise ActionFailed(
                f"upload_file_stream: {MAX_SESSIONS} uploads are in progress, the limit; finish "
                "or reset one (or wait for idle ones to expire)"
            )
        in_memory = p.file_size is not None and p.file_size <= MEMORY_THRESHOLD
        directory = None if in_memory else self.root / "uploads" / secrets.token_hex(8)
        upload = Upload(
            stream_id=stream_id,
            filename=_file_name(p.filename),
            total_chunks=p.total_chunks,
            file_size=p.file_size,
            expected_sha256=p.expected_sha256.lower() if p.expected_sha256 else None,
            retention=p.file_retention / 1000,
            directory=directory,
            touched=self.clock(),
            have=bytearray(p.total_chunks),
        )
        self.uploads[stream_id] = upload
        return upload

    async def add_chunk(self, upload: Upload, index: int, content: bytes, max_size: int) -> None:
        """Keep chunk `index` (a repeated index is ignored, as NapCat)."""
        if upload.have[index]:
            return
        limit = upload.file_size if upload.file_size is not None else max_size
        if upload.size + len(content) > limit:
            name = "file_size" if upload.file_size is not None else "the sandbox's limit"
            raise BadRequest(
                f"upload_file_stream: chunk_data: chunk {index} brings stream "
                f"{upload.stream_id!r} to {upload.size + len(content)} bytes, over {name} "
                f"({limit} bytes)"
            )
        if upload.directory is None:
            upload.memory[index] = content
        else:
            await asyncio.to_thread(_write_chunk, upload.directory, index, content)
        upload.have[index] = 1
        upload.received += 1
        upload.size += len(content)
        upload.touched = self.clock()

    async def assemble(self, upload: Upload) -> dict[str, Any]:
        """Write the file from its chunks, check it, end the session; the final answer."""
        if upload.received < upload.total_chunks:
            raise BadRequest(
                f"upload_file_stream: is_complete: stream {upload.stream_id!r} misses "
                f"{upload.total_chunks - upload.received} of {upload.total_chunks} chunks "
                f"(first missing: {upload.missing()})"
            )
        target = self.root / "files" / secrets.token_hex(8) / upload.filename
        try:
            size, digest = await asyncio.to_thread(_assemble, upload, target)
            _check(upload, size, digest)
        except BaseException:
            await asyncio.to_thread(_remove_files, [target])
            await self.drop(upload)
            raise
        await self.drop(upload)
        if upload.retention > 0:
            self.retained[target] = self.clock() + upload.retention
        return {
            "type": "response",
            "stream_id": upload.stream_id,
            "status": "file_complete",
            "received_chunks": upload.received,
            "total_chunks": upload.total_chunks,
            "file_path": str(target),
            "file_size": size,
            "sha256": digest,
        }

    async def drop(self, upload: Upload) -> None:
        """End a session and delete its chunks."""
        if self.uploads.get(upload.stream_id) is upload:
            del self.uploads[upload.stream_id]
        upload.memory.clear()
        if upload.directory is not None:
            await asyncio.to_thread(shutil.rmtree, upload.directory, True)

    async def clean(self) -> None:
        """`clean_stream_temp_file`: every session and every assembled file."""
        self.uploads.clear()
        self.retained.clear()
        for part in ("uploads", "files"):
            await asyncio.to_thread(shutil.rmtree, self.root / part, True)

    def size_of(self, path: Path) -> int | None:
        """The size of `path` if it is an assembled file of this sandbox (what a download may
        read), else None. Blocking: call it on a thread."""
        files = (self.root / "files").resolve()
        if not path.resolve().is_relative_to(files) or not path.is_file():
            return None
        return path.stat().st_size


def default_root(database: str) -> Path:
    """`<database dir>/sandbox-streams`, or a temporary directory removed at exit."""
    if database and database != ":memory:" and not database.startswith("file:"):
        return Path(database).resolve().parent / "sandbox-streams"
    directory = tempfile.mkdtemp(prefix="onebot-sandbox-streams-")
    atexit.register(shutil.rmtree, directory, True)
    return Path(directory)


def _file_name(given: str | None) -> str:
    name = Path(given.replace("\\", "/")).name if given else ""
    if name in ("", ".", ".."):
        return f"upload_{secrets.token_hex(8)}"
    return name


def _check(upload: Upload, size: int, digest: str) -> None:
    if upload.file_size is not None and size != upload.file_size:
        raise BadRequest(
            f"upload_file_stream: file_size: stream {upload.stream_id!r} declared "
            f"{upload.file_size} bytes, its chunks hold {size}; the upload is dropped"
        )
    if upload.expected_sha256 is not None and digest != upload.expected_sha256:
        raise BadRequest(
            f"upload_file_stream: expected_sha256: stream {upload.stream_id!r} assembled to "
            f"{digest}, not {upload.expected_sha256}; the upload is dropped"
        )


def _write_chunk(directory: Path, index: int, content: bytes) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / str(index)).write_bytes(content)


def _assemble(upload: Upload, target: Path) -> tuple[int, str]:
    """Concatenate the chunks in order into `target`; (size, sha256 hex). One chunk in memory
    at a time."""
    target.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    size = 0
    with target.open("wb") as out:
        for index in range(upload.total_chunks):
            if upload.directory is None:
                content = upload.memory[index]
            else:
                content = (upload.directory / str(index)).read_bytes()
            digest.update(content)
            out.write(content)
            size += len(content)
    return size, digest.hexdigest()


def _remove_files(paths: list[Path]) -> None:
    for path in paths:
        path.unlink(missing_ok=True)
        # The file's own random directory goes with it.
        if path.parent.name != "files":
            shutil.rmtree(path.parent, ignore_errors=True)
