"""Catalog: stored images, records and files; downloads into the local cache; cache cleaning."""

from __future__ import annotations

from typing import Literal

from pydantic import model_validator

from gateway.actions.catalog import Action, NoParams, Params


class GetMedia(Params):
    """Parameters of `get_image`, `get_file`: a file the implementation issued, by id or name."""

    file: str | None = None
    """The `file` value of an image/record/file segment (the sandbox's media id)."""
    file_id: str | None = None
    """A file id (a media id, or a group file's `file_id`); wins over `file`."""
    base64: bool = False
    """Gateway extension (NapCat has no such parameter): also return the content as `base64`."""

    @model_validator(mode="after")
    def _one_file(self) -> GetMedia:
        if not (self.file or self.file_id):
            raise ValueError("give file or file_id")
        return self


class GetRecord(GetMedia):
    """Parameters of `get_record`."""

    out_format: Literal["mp3", "amr", "wma", "m4a", "spx", "ogg", "wav", "flac"]
    """Wanted audio format. The sandbox does not transcode: the file holds the bytes as stored."""


class DownloadFile(Params):
    """Parameters of `download_file`."""

    url: str | None = None
    """What to download (the sandbox fetches loopback URLs only)."""
    base64: str | None = None
    """The content as base64 (with or without `base64://`), instead of `url`."""
    name: str | None = None
    """File name in the download directory; the content's media id when absent."""
    headers: str | list[str] | None = None
    """Request headers: `"K: V"` lines in one string (CRLF-separated) or a list of them."""

    @model_validator(mode="after")
    def _one_source(self) -> DownloadFile:
        if not (self.url or self.base64):
            raise ValueError("give url or base64")
        return self


ACTIONS = (
    Action("get_image", GetMedia, "A stored image: local path, file:// URL, size and name."),
    Action("get_record", GetRecord, "A stored voice record: local path, URL, size and name."),
    Action("get_file", GetMedia, "A stored file (media id or group file id): path, URL, size."),
    Action("download_file", DownloadFile, "Download (loopback URL or base64) into the cache."),
    Action("clean_cache", NoParams, "Delete the local cache files (stored media are kept)."),
)
