"""Sandbox actions: NapCat's stream API (napcat-network.md §8), files in and out in chunks.

`upload_file_stream` keeps each chunk (`stream_uploads`) and, on the call that completes the
stream, assembles the file and answers its `file_path`: a local path the other actions take
(`upload_group_file`, an image segment's `file`…). The `download_*_stream` actions read a stored
media file (media id or group file id) or an assembled upload a chunk at a time, each chunk read
only once the previous packet was written (`gateway.protocol.stream`). The sandbox neither
measures images nor transcodes records: `file_info` has no width/height, and
`download_file_record_stream` sends the stored bytes whatever `out_format` asks.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import functools
import sqlite3
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gateway.actions.catalog import NoParams
from gateway.actions.stream import (
    MAX_CHUNK_SIZE,
    DownloadFileRecordStream,
    DownloadFileStream,
    StreamSelfTest,
    UploadFileStream,
)
from gateway.backends.sandbox.stream_uploads import StreamFiles, default_root
from gateway.fetcher import short
from gateway.protocol.envelope import ActionFailed, BadRequest
from gateway.protocol.stream import Emit, PacketStream

if TYPE_CHECKING:
    from gateway.backends.sandbox.context import HandlerTable, Sandbox

_FILES: weakref.WeakKeyDictionary[Any, StreamFiles] = weakref.WeakKeyDictionary()


def stream_files(sandbox: Sandbox) -> StreamFiles:
    """The sandbox's stream state, made on its first stream call."""
    files = _FILES.get(sandbox)
    if files is None:
        files = _FILES[sandbox] = StreamFiles(default_root(sandbox.store.path))
    return files


# --- upload -------------------------------------------------------------------------------------


async def upload_file_stream(sandbox: Sandbox, p: UploadFileStream) -> dict[str, Any]:
    """One call of an upload: a chunk (`chunk_received`), the completion (`file_complete`, with
    `file_path`, `file_size`, `sha256`), or the state (`file_created`)."""
    files = stream_files(sandbox)
    await files.sweep()
    upload = files.uploads.get(p.stream_id)
    if p.reset:
        if upload is not None:
            await files.drop(upload)
        raise ActionFailed("Stream reset completed")  # NapCat answers a reset as a failure
    if p.verify_only:
        if upload is None:
            raise BadRequest(_unknown(p.stream_id))
        return upload.status()
    if upload is None:
        upload = files.start(p.stream_id, p, sandbox.media_max_size)
    elif p.total_chunks is not None and p.total_chunks != upload.total_chunks:
        raise BadRequest(
            f"upload_file_stream: total_chunks: stream {p.stream_id!r} has "
            f"{upload.total_chunks} chunks, this call says {p.total_chunks}"
        )
    async with upload.lock:
        if files.uploads.get(p.stream_id) is not upload:
            raise BadRequest(_unknown(p.stream_id))  # completed or reset meanwhile
        if p.chunk_data is not None and p.chunk_index is not None:
            if p.chunk_index >= upload.total_chunks:
                raise BadRequest(
                    f"upload_file_stream: chunk_index: {p.chunk_index} is out of range (stream "
                    f"{p.stream_id!r} has {upload.total_chunks} chunks, 0 to "
                    f"{upload.total_chunks - 1})"
                )
            content = _decode_chunk(p.chunk_data)
            await files.add_chunk(upload, p.chunk_index, content, sandbox.media_max_size)
            return upload.status("chunk_received")
        if p.is_complete or upload.received == upload.total_chunks:
            return await files.assemble(upload)
        upload.touched = files.clock()
        return upload.status()


def _decode_chunk(data: str) -> bytes:
    # A chunk's size is checked on its base64 form first: nothing over the limit is decoded.
    if len(data) > (MAX_CHUNK_SIZE + 2) // 3 * 4 + 64:
        raise BadRequest(
            f"upload_file_stream: chunk_data: a chunk may hold at most {MAX_CHUNK_SIZE} bytes"
        )
    try:
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise BadRequest("upload_file_stream: chunk_data: invalid base64 data") from None


def _unknown(stream_id: str) -> str:
    return (
        f"upload_file_stream: stream_id: no upload {short(stream_id)!r} is in progress "
        "(never started, completed, reset or expired)"
    )


async def clean_stream_temp_file(sandbox: Sandbox, _: NoParams) -> None:
    """Delete every upload in progress and every assembled file."""
    await stream_files(sandbox).clean()


# --- download -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Stored:
    """A file a download reads: an assembled upload (`path`) or a media row (`rowid`)."""

    name: str
    size: int
    path: Path | None = None
    rowid: int = 0


async def download_file_stream(sandbox: Sandbox, p: DownloadFileStream) -> PacketStream:
    """`file_info`, then a `file_chunk` per `chunk_size` bytes, then `file_complete`."""
    return await _download(sandbox, p, {})


async def download_file_image_stream(sandbox: Sandbox, p: DownloadFileStream) -> PacketStream:
    return await _download(sandbox, p, {})


async def download_file_record_stream(
    sandbox: Sandbox, p: DownloadFileRecordStream
) -> PacketStream:
    return await _download(sandbox, p, {"out_format": p.out_format})


async def _download(sandbox: Sandbox, p: DownloadFileStream, extra: dict[str, Any]) -> PacketStream:
    stored = await _find(sandbox, p.file or p.file_id or "")
    chunk_size = p.chunk_size

    async def produce(emit: Emit) -> dict[str, Any]:
        await emit(
            {
                "type": "stream",
                "data_type": "file_info",
                "file_name": stored.name,
                "file_size": stored.size,
                "chunk_size": chunk_size,
                **extra,
            }
        )
        index = sent = 0
        reader = ChunkReader(sandbox, stored, chunk_size)
        try:
            while chunk := await reader.read():
                sent += len(chunk)
                encoded = base64.b64encode(chunk).decode("ascii")
                await emit(_chunk_packet(index, chunk, encoded, sent, stored.size))
                index += 1
        finally:
            reader.close()  # also when the call is cancelled (its caller went away)
        return {
            "type": "response",
            "data_type": "file_complete",
            "total_chunks": index,
            "total_bytes": sent,
            "message": "Download completed",
        }

    return PacketStream(produce)


def _chunk_packet(index: int, chunk: bytes, encoded: str, sent: int, total: int) -> dict[str, Any]:
    return {
        "type": "stream",
        "data_type": "file_chunk",
        "index": index,
        "data": encoded,
        "size": len(chunk),
        "progress": round(sent * 100 / total) if total else 100,
        "base64_size": len(encoded),
    }


async def _find(sandbox: Sandbox, key: str) -> Stored:
    """The file `key` names; 1200 when there is none (as NapCat's "file not found")."""
    files = stream_files(sandbox)
    if key.startswith(("/", "file://")):
        # A group file id starts with "/" too: a path that is no assembled file is looked up.
        path = Path(key.removeprefix("file://"))
        size = await asyncio.to_thread(files.size_of, path)
        if size is not None:
            return Stored(path.name, size, path=path)

    def find(db: sqlite3.Connection) -> Stored | None:
        row = db.execute(
            "SELECT rowid, file_name, size FROM media WHERE media_id = ?", (key,)
        ).fetchone()
        name = None
        if row is None:
            # A group file: its own name, its content in `media`.
            row = db.execute(
                "SELECT m.rowid, g.file_name AS file_name, m.size FROM group_files g "
                "JOIN media m ON m.media_id = g.media_id WHERE g.file_id = ?",
                (key,),
            ).fetchone()
        if row is None:
            return None
        name = row["file_name"]
        return Stored(str(name), int(row["size"]), rowid=int(row["rowid"]))

    stored = await sandbox.store.read(find)
    if stored is None:
        raise ActionFailed(
            f"no stored file {short(key)!r}: downloads read stored media, group files and the "
            "file_path of upload_file_stream"
        )
    return stored


class ChunkReader:
    """A stored file's content, `size` bytes per `read` (b"" at the end), each read off the
    event loop. `close` is synchronous, so a cancelled call still releases the file."""

    def __init__(self, sandbox: Sandbox, stored: Stored, size: int) -> None:
        self.sandbox = sandbox
        self.stored = stored
        self.size = size
        self.offset = 0
        # Opened here, not on a thread: a cancellation while a thread opened it would leak it.
        try:
            self.handle = stored.path.open("rb") if stored.path is not None else None
        except OSError as error:  # removed meanwhile (retention, clean_stream_temp_file)
            raise ActionFailed(f"cannot read {stored.name!r}: {error.strerror}") from None

    async def read(self) -> bytes:
        if self.handle is not None:
            return await asyncio.to_thread(self.handle.read, self.size)
        if self.offset >= self.stored.size:
            return b""
        chunk = await self.sandbox.store.read(
            functools.partial(
                _read_blob, rowid=self.stored.rowid, offset=self.offset, size=self.size
            )
        )
        self.offset += len(chunk)
        return chunk

    def close(self) -> None:
        if self.handle is not None:
            self.handle.close()


def _read_blob(db: sqlite3.Connection, rowid: int, offset: int, size: int) -> bytes:
    with db.blobopen("media", "content", rowid, readonly=True) as blob:
        blob.seek(offset)
        return blob.read(size)


# --- the self-test ------------------------------------------------------------------------------


async def download_stream_self_test(_sandbox: Sandbox, p: StreamSelfTest) -> PacketStream:
    """Ten `data_chunk` packets, then `data_complete` (or, with `error`, a failure)."""

    async def produce(emit: Emit) -> dict[str, Any]:
        for index in range(10):
            await emit(
                {"type": "stream", "data": f"Index-> {index + 1}", "data_type": "data_chunk"}
            )
        if p.error:
            raise ActionFailed("This is a test error")
        return {
            "type": "response",
            "data_type": "data_complete",
            "data": "Stream transmission complete",
        }

    return PacketStream(produce)


HANDLERS: HandlerTable = {
    "upload_file_stream": upload_file_stream,
    "download_file_stream": download_file_stream,
    "download_file_image_stream": download_file_image_stream,
    "download_file_record_stream": download_file_record_stream,
    "clean_stream_temp_file": clean_stream_temp_file,
    "test_download_stream": download_stream_self_test,
}
