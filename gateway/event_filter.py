"""Event filters: which OneBot events one subscriber receives.

Every adapter entry of the config (WebSocket server, HTTP POST client, ...) may set
``eventFilter``. Only the events the filter matches are sent to that adapter; with no
filter, every event is sent. The language is in the spirit of go-cqhttp's filter file.

Filters
-------
A filter is a JSON object. Each key is either a *field name* or an *operator* (a key
starting with ``.``). An event matches when **every** key of the object holds (AND).
The empty filter ``{}`` matches every event.

``"field": <string, number, boolean or null>``
    The event's field equals that value: ``{"post_type": "message"}``.
``"field": {...}``
    The object applies to the field's value. Its operator keys test that value; its
    field keys go one level deeper into it: ``{"sender": {"role": "admin"}}``.
    Nesting is written with objects; ``"sender.role"`` is a field literally named so.

A field that is absent (or a field looked up in something that is not an object) never
passes a positive test (a plain value, ``.eq``, ``.in``, ``.contains``, ``.regex``,
``.gt``, ``.gte``, ``.lt``, ``.lte``) and always passes ``.neq``. ``.not`` inverts its
filter, so ``{".not": {"group_id": 1}}`` matches an event without ``group_id``. A field
that is present with the value ``null`` is not absent: it equals ``null``.

Operators on a field's value
----------------------------
``.eq``: value
    The value equals the argument (a string, number, boolean or null).
``.neq``: value
    The value does not equal the argument, or the field is absent.
``.in``: array or string
    With an array of strings, numbers, booleans or nulls: the value equals one of them.
    With a string: the value is a substring of it (``{"message_type": {".in": "group
    private"}}``).
``.contains``: string, number, boolean or null
    The value is an array with an item equal to the argument, or a string that contains
    the argument as a substring.
``.regex``: string
    Python's ``re.search`` finds the pattern in the value; ``^`` anchors at the start.
    Flags go inline, e.g. ``(?i)`` for case-insensitive. Compiled when the config loads.
``.gt``, ``.gte``, ``.lt``, ``.lte``: number
    The value is a number greater than, at least, less than, at most the argument.

Numbers and strings
-------------------
OneBot implementations send ids both as numbers and as strings, so tests are lax:

* Equality (plain values, ``.eq``, ``.neq``, ``.in`` with an array, ``.contains`` on an
  array) treats a string spelled as a JSON number as that number: ``{"group_id": "123"}``
  matches ``"group_id": 123`` and ``{"group_id": 123}`` matches ``"group_id": "123"``;
  ``1``, ``1.0`` and ``"1.0"`` are equal. ``"0123"`` and ``" 123"`` are not numbers.
  Booleans are not numbers: ``true`` does not equal ``1`` nor ``"true"``.
* The text tests (``.in`` with a string, ``.contains`` on a non-array, ``.regex``) read a
  number value as its text: ``123`` is ``"123"``. Booleans, null, arrays and objects
  never pass a text test, except ``.contains`` on an array.
* ``.gt`` and friends accept a value that is a number or a string spelled as a JSON
  number; anything else fails them.
* Strings longer than 64 characters are never treated as numbers.

Logical operators
-----------------
``.and``: [filters]
    Every filter matches (``[]`` matches everything).
``.or``: [filters]
    At least one filter matches (``[]`` matches nothing).
``.not``: filter
    The filter does not match.

At the top level they combine filters on the event; inside a field they combine tests on
that field's value: ``{"user_id": {".or": [{".lt": 10000}, {".in": [80000000]}]}}``.
Their items are always filter objects. The value operators only make sense inside a
field, so ``{".eq": 1}`` at the top level is an error.

Errors
------
Every mistake is reported when the config loads, as a :class:`FilterError` naming where
it is in the filter: ``.or[1].raw_message.regex: invalid regular expression: ...``.

Example: group messages that start with ``/`` or mention the bot 10001::

    {"post_type": "message", "message_type": "group",
     ".or": [{"raw_message": {".regex": "^/"}},
             {"raw_message": {".contains": "[CQ:at,qq=10001]"}}]}
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final

from gateway.protocol.jsonio import type_name

__all__ = ["MATCH_ALL", "EventFilter", "FilterError", "compile_filter"]

_Predicate = Callable[[Any], bool]
# A hashable stand-in for a scalar under the lax equality; two scalars are equal iff
# their keys are. Tags keep booleans, numbers, strings and null apart.
_Key = tuple[int, object]
_BOOL, _NUMBER, _STRING, _NULL = range(4)

_JSON_NUMBER: Final = re.compile(r"-?(?:0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?")
# Caps the cost of the number check on long texts (raw_message) and keeps int() away
# from its quadratic, size-limited path; no id or timestamp comes near this length.
_MAX_NUMBER_LENGTH: Final = 64
_NUMBER_START: Final = frozenset("-0123456789")


class _Missing:
    """The value of an absent field; equal to nothing, not an object, not a text."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<missing>"


_MISSING: Final = _Missing()


class FilterError(ValueError):
    """A filter spec that cannot be compiled.

    ``path`` locates the mistake inside the spec (``.or[1].raw_message.regex``; empty for
    the spec itself) and ``reason`` says what is wrong; ``str()`` is ``"path: reason"``.
    """

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path or '<filter>'}: {reason}")
        self.path = path
        self.reason = reason


class EventFilter:
    """A compiled, immutable event predicate; build one with :func:`compile_filter`.

    ``spec`` is a plain-JSON copy of the spec it was compiled from. Two filters are equal
    (and hash alike) when their specs are equal as JSON, where ``true`` differs from
    ``1`` (unlike Python's ``True == 1``) and key order does not matter.
    """

    __slots__ = ("_identity", "_predicate", "spec")
    spec: Mapping[str, Any]
    _predicate: _Predicate
    _identity: object

    def __init__(self, spec: Mapping[str, Any], predicate: _Predicate) -> None:
        object.__setattr__(self, "spec", spec)
        object.__setattr__(self, "_predicate", predicate)
        object.__setattr__(self, "_identity", _canonical(spec))

    def __call__(self, event: Mapping[str, Any]) -> bool:
        """Return whether ``event`` matches; never raises for any JSON-like event."""
        return self._predicate(event)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"EventFilter is immutable; cannot set {name!r}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"EventFilter is immutable; cannot delete {name!r}")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, EventFilter):
            return NotImplemented
        return bool(self._identity == other._identity)

    def __hash__(self) -> int:
        return hash(self._identity)

    def __repr__(self) -> str:
        return f"EventFilter({self.spec!r})"


def compile_filter(spec: Mapping[str, Any]) -> EventFilter:
    """Validate ``spec`` entirely and compile it into an :class:`EventFilter`.

    Raises :class:`FilterError` for anything the module docstring does not allow. Later
    changes to ``spec`` do not affect the returned filter.
    """
    if not isinstance(spec, Mapping):
        raise FilterError("", f"expected a filter object, got {type_name(spec)}")
    plain = _plain_copy(spec)
    return EventFilter(plain, _compile_object(plain, "", in_field=False))


# --- values under the lax rules --------------------------------------------------------


def _number_of(value: object) -> int | float | None:
    """The number ``value`` stands for: a JSON number, or a string spelled as one."""
    kind = type(value)
    # Exact-type checks first: events come from a JSON decoder, and isinstance is slower.
    if kind is int or kind is float:
        return value  # type: ignore[return-value]
    if kind is not str and isinstance(value, bool):
        return None
    if kind is not str and isinstance(value, int | float):
        return value
    if (
        isinstance(value, str)
        and 0 < len(value) <= _MAX_NUMBER_LENGTH
        and value[0] in _NUMBER_START
        and (match := _JSON_NUMBER.fullmatch(value)) is not None
    ):
        return float(value) if match.group(1) or match.group(2) else int(value)
    return None


def _key(value: object) -> _Key | None:
    """The equality key of a scalar; None for anything never equal to a scalar."""
    if isinstance(value, bool):
        return (_BOOL, value)
    number = _number_of(value)
    if number is not None:
        return (_NUMBER, number)
    if isinstance(value, str):
        return (_STRING, value)
    if value is None:
        return (_NULL, None)
    return None


def _as_text(value: object) -> str | None:
    """The text a text test reads: strings as they are, numbers spelled out."""
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return None


def _is_scalar(value: object) -> bool:
    return value is None or isinstance(value, str | int | float)


def _plain_copy(value: object) -> Any:
    """Deep-copy a JSON-like value into dicts and lists, so the spec cannot drift."""
    if isinstance(value, Mapping):
        return {key: _plain_copy(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain_copy(item) for item in value]
    return value


def _canonical(value: object) -> object:
    """A hashable form of a JSON value, equal for equal JSON (``true`` is not ``1``)."""
    if isinstance(value, Mapping):
        return ("object", tuple(sorted((str(k), _canonical(v)) for k, v in value.items())))
    if isinstance(value, list | tuple):
        return ("array", tuple(_canonical(item) for item in value))
    if isinstance(value, bool):
        return ("boolean", value)
    if isinstance(value, int | float):
        return ("number", value)
    return (type(value).__name__, value)


# --- compiling the structure -----------------------------------------------------------


def _compile_object(spec: object, path: str, *, in_field: bool) -> _Predicate:
    """Compile one filter object; ``in_field`` is False when it applies to the event."""
    if not isinstance(spec, Mapping):
        raise FilterError(path, f"expected a filter object, got {type_name(spec)}")
    predicates: list[_Predicate] = []
    for key, arg in spec.items():
        if not isinstance(key, str):
            raise FilterError(path, f"keys must be strings, got {type_name(key)} {key!r}")
        if key.startswith("."):
            predicates.append(_compile_operator(key, arg, path + key, in_field=in_field))
        else:
            predicates.append(_compile_field(key, arg, f"{path}.{key}"))
    return _all_of(predicates)


def _compile_field(name: str, arg: object, path: str) -> _Predicate:
    """``"name": arg``: look the field up, then test it with ``arg``."""
    if isinstance(arg, Mapping):
        test = _compile_object(arg, path, in_field=True)
    elif _is_scalar(arg):
        test = _equals(arg)
    else:
        hint = " (use .in to list the allowed values)" if type_name(arg) == "array" else ""
        raise FilterError(
            path,
            f"expected a string, number, boolean, null or filter object, "
            f"got {type_name(arg)}{hint}",
        )

    def field(value: object) -> bool:
        # The exact-type check is the fast path: events are dicts from a JSON decoder.
        if type(value) is dict or isinstance(value, Mapping):
            return test(value.get(name, _MISSING))
        return test(_MISSING)

    return field


def _compile_operator(op: str, arg: object, path: str, *, in_field: bool) -> _Predicate:
    """One operator key; value operators need a field to test."""
    if op in _LOGICAL_OPERATORS:
        return _compile_logical(op, arg, path, in_field=in_field)
    build = _VALUE_OPERATORS.get(op)
    if build is None:
        raise FilterError(path, f"unknown operator {op!r} (expected one of {_OPERATOR_LIST})")
    if not in_field:
        raise FilterError(
            path,
            f"{op} tests a field's value, so it belongs inside a field, "
            f'e.g. {{"user_id": {{"{op}": ...}}}}',
        )
    return build(arg, path)


def _compile_logical(op: str, arg: object, path: str, *, in_field: bool) -> _Predicate:
    """``.and`` / ``.or`` over an array of filters, ``.not`` over one filter."""
    if op == ".not":
        inner = _compile_object(arg, path, in_field=in_field)

        def negation(value: object) -> bool:
            return not inner(value)

        return negation
    if not isinstance(arg, list | tuple):
        raise FilterError(path, f"expected an array of filters, got {type_name(arg)}")
    items = [
        _compile_object(item, f"{path}[{index}]", in_field=in_field)
        for index, item in enumerate(arg)
    ]
    return _all_of(items) if op == ".and" else _any_of(items)


def _always(value: object) -> bool:
    return True


def _never(value: object) -> bool:
    return False


def _all_of(predicates: Iterable[_Predicate]) -> _Predicate:
    """Conjunction, short-circuiting in spec order; avoids a wrapper for 0 or 1 items."""
    tests = tuple(predicates)
    if not tests:
        return _always
    if len(tests) == 1:
        return tests[0]

    def all_of(value: object) -> bool:
        # A plain loop: all() over a generator is about 2.5x slower here, per event.
        for test in tests:  # noqa: SIM110
            if not test(value):
                return False
        return True

    return all_of


def _any_of(predicates: Iterable[_Predicate]) -> _Predicate:
    """Disjunction, short-circuiting in spec order; avoids a wrapper for 0 or 1 items."""
    tests = tuple(predicates)
    if not tests:
        return _never
    if len(tests) == 1:
        return tests[0]

    def any_of(value: object) -> bool:
        # A plain loop: any() over a generator is about 2.5x slower here, per event.
        for test in tests:  # noqa: SIM110
            if test(value):
                return True
        return False

    return any_of


# --- value operators -------------------------------------------------------------------


def _require_scalar(arg: object, path: str) -> None:
    if not _is_scalar(arg):
        raise FilterError(path, f"expected a string, number, boolean or null, got {type_name(arg)}")


def _equals(arg: object) -> _Predicate:
    """The value equals the scalar ``arg`` under the lax rules.

    Specialised by the kind of ``arg`` (same result as comparing ``_key``s, which costs
    a tuple and a number check per event).
    """
    expected = _key(arg)
    assert expected is not None, "callers pass scalars only"
    kind, target = expected
    if kind == _STRING:
        # ``target`` is not spelled as a number, so neither is an equal string.
        def equals_text(value: object) -> bool:
            return value == target and isinstance(value, str)

        return equals_text
    if kind == _NUMBER:

        def equals_number(value: object) -> bool:
            return _number_of(value) == target

        return equals_number

    # true, false and null are singletons.
    def is_target(value: object) -> bool:
        return value is target

    return is_target


def _build_eq(arg: object, path: str) -> _Predicate:
    _require_scalar(arg, path)
    return _equals(arg)


def _build_neq(arg: object, path: str) -> _Predicate:
    _require_scalar(arg, path)
    equals = _equals(arg)

    def not_equals(value: object) -> bool:
        return not equals(value)

    return not_equals


def _build_in(arg: object, path: str) -> _Predicate:
    """Membership in an array (by lax equality) or in a string (as a substring)."""
    if isinstance(arg, str):
        haystack = arg

        def in_text(value: object) -> bool:
            text = _as_text(value)
            return text is not None and text in haystack

        return in_text
    if not isinstance(arg, list | tuple):
        raise FilterError(path, f"expected an array or a string, got {type_name(arg)}")
    for index, item in enumerate(arg):
        _require_scalar(item, f"{path}[{index}]")
    # A set keeps long allow-lists (hundreds of group ids) O(1) per event.
    allowed = frozenset(_key(item) for item in arg)

    def in_array(value: object) -> bool:
        return _key(value) in allowed

    return in_array


def _build_contains(arg: object, path: str) -> _Predicate:
    """An array with an item equal to ``arg``, or a text containing ``arg``."""
    _require_scalar(arg, path)
    expected = _key(arg)
    needle = _as_text(arg)

    def contains(value: object) -> bool:
        if isinstance(value, list | tuple):
            return any(_key(item) == expected for item in value)
        text = _as_text(value)
        return needle is not None and text is not None and needle in text

    return contains


def _build_regex(arg: object, path: str) -> _Predicate:
    if not isinstance(arg, str):
        raise FilterError(path, f"expected a string (a regular expression), got {type_name(arg)}")
    try:
        pattern = re.compile(arg)
    except re.error as exc:
        raise FilterError(path, f"invalid regular expression: {exc}") from exc

    def regex(value: object) -> bool:
        text = _as_text(value)
        return text is not None and pattern.search(text) is not None

    return regex


def _comparison(compare: Callable[[Any, Any], bool]) -> Callable[[object, str], _Predicate]:
    """A builder for one of ``.gt`` ``.gte`` ``.lt`` ``.lte``, comparing with ``compare``."""

    def build(arg: object, path: str) -> _Predicate:
        if isinstance(arg, bool) or not isinstance(arg, int | float):
            raise FilterError(path, f"expected a number, got {type_name(arg)}")
        bound = arg

        def compares(value: object) -> bool:
            number = _number_of(value)
            return number is not None and compare(number, bound)

        return compares

    return build


_VALUE_OPERATORS: Final[Mapping[str, Callable[[object, str], _Predicate]]] = {
    ".eq": _build_eq,
    ".neq": _build_neq,
    ".in": _build_in,
    ".contains": _build_contains,
    ".regex": _build_regex,
    ".gt": _comparison(operator.gt),
    ".gte": _comparison(operator.ge),
    ".lt": _comparison(operator.lt),
    ".lte": _comparison(operator.le),
}
_LOGICAL_OPERATORS: Final = frozenset({".and", ".or", ".not"})
_OPERATOR_LIST: Final = ", ".join(sorted({*_VALUE_OPERATORS, *_LOGICAL_OPERATORS}))

MATCH_ALL: Final = compile_filter({})
"""The filter that matches every event (the compiled ``{}``)."""
