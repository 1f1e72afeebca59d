"""NapCat's response schemas, for tests that check what `data` of an action looks like.

They come from NapCat's OpenAPI document (napcat-openapi-4.18.13.json), which is not shipped:
`tests/data/napcat-response-schemas.json` keeps what tests need of it, per action the schema of
the envelope's `data` and the component schemas those refer to (message segments, users,
groups…). Regenerate it from the document with
`python -m tests.napcat_schema path/to/napcat-openapi-4.18.13.json`.

Where NapCat's own code answers something its document does not describe, `ERRATA` holds the
schema of what the code returns, with the reason; `data_schema` and `validate_data` use it.
"""

from __future__ import annotations

import functools
import json
import sys
from pathlib import Path
from typing import Any

import jsonschema
from referencing import Registry
from referencing.jsonschema import DRAFT202012

SCHEMAS = Path(__file__).parent / "data" / "napcat-response-schemas.json"
_ROOT = "urn:napcat-responses"

_NULL = {"type": "null"}
_OBJECTS = {"type": "array", "items": {"type": "object"}}
ERRATA: dict[str, tuple[dict[str, Any], str]] = {
    "get_msg": (
        {"$ref": f"{_ROOT}#/components/schemas/OB11Message"},
        "the document types `message` as an object; the code answers the message it builds for "
        "events, a segment array (or a CQ string), which the document's own OB11Message "
        "component describes",
    ),
    "fetch_custom_face_detail": (
        _OBJECTS,
        "the document says object (its generator writes any return type so); the code returns "
        "the kernel's emojiInfoList, an array",
    ),
    "get_doubt_friends_add_request": (
        _OBJECTS,
        "the document says object (its generator writes any return type so); the code returns "
        "an array of {flag, uin, nick, source, reason, msg, group_code, time, type}",
    ),
    "cancel_online_file": (
        _NULL,
        "the document says object; the code awaits msgService.cancelSendMsg, which returns "
        "nothing, so data is null",
    ),
    "refuse_online_file": (
        _NULL,
        "the document says object; the code awaits msgService.refuseGetRichMediaElement, which "
        "returns nothing, so data is null",
    ),
}
"""Action -> (the schema of the `data` NapCat's code really answers, why the document is wrong)."""

NEWER: dict[str, tuple[dict[str, Any], str]] = {
    action: (_NULL, "newer than the document; its handler declares Type.Null and returns null")
    for action in (
        "set_group_member_invite_policy",
        "set_group_member_permissions",
        "set_group_new_member_history_visibility",
    )
}
"""Actions NapCat's code has but its 4.18.13 document does not: action -> (the schema of the
`data` the code answers, where that comes from)."""


def extract(document: dict[str, Any]) -> dict[str, Any]:
    """`{"actions": {name: data schema}, "components": {"schemas": {…}}}` of an OpenAPI document
    in the form NapCat generates (each response an allOf of BaseResponse and `{data: …}`); an
    action whose response names no `data` gets `{}` (anything)."""
    actions: dict[str, Any] = {}
    for path, item in document["paths"].items():
        for operation in item.values():
            response = operation["responses"]["200"]["content"]["application/json"]["schema"]
            parts = response.get("allOf", [response])
            data = next(
                (p["properties"]["data"] for p in parts if "data" in p.get("properties", {})), {}
            )
            actions[path.lstrip("/")] = data
    components = document.get("components", {}).get("schemas", {})
    return {"actions": actions, "components": {"schemas": components}}


@functools.cache
def _document() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(SCHEMAS.read_text(encoding="utf-8"))
    return loaded


@functools.cache
def _registry() -> Registry:
    root = {"$id": _ROOT, **_document()}
    return Registry().with_resource(_ROOT, DRAFT202012.create_resource(root))


def actions() -> list[str]:
    """Every action NapCat's document describes."""
    return sorted(_document()["actions"])


def data_schema(action: str) -> dict[str, Any]:
    """The schema of `data` in a successful answer of `action` (ERRATA and NEWER first);
    KeyError for an action NapCat does not have."""
    if action in ERRATA:
        return ERRATA[action][0]
    if action in NEWER:
        return NEWER[action][0]
    schema: dict[str, Any] = _document()["actions"][action]
    return schema


def component_schema(name: str) -> dict[str, Any]:
    """A component schema by name, e.g. `OB11MessageOnlineFile` (a message segment)."""
    schema: dict[str, Any] = _document()["components"]["schemas"][name]
    return schema


def _validator(pointer: str) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator({"$ref": f"{_ROOT}#{pointer}"}, registry=_registry())


def _data_validator(action: str, errata: bool) -> jsonschema.Draft202012Validator:
    if errata and action in ERRATA:
        return jsonschema.Draft202012Validator(ERRATA[action][0], registry=_registry())
    if action in NEWER:
        return jsonschema.Draft202012Validator(NEWER[action][0], registry=_registry())
    _document()["actions"][action]  # KeyError for an action NapCat does not have
    return _validator(f"/actions/{action}")


def validate_data(action: str, data: Any) -> None:
    """Raise jsonschema.ValidationError when `data` does not match what NapCat answers."""
    _data_validator(action, errata=True).validate(data)


def errors(action: str, data: Any, errata: bool = True) -> list[jsonschema.ValidationError]:
    """Every way `data` differs from what NapCat answers for `action` (empty when it matches),
    in the order of the paths; `errata=False` checks against the document alone (and NEWER).
    KeyError for an action NapCat does not have."""
    found = _data_validator(action, errata).iter_errors(data)
    return sorted(found, key=lambda e: [str(p) for p in e.absolute_path])


def component_errors(name: str, value: Any) -> list[jsonschema.ValidationError]:
    """Every way `value` differs from component schema `name` (empty when it matches)."""
    component_schema(name)  # KeyError for an unknown component
    found = _validator(f"/components/schemas/{name}").iter_errors(value)
    return sorted(found, key=lambda e: [str(p) for p in e.absolute_path])


def validate_component(name: str, value: Any) -> None:
    """Raise jsonschema.ValidationError when `value` does not match component schema `name`."""
    component_schema(name)  # KeyError for an unknown component
    _validator(f"/components/schemas/{name}").validate(value)


if __name__ == "__main__":
    source = json.loads(Path(sys.argv[1]).read_text(encoding="utf-8"))
    text = json.dumps(extract(source), ensure_ascii=False, indent=1, sort_keys=True)
    SCHEMAS.write_text(text + "\n", encoding="utf-8")
    print(f"{SCHEMAS}: {len(source['paths'])} actions")
