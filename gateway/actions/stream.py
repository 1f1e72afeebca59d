"""Catalog: NapCat's stream API (napcat-network.md §8), files in and out in chunks.

`upload_file_stream` takes a file one base64 chunk per call and, once complete, answers a
`file_path` the other actions accept; the `download_*_stream` actions answer one `file_info`
packet, a `file_chunk` packet per chunk, then `file_complete` as the final envelope. Packets go
out as NapCat writes them (several WebSocket frames with the call's echo, or one chunked HTTP
response); see `gateway.protocol.stream`.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from gateway.actions.catalog import Action, NoParams, Params

MAX_CHUNK_SIZE = 4 * 1024 * 1024
"""Largest chunk a download may ask for, in bytes (a packet carries it base64-encoded, a third
larger; the frame and body limits of the clients that read it are usually 16 MiB or more)."""
DEFAULT_CHUNK_SIZE = 64 * 1024
"""NapCat's default download chunk."""
MAX_TOTAL_CHUNKS = 1_000_000
"""Most chunks an upload may announce (the session keeps one byte per chunk)."""


class UploadFileStream(Params):
    """Parameters of `upload_file_stream`: one call per chunk, then one with `is_complete`."""

    stream_id: Annotated[str, Field(min_length=1, max_length=256)]
    """The caller's id for this upload; every chunk of one file carries the same."""
    chunk_data: str | None = None
    """This chunk's bytes, base64-encoded."""
    chunk_index: Annotated[int, Field(ge=0)] | None = None
    """This chunk's position, from 0; required with `chunk_data`."""
    total_chunks: Annotated[int, Field(ge=1, le=MAX_TOTAL_CHUNKS)] | None = None
    """How many chunks the file has; required on the first call of a stream."""
    file_size: Annotated[int, Field(ge=0)] | None = None
    """The file's size in bytes, when known: checked at completion, and a small one is kept in
    memory until then instead of on disk."""
    expected_sha256: Annotated[str, Field(pattern=r"^[0-9a-fA-F]{64}$")] | None = None
    """The file's SHA-256 (hex): checked at completion."""
    is_complete: bool = False
    """Assemble the file now. A call without `chunk_data` assembles it too once every chunk has
    arrived; a chunk's own call never does (as NapCat)."""
    filename: str | None = None
    """The file's name (its last path component is kept); `upload_<random>` when absent."""
    reset: bool = False
    """Drop this stream and what it received (answers 1200 "Stream reset completed", as NapCat)."""
    verify_only: bool = False
    """Only report the stream's state."""
    file_retention: Annotated[int, Field(ge=0)] = 5 * 60 * 1000
    """Milliseconds the assembled file is kept; 0 keeps it until `clean_stream_temp_file`."""

    @model_validator(mode="after")
    def _chunk_has_index(self) -> UploadFileStream:
        if self.chunk_data is not None and self.chunk_index is None:
            raise ValueError("chunk_index is required with chunk_data")
        return self


class DownloadFileStream(Params):
    """Parameters of `download_file_stream` and `download_file_image_stream`."""

    file: str | None = None
    """What to send: a media id, a group file id, or the `file_path` of a stream upload."""
    file_id: str | None = None
    """The same, under NapCat's other name (used when `file` is empty)."""
    chunk_size: Annotated[int, Field(ge=1, le=MAX_CHUNK_SIZE)] = DEFAULT_CHUNK_SIZE
    """Bytes per `file_chunk` packet (before base64)."""

    @model_validator(mode="after")
    def _one_file(self) -> DownloadFileStream:
        if not (self.file or self.file_id):
            raise ValueError("give file or file_id")
        return self


class DownloadFileRecordStream(DownloadFileStream):
    """Parameters of `download_file_record_stream`."""

    out_format: Literal["mp3", "amr", "wma", "m4a", "spx", "ogg", "wav", "flac"] | None = None
    """Wanted audio format. The sandbox does not transcode: the packets carry the stored bytes."""


class StreamSelfTest(Params):
    """Parameters of `test_download_stream`."""

    error: bool = False
    """Fail after the packets instead of completing."""


PACKET_ACTIONS = frozenset(
    {
        "download_file_stream",
        "download_file_image_stream",
        "download_file_record_stream",
        "test_download_stream",
    }
)
"""Stream actions that answer intermediate packets before their final envelope."""
STREAM_ACTIONS = PACKET_ACTIONS | {"upload_file_stream"}
"""Actions whose envelopes are marked `"stream": "stream-action"` (NapCat's `useStream`)."""

ACTIONS = (
    Action(
        "upload_file_stream",
        UploadFileStream,
        "Upload a file in base64 chunks; the completed file's file_path works in other actions.",
    ),
    Action(
        "download_file_stream",
        DownloadFileStream,
        "A stored file in chunks: file_info, file_chunk packets, then file_complete.",
    ),
    Action(
        "download_file_image_stream",
        DownloadFileStream,
        "A stored image in chunks (file_info, file_chunk packets, file_complete).",
    ),
    Action(
        "download_file_record_stream",
        DownloadFileRecordStream,
        "A stored voice record in chunks (file_info, file_chunk packets, file_complete).",
    ),
    Action(
        "clean_stream_temp_file",
        NoParams,
        "Delete the stream API's temporary files (uploads in progress and assembled files).",
    ),
    Action(
        "test_download_stream",
        StreamSelfTest,
        "Ten data_chunk packets, then data_complete (or a failure with error: true).",
    ),
)
