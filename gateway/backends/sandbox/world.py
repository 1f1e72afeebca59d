"""The world file: the simulated account, its friends and groups, used to seed an empty database
(seed.py); several sandbox accounts may share one, each seeded as its own `selfId`."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from gateway.config import ConfigError, format_validation_error
from gateway.protocol import jsonio

QQ = Annotated[int, Field(gt=0, lt=2**63)]


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)


class Account(_Model):
    """The bot account."""

    user_id: QQ
    """The bot's QQ number (`self_id`)."""
    nickname: str
    """Display name."""


class Friend(_Model):
    """A friend of the bot."""

    user_id: QQ
    """QQ number."""
    nickname: str
    """Display name."""
    remark: str = ""
    """The bot's remark for this friend."""
    category: str = "Friends"
    """Friend category name."""


class Member(_Model):
    """A group member."""

    user_id: QQ
    """QQ number."""
    nickname: str
    """Display name."""
    role: Literal["owner", "admin", "member"] = "member"
    """Group role."""
    card: str = ""
    """Group card (display name in this group)."""
    title: str = ""
    """Special title."""


class Group(_Model):
    """A group the bot is in."""

    group_id: QQ
    """Group number."""
    group_name: str
    """Group name."""
    members: tuple[Member, ...] = ()
    """Members; the bot is added as a member when missing."""


class World(_Model):
    """A whole world file."""

    self: Account
    """The bot account (`backend.selfId` and `nickname` take its place when given)."""
    friends: tuple[Friend, ...] = ()
    """Friends."""
    groups: tuple[Group, ...] = ()
    """Groups the bot is in."""


def load_world(path: str | None) -> World:
    """Read a JSON5 world file, or the built-in default world when `path` is None."""
    if path is None:
        data = resources.files("gateway.data").joinpath("world.json5").read_bytes()
        where = "built-in world"
    else:
        try:
            data = Path(path).read_bytes()
        except OSError as error:
            raise ConfigError(f"backend.world: cannot read {path}: {error.strerror}") from None
        where = path
    try:
        return World.model_validate(jsonio.loads(data))
    except jsonio.JsonError as error:
        raise ConfigError(f"backend.world: {where} is not valid JSON5: {error}") from None
    except ValidationError as error:
        raise ConfigError(f"backend.world: {where}: {format_validation_error(error)}") from None
