"""Catalog: flash transfer (QQ 闪传; NapCat's `create_flash_task` family).

A flash transfer is a file set uploaded once and shared by a link or a `flashtransfer` message;
it is named by its `fileset_id`, and a share link or its code leads back to it
(napcat-network.md §9.7).
"""

from __future__ import annotations

from pydantic import Field, field_validator, model_validator

from gateway.actions.catalog import Action, Params

MAX_FILES = 100
"""Most paths one `create_flash_task` takes."""


class _Files(Params):
    files: list[str]
    """Absolute paths of regular files on the gateway's machine (one path alone is accepted)."""
    name: str = ""
    """The file set's name; the first file's name when empty."""

    @field_validator("files", mode="before")
    @classmethod
    def _one_or_many(cls, value: object) -> object:
        return [value] if isinstance(value, str) else value

    @field_validator("files")
    @classmethod
    def _some_paths(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("give at least one file path")
        if len(value) > MAX_FILES:
            raise ValueError(f"at most {MAX_FILES} files per flash transfer")
        if any(not path for path in value):
            raise ValueError("a file path is empty")
        return value


class CreateFlashTask(_Files):
    """Parameters of `create_flash_task`."""

    thumb_path: str | None = None
    """A cover image path, kept as given."""


class FilesetRef(Params):
    """An action on one file set."""

    fileset_id: str = Field(min_length=1)
    """The file set (from `create_flash_task`, `get_fileset_id` or a `flashtransfer` segment)."""


class SendFlashMsg(FilesetRef):
    """Parameters of `send_flash_msg`: to a group when `group_id` is given, else to `user_id`."""

    user_id: int | None = None
    """A friend (or a member of a shared group, as a temporary session)."""
    group_id: int | None = None
    """A group the bot is in."""

    @model_validator(mode="after")
    def _has_target(self) -> SendFlashMsg:
        if self.user_id is None and self.group_id is None:
            raise ValueError("give user_id or group_id")
        return self


class GetFlashFileUrl(FilesetRef):
    """Parameters of `get_flash_file_url`: the file named `file_name`, else the `file_index`th."""

    file_name: str | None = None
    """A file's name in the set."""
    file_index: int | None = Field(None, ge=0)
    """A file's position in the set, from 0."""

    @model_validator(mode="after")
    def _names_a_file(self) -> GetFlashFileUrl:
        if self.file_name is None and self.file_index is None:
            raise ValueError("give file_name or file_index")
        return self


class SandboxSendFlashMsg(_Files):
    """Parameters of `sandbox_send_flash_msg`: a simulated user shares files with the bot by
    flash transfer; `files` may be any file URI the sandbox accepts."""

    user_id: int = Field(gt=0)
    """The sender (an unknown user becomes a stranger, or a new member of the group)."""
    group_id: int | None = None
    """The group the message goes to; a private message when absent."""


class GetFilesetId(Params):
    """Parameters of `get_fileset_id`."""

    share_code: str = Field(min_length=1)
    """A share code, or a share link (its code follows the first `=`)."""


ACTIONS = (
    Action("create_flash_task", CreateFlashTask, "Upload local files as a flash transfer set."),
    Action("send_flash_msg", SendFlashMsg, "Send a flash transfer set to a friend or a group."),
    Action("get_share_link", FilesetRef, "The share link of a flash transfer set."),
    Action("download_fileset", FilesetRef, "Download every file of a flash transfer set."),
    Action("get_fileset_info", FilesetRef, "A flash transfer set's name, size, uploader, link."),
    Action("get_flash_file_list", FilesetRef, "The files of a flash transfer set."),
    Action("get_flash_file_url", GetFlashFileUrl, "A download URL of one file of a set."),
    Action("get_fileset_id", GetFilesetId, "The file set a share code or link leads to."),
    Action(
        "sandbox_send_flash_msg",
        SandboxSendFlashMsg,
        "Sandbox: a simulated user shares files with the bot by flash transfer.",
    ),
)
