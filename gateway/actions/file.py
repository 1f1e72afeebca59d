"""Catalog: group files and folders, private files."""

from __future__ import annotations

from pydantic import AliasChoices, Field, model_validator

from gateway.actions.catalog import Action, Params


class _Group(Params):
    group_id: int
    """The group."""


class _GroupFileRef(_Group):
    file_id: str
    """The group file's id (from `get_group_root_files`, a `group_upload` notice, …)."""


class UploadGroupFile(_Group):
    """Parameters of `upload_group_file`."""

    file: str
    """The content: base64://, data:, file://, an absolute path, a media id or a loopback URL."""
    name: str = Field(min_length=1)
    """File name shown in the group."""
    folder: str | None = Field(None, validation_alias=AliasChoices("folder", "folder_id"))
    """Target folder id (`folder_id` is accepted too); the root folder when absent."""
    upload_file: bool = True
    """NapCat's flag; the sandbox always stores the file."""


class UploadPrivateFile(Params):
    """Parameters of `upload_private_file`."""

    user_id: int
    """The friend who receives the file."""
    file: str
    """The content, in any file URI form `upload_group_file` accepts."""
    name: str = Field(min_length=1)
    """File name shown in the chat."""
    upload_file: bool = True
    """NapCat's flag; the sandbox always stores the file."""


class CreateGroupFileFolder(_Group):
    """Parameters of `create_group_file_folder`."""

    folder_name: str = Field(min_length=1, validation_alias=AliasChoices("folder_name", "name"))
    """Name of the new folder (`name` is accepted too); folders live in the root folder."""


class _FolderRef(_Group):
    folder_id: str | None = Field(None, validation_alias=AliasChoices("folder_id", "folder"))
    """The folder's id (`folder` is accepted too)."""


class DeleteGroupFolder(_FolderRef):
    """Parameters of `delete_group_folder`."""

    @model_validator(mode="after")
    def _needs_folder(self) -> DeleteGroupFolder:
        if not self.folder_id:
            raise ValueError("give folder_id or folder")
        return self


class GetGroupFilesByFolder(_FolderRef):
    """Parameters of `get_group_files_by_folder`."""

    file_count: int = Field(50, ge=1)
    """At most this many entries."""


class GetGroupRootFiles(_Group):
    """Parameters of `get_group_root_files`."""

    file_count: int = Field(50, ge=1)
    """At most this many entries (folders first, then files, newest first)."""


class GroupId(_Group):
    """An action on one group's file system."""


class GroupFileRef(_GroupFileRef):
    """An action on one group file."""


class MoveGroupFile(_GroupFileRef):
    """Parameters of `move_group_file`."""

    current_parent_directory: str
    """The folder the file is in now (`/` for the root)."""
    target_parent_directory: str
    """The folder to move it to (`/` for the root)."""


class RenameGroupFile(_GroupFileRef):
    """Parameters of `rename_group_file`."""

    current_parent_directory: str
    """The folder the file is in (`/` for the root)."""
    new_name: str = Field(min_length=1)
    """The new file name."""


class GetPrivateFileUrl(Params):
    """Parameters of `get_private_file_url`."""

    file_id: str
    """The `file_id` of a private file (from `upload_private_file` or a `file` segment)."""


class SandboxUploadGroupFile(_Group):
    """Parameters of `sandbox_upload_group_file`: a simulated member uploads a group file."""

    user_id: int
    """The uploading member."""
    name: str = Field(min_length=1)
    """File name shown in the group."""
    file: str
    """The content, in any file URI form `upload_group_file` accepts."""
    folder: str | None = Field(None, validation_alias=AliasChoices("folder", "folder_id"))
    """Target folder id; the root folder when absent."""
    temporary: bool = False
    """Upload a temporary file (`busid` 104, gone after 14 days unless `trans_group_file`)."""


ACTIONS = (
    Action("upload_group_file", UploadGroupFile, "Upload a file to a group's file system."),
    Action("upload_private_file", UploadPrivateFile, "Send a friend a file; returns file_id."),
    Action("delete_group_file", GroupFileRef, "Delete a group file."),
    Action("create_group_file_folder", CreateGroupFileFolder, "Create a group folder."),
    Action("delete_group_folder", DeleteGroupFolder, "Delete a group folder and its files."),
    Action("get_group_file_system_info", GroupId, "A group's file count, limits and used space."),
    Action("get_group_root_files", GetGroupRootFiles, "Files and folders in a group's root."),
    Action("get_group_files_by_folder", GetGroupFilesByFolder, "Files in one group folder."),
    Action("get_group_file_url", GroupFileRef, "A download URL (file://) of a group file."),
    Action("move_group_file", MoveGroupFile, "Move a group file to another folder."),
    Action("rename_group_file", RenameGroupFile, "Rename a group file."),
    Action("trans_group_file", GroupFileRef, "Make a temporary group file permanent."),
    Action(
        "get_private_file_url", GetPrivateFileUrl, "A download URL (file://) of a private file."
    ),
    Action(
        "sandbox_upload_group_file",
        SandboxUploadGroupFile,
        "Sandbox: a simulated member uploads a group file (group_upload notice).",
    ),
)
