"""Catalog: online files and folders (NapCat's `send_online_file` family, private chats only).

An online file is offered to a friend, who receives or refuses it; the sender may cancel the
offer. Offers are named by `msg_id` and `element_id`: the `msgId` and `elementId` of the
`onlinefile` segment of the offer's message (napcat-network.md §9.7), not its `message_id`.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from gateway.actions.catalog import Action, Params


class _Friend(Params):
    user_id: int
    """The friend on the other side."""


class SendOnlineFile(_Friend):
    """Parameters of `send_online_file`."""

    file_path: str = Field(min_length=1)
    """An absolute path of a regular file on the gateway's machine."""
    file_name: str | None = None
    """The name the friend sees; the path's last part when absent or empty."""


class SendOnlineFolder(_Friend):
    """Parameters of `send_online_folder`."""

    folder_path: str = Field(min_length=1)
    """An absolute path of a directory on the gateway's machine."""
    folder_name: str | None = None
    """The name the friend sees; the path's last part when absent or empty."""


class GetOnlineFileMsg(_Friend):
    """Parameters of `get_online_file_msg`."""


class CancelOnlineFile(_Friend):
    """Parameters of `cancel_online_file`."""

    msg_id: str = Field(min_length=1)
    """The `msgId` of the bot's offer."""


class OnlineFileElement(CancelOnlineFile):
    """Parameters of `receive_online_file` and `refuse_online_file`."""

    element_id: str = Field(min_length=1)
    """The `elementId` of the friend's offer."""


class SandboxSendOnlineFile(_Friend):
    """Parameters of `sandbox_send_online_file`: a simulated friend offers the bot a file."""

    file: str
    """The content, in any file URI form `upload_group_file` accepts."""
    name: str = Field(min_length=1)
    """The file name the bot sees."""


class SandboxAnswerOnlineFile(CancelOnlineFile):
    """Parameters of `sandbox_answer_online_file`: the friend acts on an online file offer."""

    answer: Literal["receive", "refuse", "cancel"]
    """`receive` or `refuse` the bot's offer, or `cancel` the friend's own."""


ACTIONS = (
    Action("send_online_file", SendOnlineFile, "Offer a friend a local file as an online file."),
    Action("send_online_folder", SendOnlineFolder, "Offer a friend a local folder online."),
    Action("get_online_file_msg", GetOnlineFileMsg, "The online file offers of a private chat."),
    Action("receive_online_file", OnlineFileElement, "Receive a friend's online file offer."),
    Action("refuse_online_file", OnlineFileElement, "Refuse a friend's online file offer."),
    Action("cancel_online_file", CancelOnlineFile, "Withdraw the bot's online file offer."),
    Action(
        "sandbox_send_online_file",
        SandboxSendOnlineFile,
        "Sandbox: a simulated friend offers the bot an online file.",
    ),
    Action(
        "sandbox_answer_online_file",
        SandboxAnswerOnlineFile,
        "Sandbox: a simulated friend receives, refuses or cancels an online file offer.",
    ),
)
