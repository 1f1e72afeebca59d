"""The catalog mechanism: an action's name, aliases, parameter model and summary.

Parameter models are lax, as NapCat and the OneBot spec require: `"123"` becomes 123, `"true"` and
`1` become True, and numbers given for string fields become strings. Unknown parameters are kept
(NapCat hands them to the handler too), so a relay can forward them unchanged.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from gateway.protocol.envelope import BadRequest


class Params(BaseModel):
    """Base of every action's parameter model."""

    model_config = ConfigDict(
        extra="allow",
        frozen=True,
        populate_by_name=True,
        coerce_numbers_to_str=True,
        use_attribute_docstrings=True,
        # Validators are built on an action's first call, not at import: most of ~500 models
        # are never used by a given bot, and building them all took ~120 ms of start-up.
        defer_build=True,
    )


class NoParams(Params):
    """An action without parameters."""


@dataclass(frozen=True, slots=True)
class Action:
    """One catalog entry. `name` is the canonical name backends implement."""

    name: str
    params: type[Params]
    summary: str
    aliases: tuple[str, ...] = ()
    unavailable_hint: str = ""
    """Appended to the 1404 message of a backend that does not provide this action."""

    def validate(self, raw: Mapping[str, Any]) -> Params:
        """Validate raw parameters; BadRequest names the first bad field."""
        try:
            return self.params.model_validate(raw)
        except ValidationError as error:
            raise BadRequest(describe_params_error(self.name, error)) from None


def describe_params_error(action: str, error: ValidationError) -> str:
    """`send_private_msg: user_id: missing` style text, one clause per bad field."""
    parts = []
    for item in error.errors(include_url=False):
        field = ".".join(str(p) for p in item["loc"]) or "params"
        if item["type"] == "missing":
            parts.append(f"missing required parameter '{field}'")
        else:
            got = item.get("input")
            shown = "" if isinstance(got, dict | list) else f" (got {got!r})"
            parts.append(f"parameter '{field}': {item['msg']}{shown}")
    return f"{action}: " + "; ".join(parts)


class Catalog:
    """Actions by canonical name and by alias."""

    def __init__(self, actions: Iterable[Action]) -> None:
        self._actions: dict[str, Action] = {}
        self._by_name: dict[str, Action] = {}
        for action in actions:
            for name in (action.name, *action.aliases):
                if name in self._by_name:
                    raise ValueError(f"action name {name!r} registered twice")
                self._by_name[name] = action
            self._actions[action.name] = action

    def resolve(self, name: str) -> Action | None:
        """The entry for a canonical name or alias, or None."""
        return self._by_name.get(name)

    def __iter__(self) -> Iterator[Action]:
        return iter(self._actions.values())

    def __len__(self) -> int:
        return len(self._actions)
