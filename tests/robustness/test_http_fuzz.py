"""HTTP fuzz: every bad input gets an envelope (200, or a 4xx with 1400/1403), never a 5xx or
silence, and the gateway process survives it all (DESIGN.md, "Robustness rules").

Requests are raw bytes on asyncio streams (tests/robustness/rawhttp.py), so inputs a real client
refuses to send (non-UTF-8 headers, bad Content-Length, `OPTIONS *`) reach the server. Every
call is counted in FIGURES["http"]; the module's last test asserts the figures and that a normal
call still answers 0 on the same process.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.actions import default_catalog
from tests.robustness.conftest import (
    FEW,
    FIGURES,
    FUZZ,
    HTTP_MAX_BODY,
    SCALE,
    TOKEN,
    FuzzedGateway,
)
from tests.robustness.rawhttp import (
    ANSWER_TIMEOUT,
    OK_RETCODES,
    Answer,
    exchange,
    problem,
    read_answer,
    request,
    shut,
)

JSON_CT = (b"Content-Type", b"application/json")
FORM_CT = (b"Content-Type", b"application/x-www-form-urlencoded")
Expectation = Callable[[Answer], str | None]


async def send(
    gw: FuzzedGateway,
    label: str,
    data: bytes,
    expect: Expectation | None = None,
    *,
    half_close: bool = False,
    no_content: bool = False,
) -> str | None:
    """One counted call; the contract breach it shows (recorded in FIGURES), or None."""
    figures = FIGURES["http"]
    figures.calls += 1
    answer = await exchange(gw.http_port, data, half_close=half_close)
    if answer is None and half_close:
        # A client that half-closes before its body is complete has left mid-request: the
        # server closing the connection (no answer, nothing logged as an error) is clean.
        return None
    if answer is None:
        figures.unanswered += 1
    elif answer.status >= 500:
        figures.server_errors += 1
    if no_content and answer is not None and answer.status == 204 and not answer.body:
        return None
    wrong = problem(answer)
    if wrong is None and expect is not None:
        assert answer is not None
        wrong = expect(answer)
    if wrong is not None:
        figures.breach(label, f"[{shown(data)}]: {wrong}")
    return wrong


def shown(data: bytes, limit: int = 160) -> str:
    text = data.decode("utf-8", "backslashreplace").replace("\r\n", "⏎")
    return text if len(text) <= limit else f"{text[:limit]}… ({len(data)} bytes)"


def post(
    body: bytes | str,
    path: str | bytes = "/get_login_info",
    *,
    headers: tuple[tuple[bytes, bytes], ...] = (JSON_CT,),
    **options: Any,
) -> bytes:
    return request("POST", path, body, headers, token=TOKEN, **options)


def get(target: str | bytes, **options: Any) -> bytes:
    return request("GET", target, **{"token": TOKEN, **options})


# --- expectations ----------------------------------------------------------------------------


def status(*allowed: int) -> Expectation:
    def check(answer: Answer) -> str | None:
        return None if answer.status in allowed else f"expected HTTP {allowed}, got {answer}"

    return check


def retcode(*allowed: int, http: int = 200) -> Expectation:
    def check(answer: Answer) -> str | None:
        got = answer.json()["retcode"]
        if answer.status == http and got in allowed:
            return None
        return f"expected HTTP {http} with retcode {allowed}, got {answer}"

    return check


def echoes(value: Any, code: int = 0) -> Expectation:
    """retcode `code` and the echo back verbatim (compared as parsed JSON, type included)."""

    def check(answer: Answer) -> str | None:
        body = answer.json()
        if answer.status != 200 or body["retcode"] != code:
            return f"expected retcode {code}, got {answer}"
        if not same_json(body["echo"], value):
            return f"echo {value!r} came back as {body['echo']!r}"
        return None

    return check


def echoes_or_refused(value: Any) -> Expectation:
    """The echo back verbatim, or the call refused up front (1400): never run and then failed."""
    verbatim = echoes(value)

    def check(answer: Answer) -> str | None:
        if answer.status == 200 and answer.json()["retcode"] == 1400:
            return None
        return verbatim(answer)

    return check


def deep_echo(depth: int) -> Expectation:
    """`echoes_or_refused` for an echo too deep to compare as parsed JSON: compared as text."""

    def check(answer: Answer) -> str | None:
        body = answer.json()
        if answer.status == 200 and body["retcode"] == 1400:
            return None
        echoed = json.dumps(body["echo"], separators=(",", ":"))
        if answer.status == 200 and body["retcode"] == 0 and echoed == nested(depth):
            return None
        return f"expected the echo {depth} deep back, or 1400; got {answer}"

    return check


def either(*expectations: Expectation) -> Expectation:
    """Any one of the expectations met."""

    def check(answer: Answer) -> str | None:
        problems = [expect(answer) for expect in expectations]
        return None if None in problems else " / ".join(p for p in problems if p)

    return check


def same_json(a: Any, b: Any) -> bool:
    """Equal as JSON values: 1 and 1.0 and True are three different things."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same_json(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same_json(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a):
        return math.isnan(b)
    return type(a) is type(b) and a == b


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


@dataclass(frozen=True)
class Case:
    label: str
    data: bytes
    expect: Expectation | None = None
    half_close: bool = False
    no_content: bool = False
    """A bodiless 204 is a right answer too (it cannot carry an envelope)."""


def cases(*items: Case) -> Any:
    return pytest.mark.parametrize("case", items, ids=[item.label for item in items])


async def run_case(gw: FuzzedGateway, case: Case) -> None:
    wrong = await send(
        gw,
        case.label,
        case.data,
        case.expect,
        half_close=case.half_close,
        no_content=case.no_content,
    )
    assert wrong is None, f"{case.label} [{shown(case.data)}]: {wrong}"


# --- bodies ----------------------------------------------------------------------------------

BODIES = cases(
    Case("non-UTF-8 body", post(b"\xff\xfe\xfd{"), retcode(1400)),
    Case("non-UTF-8 inside a JSON string", post(b'{"echo": "\xff\xc0"}'), status(200)),
    Case("overlong UTF-8 encoding", post(b'{"echo": "\xc0\xaf"}'), status(200)),
    Case("NUL bytes", post(b"\x00" * 64), retcode(1400)),
    Case("UTF-16 JSON", post('{"echo": 1}'.encode("utf-16")), status(200)),
    Case("UTF-8 BOM then JSON", post(b'\xef\xbb\xbf{"echo": 1}'), status(200)),
    Case("empty body, no content type", post(b"", headers=()), echoes(None)),
    Case("whitespace body", post(b" \r\n\t "), echoes(None)),
    Case("deep nesting: [ x depth", post("[" * SCALE.depth), retcode(1400)),
    Case('deep nesting: {"a": x depth', post('{"a":' * (SCALE.depth // 5)), retcode(1400)),
    Case("deep but balanced array", post(nested(SCALE.depth)), retcode(1400)),
    Case(
        "echo nested 100 deep", post(f'{{"echo": {nested(100)}}}'), echoes(json.loads(nested(100)))
    ),
    Case(
        "echo nested 300 deep",
        post(f'{{"echo": {nested(300)}}}'),
        echoes_or_refused(json.loads(nested(300))),
    ),
    Case("echo nested 1000 deep", post(f'{{"echo": {nested(1000)}}}'), deep_echo(1000)),
    Case("echo nested 2000 deep", post(f'{{"echo": {nested(2000)}}}'), deep_echo(2000)),
    # Beyond 64 bits an integer cannot come back exactly (orjson reads it as a float): refused.
    Case("echo 10**30", post('{"echo": 1000000000000000000000000000000}'), retcode(1400)),
    Case("echo -(10**30)", post('{"echo": -1000000000000000000000000000000}'), retcode(1400)),
    Case("echo 2**64", post(f'{{"echo": {2**64}}}'), retcode(1400)),
    Case("echo 2**64 - 1", post(f'{{"echo": {2**64 - 1}}}'), echoes(2**64 - 1)),
    Case("echo -(2**63)", post(f'{{"echo": {-(2**63)}}}'), echoes(-(2**63))),
    Case("echo 5000 digits", post('{"echo": 1' + "0" * 5000 + "}"), status(200)),
    Case("echo 1e400", post('{"echo": 1e400}'), status(200)),
    Case("echo -1e400", post('{"echo": -1e400}'), status(200)),
    Case("echo 1e-400", post('{"echo": 1e-400}'), status(200)),
    Case("user_id 1e400", post('{"user_id": 1e400}', "/get_stranger_info"), retcode(1400)),
    Case(
        "user_id 10**30", post('{"user_id": 1' + "0" * 30 + "}", "/get_stranger_info"), status(200)
    ),
    Case("group_id -(2**64)", post(f'{{"group_id": {-(2**64)}}}', "/get_group_info"), status(200)),
    Case("echo NaN", post('{"echo": NaN}'), status(200)),
    Case("echo Infinity", post('{"echo": Infinity}'), status(200)),
    Case("echo -Infinity", post('{"echo": -Infinity}'), status(200)),
    Case("user_id NaN", post('{"user_id": NaN}', "/get_stranger_info"), retcode(1400)),
    Case(
        "times Infinity", post('{"user_id": 20001, "times": Infinity}', "/send_like"), status(200)
    ),
    Case("duplicate keys", post('{"echo": 1, "echo": 2}'), status(200)),
    Case(
        "duplicate keys, types differ",
        post('{"user_id": 1, "user_id": "x"}', "/get_stranger_info"),
        status(200),
    ),
    Case("JSON5 unquoted key", post("{echo: 1}"), echoes(1)),
    Case("JSON5 single quotes", post("{'echo': 'a\"b'}"), echoes('a"b')),
    Case("JSON5 trailing commas", post('{"echo": [1, 2,],}'), echoes([1, 2])),
    Case("JSON5 comments", post('// line\n{"echo": /* inline */ 1} /* end */'), echoes(1)),
    Case("JSON5 hex number", post('{"echo": 0x1F}'), echoes(31)),
    Case("JSON5 negative hex", post('{"echo": -0xff}'), echoes(-255)),
    Case("JSON5 leading plus and dot", post('{"echo": [+1, .5, 5.]}'), echoes([1, 0.5, 5.0])),
    Case("JSON5 escaped line break in a string", post("{echo: 'a\\\nb'}"), echoes("ab")),
    Case("JSON5 \\x escape", post("{echo: '\\x41'}"), echoes("A")),
    Case("JSON5 huge hex", post('{"echo": 0x' + "f" * 40 + "}"), status(200)),
    Case("JSON5 bad hex", post("{echo: 0x}"), retcode(1400)),
    Case("JSON5 unterminated comment", post('{"echo": 1 /* '), retcode(1400)),
    Case("JSON5 unterminated string", post("{echo: 'abc"), retcode(1400)),
    Case("JSON5 64 KB of unquoted keys", post("{" + "a:1," * 16000 + "}"), status(200)),
    Case(
        "JSON5 64 KB single-quoted string",
        post("{echo: '" + "x" * 65000 + "'}"),
        echoes("x" * 65000),
    ),
    Case("array body", post("[]"), retcode(1400)),
    Case("array of objects", post('[{"echo": 1}]'), retcode(1400)),
    Case("string body", post('"get_login_info"'), retcode(1400)),
    Case("number body", post("12"), retcode(1400)),
    Case("null body", post("null"), retcode(1400)),
    Case("true body", post("true"), retcode(1400)),
    Case("JSON5 string body", post("'x'"), retcode(1400)),
    Case("lone high surrogate echo", post('{"echo": "\\ud800"}'), status(200)),
    Case("lone low surrogate echo", post('{"echo": "a\\udfffb"}'), status(200)),
    Case("reversed surrogate pair echo", post('{"echo": "\\udc00\\ud800"}'), status(200)),
    Case("lone surrogate key", post('{"\\ud800": 1, "echo": 7}'), status(200)),
    Case("lone surrogate nested key", post('{"echo": {"\\udc00": 1}}'), status(200)),
    Case(
        "lone surrogate param", post('{"user_id": "\\ud800"}', "/get_stranger_info"), retcode(1400)
    ),
    Case(
        "lone surrogate message",
        post('{"user_id": 20001, "message": "hi \\ud800"}', "/send_private_msg"),
        status(200),
    ),
    Case("lone surrogate, JSON5 fallback", post("{echo: '\\ud800',}"), status(200)),
    Case("CESU-8 surrogate bytes", post(b'{"echo": "\xed\xa0\x80"}'), status(200)),
    Case("lone surrogate in the query", get("/get_login_info?echo=%ED%A0%80"), status(200)),
    Case("lone surrogate query key", get("/get_login_info?%ED%A0%80=1"), status(200)),
    Case(
        "query overriding a body echo", post('{"echo": 1}', "/get_login_info?echo=%FF"), status(200)
    ),
)


@BODIES
async def test_bodies(fuzzed_gateway: FuzzedGateway, case: Case) -> None:
    await run_case(fuzzed_gateway, case)


# --- paths and methods -----------------------------------------------------------------------

PATHS = cases(
    Case("/..", get("/.."), retcode(1404)),
    Case("/../get_login_info", get("/../get_login_info"), status(200)),
    Case("//", get("//"), status(200)),
    Case("//get_login_info", get("//get_login_info"), status(200)),
    Case("/./get_login_info", get("/./get_login_info"), status(200)),
    Case("trailing segments", get("/get_login_info/a/b"), status(200)),
    Case("8000-byte path", get("/" + "a" * 8000), retcode(1404)),
    Case("100 KB path", get("/" + "a" * 100_000), status(400, 404, 414)),
    Case("percent garbage", get("/%ff%00%zz"), status(200)),
    Case("lone percent", get("/%"), status(200)),
    Case("percent-encoded dots", get("/%2e%2e/%2e%2e"), status(200)),
    Case("percent-encoded NUL action", get("/get_login_info%00"), status(200)),
    Case("raw non-UTF-8 path", get(b"/\xff\xfe"), status(200, 400)),
    Case("absolute-form target", get("http://127.0.0.1/get_login_info"), status(200)),
    Case("absolute-form, other host", get("http://example.invalid:1/get_login_info"), status(200)),
    Case("query only", get("?echo=1"), status(200, 400)),
    # RFC 9110 §9.3.7: `OPTIONS *` asks about the server, not a resource; 204 + Allow is the
    # answer HttpServer chose (0d69156). A 405 + 1400 envelope (README's table) would do as well.
    Case(
        "OPTIONS *", request("OPTIONS", "*", token=TOKEN), retcode(1400, http=405), no_content=True
    ),
    Case("OPTIONS * without a token", request("OPTIONS", "*"), retcode(1403, http=403)),
    Case("GET *", get("*"), status(200, 400, 404)),
    Case("CONNECT", request("CONNECT", "127.0.0.1:443", token=TOKEN), status(400, 405)),
    Case("DELETE", request("DELETE", "/get_login_info", token=TOKEN), retcode(1400, http=405)),
    Case("PUT with a body", request("PUT", "/get_login_info", "{}", token=TOKEN), status(405)),
    Case("TRACE", request("TRACE", "/", token=TOKEN), status(200, 405)),
    Case("lower-case method", request("get", "/get_login_info", token=TOKEN), status(405, 400)),
    # The HTTP parser knows the registered methods only: others are malformed requests (400).
    Case("made-up method", request("FROB", "/get_login_info", token=TOKEN), status(400, 405)),
    Case("non-token method", request(b"G\xffT", "/get_login_info", token=TOKEN), status(400, 405)),
    Case("HTTP/1.0", get("/get_login_info", version=b"HTTP/1.0"), retcode(0)),
    Case("HTTP/0.9 style", b"GET /get_login_info\r\n\r\n", status(400, 403, 505)),
    Case("HTTP/2.0 version", get("/get_login_info", version=b"HTTP/2.0"), status(200, 400, 505)),
    Case("HTTP/9.9 version", get("/get_login_info", version=b"HTTP/9.9"), status(400, 505)),
    Case("HTTP/2 preface", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", status(400, 405, 505)),
    Case("garbage request line", b"\xff\xfe\xfd garbage\r\n\r\n", status(400)),
    Case("TLS hello", bytes.fromhex("160301002a0100002603") + b"\x00" * 40, status(400)),
)


@PATHS
async def test_paths_and_methods(fuzzed_gateway: FuzzedGateway, case: Case) -> None:
    await run_case(fuzzed_gateway, case)


async def test_head_is_answered_without_a_body(fuzzed_gateway: FuzzedGateway) -> None:
    """HEAD cannot carry an envelope (RFC 9110); it must still be answered, and not with 5xx."""
    figures = FIGURES["http"]
    figures.calls += 1
    reader, writer = await asyncio.open_connection("127.0.0.1", fuzzed_gateway.http_port)
    try:
        writer.write(request("HEAD", "/get_login_info", token=TOKEN))
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), ANSWER_TIMEOUT)
    except (TimeoutError, asyncio.IncompleteReadError):
        figures.unanswered += 1
        figures.breach("HEAD /get_login_info", ": no answer")
        raise
    finally:
        await shut(writer)
    code = int(head.split()[1])
    if code >= 500:
        figures.server_errors += 1
        figures.breach("HEAD /get_login_info", f": HTTP {code}")
    assert code in (200, 405), head


# --- headers ---------------------------------------------------------------------------------

BIG = b"a" * 100_000
HEADERS = cases(
    Case(
        "non-UTF-8 bearer token", get("/get_login_info", token=b"\xff\xfe"), retcode(1403, http=403)
    ),
    Case(
        "valid token then non-UTF-8",
        get("/get_login_info", token=TOKEN.encode() + b"\xff"),
        retcode(1403, http=403),
    ),
    Case(
        "non-UTF-8 bare Authorization",
        request("GET", "/get_login_info", headers=[(b"Authorization", b"\xc3\x28")]),
        retcode(1403, http=403),
    ),
    Case(
        "Token scheme, non-UTF-8",
        request("GET", "/get_login_info", headers=[(b"Authorization", b"Token \x80")]),
        retcode(1403, http=403),
    ),
    Case(
        "non-UTF-8 access_token",
        request("GET", "/get_login_info?access_token=%FF"),
        retcode(1403, http=403),
    ),
    Case(
        "raw non-UTF-8 access_token",
        request("GET", b"/get_login_info?access_token=\xff"),
        status(400, 403),
    ),
    Case(
        "CESU-8 surrogate token",
        request("GET", "/get_login_info", headers=[(b"Authorization", b"Bearer \xed\xa0\x80")]),
        retcode(1403, http=403),
    ),
    Case("huge Authorization", get("/get_login_info", token=BIG), status(400, 403, 431)),
    Case("huge header", get("/get_login_info", headers=[(b"X-Big", BIG)]), status(400, 431)),
    Case(
        "many headers",
        get("/get_login_info", headers=[(b"X-H%d" % i, b"v") for i in range(2000)]),
        status(400, 431),
    ),
    Case("non-token header name", get("/get_login_info", headers=[(b"X\xff", b"1")]), status(400)),
    Case(
        "NUL in a header", get("/get_login_info", headers=[(b"X-A", b"a\x00b")]), status(400, 200)
    ),
    Case(
        "obsolete line folding",
        get("/get_login_info", headers=[(b"X-A", b"a\r\n b")]),
        status(400, 200),
    ),
    Case(
        "header without colon",
        get("/get_login_info").replace(b"\r\nConnection:", b"\r\nNoColonHere\r\nConnection:"),
        status(400, 200),
    ),
    Case(
        "non-UTF-8 Origin",
        get("/get_login_info", headers=[(b"Origin", b"http://\xff")]),
        retcode(0),
    ),
    Case("non-UTF-8 Host", get("/get_login_info", headers=[(b"Host", b"\xff")]), status(200, 400)),
    Case(
        "Content-Length: abc",
        post(b"", headers=(JSON_CT, (b"Content-Length", b"abc")), content_length=False),
        status(400),
    ),
    Case(
        "Content-Length: -1",
        post(b"", headers=(JSON_CT, (b"Content-Length", b"-1")), content_length=False),
        status(400),
    ),
    Case(
        "Content-Length: 1, 2",
        post(b"", headers=(JSON_CT, (b"Content-Length", b"1, 2")), content_length=False),
        status(400),
    ),
    Case(
        "two different Content-Lengths",
        post("{}", headers=(JSON_CT, (b"Content-Length", b"2"), (b"Content-Length", b"3"))),
        status(400),
    ),
    Case(
        "Content-Length of 10**30",
        post(b"", headers=(JSON_CT, (b"Content-Length", b"1" + b"0" * 30)), content_length=False),
        status(400, 413),
    ),
    Case(
        "Content-Length over maxBodySize",
        post(b"", headers=(JSON_CT, (b"Content-Length", b"%d" % (HTTP_MAX_BODY + 1)))),
        retcode(1400, http=413),
    ),
    Case(
        "Content-Length longer than the body, then EOF",
        post(b"{}", headers=(JSON_CT, (b"Content-Length", b"100")), content_length=False),
        status(400),
        half_close=True,
    ),
    Case(
        "Content-Length shorter than the body",
        post(
            b'{"echo": 1}garbage',
            headers=(JSON_CT, (b"Content-Length", b"11")),
            content_length=False,
        ),
        # Bytes after the body of a `Connection: close` request are refused by the parser
        # (request smuggling looks like this); answering the first request is fine too.
        either(echoes(1), retcode(1400, http=400)),
    ),
    Case(
        "Content-Length with chunked",
        post(
            b"2\r\n{}\r\n0\r\n\r\n",
            headers=(JSON_CT, (b"Transfer-Encoding", b"chunked"), (b"Content-Length", b"5")),
        ),
        status(400, 200),
    ),
    Case(
        "chunked body",
        post(
            b'b\r\n{"echo": 1}\r\n0\r\n\r\n',
            headers=(JSON_CT, (b"Transfer-Encoding", b"chunked")),
            content_length=False,
        ),
        echoes(1),
    ),
    Case(
        "bad chunk size",
        post(
            b"zz\r\n{}\r\n0\r\n\r\n",
            headers=(JSON_CT, (b"Transfer-Encoding", b"chunked")),
            content_length=False,
        ),
        status(400),
    ),
    Case(
        "chunked over maxBodySize",
        post(
            b"%x\r\n" % (HTTP_MAX_BODY + 10) + b" " * (HTTP_MAX_BODY + 10) + b"\r\n0\r\n\r\n",
            headers=(JSON_CT, (b"Transfer-Encoding", b"chunked")),
            content_length=False,
        ),
        retcode(1400, http=413),
    ),
    Case(
        "Transfer-Encoding: gzip",
        post(b"{}", headers=(JSON_CT, (b"Transfer-Encoding", b"gzip")), content_length=False),
        status(400, 501),
    ),
    Case(
        "Content-Encoding: gzip, plain body",
        post(b'{"echo": 1}', headers=(JSON_CT, (b"Content-Encoding", b"gzip"))),
        status(200, 400, 415),
    ),
    Case(
        "Content-Type charset=latin-1",
        post(
            b'{"echo": "\xe9"}', headers=((b"Content-Type", b"application/json; charset=latin-1"),)
        ),
        status(200),
    ),
    Case(
        "non-UTF-8 Content-Type",
        post(b'{"echo": 1}', headers=((b"Content-Type", b"\xff/\xfe"),)),
        status(200),
    ),
    Case(
        "text/plain JSON",
        post(b'{"echo": 1}', headers=((b"Content-Type", b"text/plain"),)),
        echoes(1),
    ),
    Case(
        "multipart without boundary",
        post(b"--x\r\n", headers=((b"Content-Type", b"multipart/form-data"),)),
        retcode(1400),
    ),
    Case(
        "multipart with garbage",
        post(b"\xff\xfe", headers=((b"Content-Type", b"multipart/form-data; boundary=x"),)),
        retcode(1400),
    ),
    Case("urlencoded %%%&&&===\\xff", post(b"%%%&&&===\xff", headers=(FORM_CT,)), status(200)),
    Case("urlencoded a=%ff", post(b"a=%ff&echo=1", headers=(FORM_CT,)), status(200)),
    Case("urlencoded raw \\xff", post(b"echo=\xff\xfe", headers=(FORM_CT,)), status(200)),
    Case("urlencoded surrogate", post(b"echo=%ED%A0%80", headers=(FORM_CT,)), status(200)),
    Case("urlencoded JSON", post(b'{"echo": 1}', headers=(FORM_CT,)), status(200)),
    Case(
        "urlencoded charset=utf-16",
        post(
            b"echo=1",
            headers=((b"Content-Type", b"application/x-www-form-urlencoded; charset=utf-16"),),
        ),
        status(200, 400),
    ),
    Case(
        "urlencoded non-UTF-8 charset",
        post(
            b"echo=1",
            headers=((b"Content-Type", b"application/x-www-form-urlencoded; charset=\xff"),),
        ),
        status(200, 400),
    ),
    Case(
        "Expect: bogus",
        post(b"{}", headers=(JSON_CT, (b"Expect", b"bogus"))),
        retcode(1400, http=417),
    ),
    Case(
        "Expect: non-UTF-8",
        post(b"{}", headers=(JSON_CT, (b"Expect", b"\xff"))),
        retcode(1400, http=417),
    ),
    Case("Expect: empty", post(b"{}", headers=(JSON_CT, (b"Expect", b""))), status(200, 417)),
    Case(
        "Expect on HTTP/1.0",
        post(b'{"echo": 1}', headers=(JSON_CT, (b"Expect", b"100-continue")), version=b"HTTP/1.0"),
        echoes(1),
    ),
    Case(
        "Expect on a GET",
        get("/get_login_info?echo=1", headers=[(b"Expect", b"100-continue")]),
        echoes("1"),
    ),
    Case(
        "Expect with a wrong token",
        request("POST", "/get_login_info", "{}", [(b"Expect", b"100-continue")], token="nope"),
        retcode(1403, http=403),
    ),
    Case(
        "Expect over maxBodySize",
        post(
            b"",
            headers=(
                JSON_CT,
                (b"Expect", b"100-continue"),
                (b"Content-Length", b"%d" % (HTTP_MAX_BODY + 1)),
            ),
        ),
        retcode(1400, http=413),
    ),
)


@HEADERS
async def test_headers(fuzzed_gateway: FuzzedGateway, case: Case) -> None:
    await run_case(fuzzed_gateway, case)


async def test_expect_100_continue_two_phases(fuzzed_gateway: FuzzedGateway) -> None:
    """A client that waits for `100 Continue` before its body gets it, then the answer."""
    figures = FIGURES["http"]
    figures.calls += 1
    body = b'{"echo": "continued"}'
    head = request(
        "POST", "/get_login_info", b"", [JSON_CT, (b"Expect", b"100-continue")], token=TOKEN
    )
    head = head.replace(
        b"Connection: close", b"Content-Length: %d\r\nConnection: close" % len(body)
    )
    reader, writer = await asyncio.open_connection("127.0.0.1", fuzzed_gateway.http_port)
    try:
        writer.write(head)
        await writer.drain()
        interim = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), ANSWER_TIMEOUT)
        assert interim.startswith(b"HTTP/1.1 100"), interim
        writer.write(body)
        await writer.drain()
        answer = await asyncio.wait_for(read_answer(reader), ANSWER_TIMEOUT)
    except (TimeoutError, asyncio.IncompleteReadError):
        figures.unanswered += 1
        figures.breach("Expect: 100-continue in two phases", ": no answer")
        raise
    finally:
        await shut(writer)
    wrong = problem(answer) or (echoes("continued")(answer) if answer else None)
    if wrong:
        figures.breach("Expect: 100-continue in two phases", f": {wrong}")
    assert wrong is None, wrong


# --- generated inputs ------------------------------------------------------------------------

SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
JSON_VALUES = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)
CONTENT_TYPES = st.sampled_from(
    [
        (),
        (JSON_CT,),
        (FORM_CT,),
        ((b"Content-Type", b"text/plain"),),
        ((b"Content-Type", b"application/octet-stream"),),
        ((b"Content-Type", b"application/json5; charset=utf-8"),),
    ]
)


async def generated(gw: FuzzedGateway, label: str, data: bytes, expect: Expectation | None) -> None:
    wrong = await send(gw, label, data, expect)
    assert wrong is None, f"{label} [{shown(data)}]: {wrong}"


@FUZZ
@given(
    body=st.binary(max_size=SCALE.body // 16) | st.binary(min_size=1000, max_size=SCALE.body),
    headers=CONTENT_TYPES,
)
async def test_garbage_bodies(
    fuzzed_gateway: FuzzedGateway, body: bytes, headers: tuple[tuple[bytes, bytes], ...]
) -> None:
    await generated(fuzzed_gateway, "garbage body", post(body, headers=headers), status(200))


@FUZZ
@given(value=JSON_VALUES)
async def test_json_documents(fuzzed_gateway: FuzzedGateway, value: Any) -> None:
    """Any JSON document: an object is a call (its echo comes back verbatim), anything else 1400."""
    data = post(json.dumps(value))
    expect = echoes(value.get("echo")) if isinstance(value, dict) else retcode(1400)
    await generated(fuzzed_gateway, "JSON document", data, expect)


SURROGATES = st.integers(0xD800, 0xDFFF).map(chr)
WITH_SURROGATES = st.lists(st.text(max_size=3) | SURROGATES, min_size=1, max_size=5).map(
    lambda parts: "".join(parts) + chr(0xD800 + len(parts))
)
"""Text with at least one lone (or accidentally paired) surrogate."""


@FUZZ
@given(
    where=st.sampled_from(["echo", "key", "value", "nested echo", "action param"]),
    text=WITH_SURROGATES,
    json5=st.booleans(),
)
async def test_lone_surrogates(
    fuzzed_gateway: FuzzedGateway, where: str, text: str, json5: bool
) -> None:
    """Surrogates as JSON escapes (valid JSON text, no valid string): answered, never a 5xx."""
    document: dict[str, Any] = {
        "echo": {"echo": text},
        "key": {text: 1, "echo": 1},
        "value": {"echo": 2, "nickname": text},
        "nested echo": {"echo": [{"a": text}]},
        "action param": {"user_id": text},
    }[where]
    body = json.dumps(document)  # ensure_ascii: every surrogate becomes a \\uXXXX escape
    if json5:
        body = body[:-1] + ",}"  # strict JSON fails: the JSON5 path parses it
    path = "/get_stranger_info" if where == "action param" else "/get_login_info"
    await generated(fuzzed_gateway, f"lone surrogate ({where})", post(body, path), status(200))


PATH_CHARS = st.sampled_from(
    [*"abc_./%?&=#;:@!$'()*+,~-", "%ff", "%00", "%2f", "%ED%A0%80", "..", "//"]
)


@FUZZ
@given(path=st.lists(PATH_CHARS, max_size=30).map("".join))
async def test_odd_paths(fuzzed_gateway: FuzzedGateway, path: str) -> None:
    await generated(fuzzed_gateway, "odd path", get("/" + path), status(200, 400, 404))


@FUZZ
@given(raw=st.binary(min_size=1, max_size=12).filter(lambda b: not set(b) & set(b" \r\n")))
async def test_raw_bytes_in_the_target(fuzzed_gateway: FuzzedGateway, raw: bytes) -> None:
    """Bytes a URL may not hold (controls, non-ASCII): refused with a 1400 envelope at worst."""
    await generated(fuzzed_gateway, "raw bytes in the target", get(b"/" + raw), status(200, 400))


FIELD_BYTES = st.binary(max_size=200).map(
    lambda b: bytes(c for c in b if c >= 0x20 and c != 0x7F).strip(b" \t")
)
"""What a header value may hold (RFC 9110 §5.5: visible ASCII, spaces, obs-text 0x80-0xFF);
control characters are in the HEADERS table."""


@FUZZ
@given(value=FIELD_BYTES)
async def test_authorization_values(fuzzed_gateway: FuzzedGateway, value: bytes) -> None:
    data = request("GET", "/get_login_info", headers=[(b"Authorization", value)])
    await generated(fuzzed_gateway, "Authorization value", data, status(403, 400))


@FUZZ
@given(body=st.binary(max_size=300) | st.text(max_size=100).map(str.encode))
async def test_urlencoded_bodies(fuzzed_gateway: FuzzedGateway, body: bytes) -> None:
    await generated(fuzzed_gateway, "urlencoded body", post(body, headers=(FORM_CT,)), status(200))


# --- every parameter of every action, with values of the wrong JSON type ---------------------

JSON_TYPES = ("null", "boolean", "integer", "number", "string", "array", "object")
CATALOG = default_catalog()
SPARED = {"bot_exit": "stops the gateway under test (and takes no parameters)"}
"""Actions not fuzzed here, with the reason; printed by test_catalog_coverage."""


def accepted_types(schema: dict[str, Any], defs: dict[str, Any]) -> set[str]:
    """The JSON types a property's schema admits."""
    if "$ref" in schema:
        return accepted_types(defs[schema["$ref"].rsplit("/", 1)[-1]], defs)
    for key in ("anyOf", "oneOf"):
        if key in schema:
            return set().union(*(accepted_types(part, defs) for part in schema[key]))
    if "enum" in schema or "const" in schema:
        values = schema.get("enum", [schema.get("const")])
        return {json_type(value) for value in values}
    declared = schema.get("type")
    if declared is None:
        return set(JSON_TYPES)
    declared = [declared] if isinstance(declared, str) else declared
    types = set(declared)
    if "number" in types:
        types.add("integer")
    return types


def json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


WORLD_IDS = st.sampled_from([10001, 20001, 20002, 20003, 30001, 30002, 0, 1, -1])
VALUES_OF: dict[str, st.SearchStrategy[Any]] = {
    "null": st.none(),
    "boolean": st.booleans(),
    "integer": st.integers(),
    "number": st.floats(allow_nan=False, allow_infinity=False).filter(lambda x: not x.is_integer()),
    "string": st.text(max_size=30),
    "array": st.lists(SCALARS, max_size=3),
    "object": st.dictionaries(st.text(max_size=6), SCALARS, max_size=3),
}
FITTING: dict[str, st.SearchStrategy[Any]] = {
    **VALUES_OF,
    # Right-typed values stay small: a valid `count` or `delay` must not keep the process busy.
    "integer": WORLD_IDS | st.integers(min_value=-5, max_value=100),
    "number": st.floats(min_value=0, max_value=100),
    "string": WORLD_IDS.map(str) | st.text(max_size=30),
}


@dataclass(frozen=True)
class Param:
    name: str
    accepted: frozenset[str]
    required: bool
    enum: tuple[Any, ...] | None

    @property
    def wrong(self) -> tuple[str, ...]:
        return tuple(t for t in JSON_TYPES if t not in self.accepted)

    def fitting(self) -> st.SearchStrategy[Any]:
        if self.enum:
            return st.sampled_from(self.enum)
        return st.one_of(*(FITTING[t] for t in sorted(self.accepted)))


def params_of(action: Any) -> list[Param]:
    schema = action.params.model_json_schema()
    defs = schema.get("$defs", {})
    required = set(schema.get("required", []))
    found = []
    for name, prop in schema.get("properties", {}).items():
        enum = prop.get("enum")
        found.append(
            Param(
                name,
                frozenset(accepted_types(prop, defs)),
                name in required,
                tuple(enum) if enum else None,
            )
        )
    return found


PARAMS = {action.name: params_of(action) for action in CATALOG if action.name not in SPARED}
WRONG_TYPE_CASES = [
    pytest.param(action, param.name, id=f"{action}.{param.name}")
    for action, params in PARAMS.items()
    for param in params
    if param.wrong
]
MISSING_CASES = [
    pytest.param(action, id=action)
    for action, params in PARAMS.items()
    if any(param.required for param in params)
]


def others(params: list[Param], draw: Any, skip: str) -> dict[str, Any]:
    """Values for the other parameters: each absent, fitting or of a wrong type."""
    chosen: dict[str, Any] = {}
    for param in params:
        if param.name == skip:
            continue
        kinds = ["absent", "fitting"] + (["wrong"] if param.wrong else [])
        kind = draw(st.sampled_from(kinds), label=f"{param.name} is")
        if kind == "fitting":
            chosen[param.name] = draw(param.fitting(), label=param.name)
        elif kind == "wrong":
            chosen[param.name] = draw(
                st.one_of(*(VALUES_OF[t] for t in param.wrong)), label=param.name
            )
    return chosen


SUFFIXES = st.sampled_from(["", "", "_async", "_rate_limited"])
echo_counter = iter(range(1, 1 << 62))


async def catalog_call(
    gw: FuzzedGateway,
    action: str,
    params: dict[str, Any],
    label: str,
    retcodes: frozenset[int] = OK_RETCODES,
) -> None:
    echo = next(echo_counter)
    body = json.dumps({**params, "echo": echo})
    await generated(gw, label, post(body, "/" + action), echo_and_retcode(echo, retcodes))


def echo_and_retcode(echo: int, retcodes: frozenset[int]) -> Expectation:
    def check(answer: Answer) -> str | None:
        body = answer.json()
        if answer.status != 200 or body["retcode"] not in retcodes:
            return f"expected HTTP 200 with retcode in {sorted(retcodes)}, got {answer}"
        if not same_json(body["echo"], echo):
            return f"echo {echo} came back as {body['echo']!r}"
        return None

    return check


@FEW
@pytest.mark.parametrize(("action", "name"), WRONG_TYPE_CASES)
@given(data=st.data(), suffix=SUFFIXES)
async def test_catalog_wrong_types(
    fuzzed_gateway: FuzzedGateway, action: str, name: str, data: Any, suffix: str
) -> None:
    """`name` gets a value of a JSON type its schema refuses; the others anything."""
    params = PARAMS[action]
    param = next(p for p in params if p.name == name)
    chosen = others(params, data.draw, skip=name)
    chosen[name] = data.draw(st.one_of(*(VALUES_OF[t] for t in param.wrong)), label=name)
    await catalog_call(fuzzed_gateway, action + suffix, chosen, f"{action}{suffix} wrong {name}")


@FEW
@pytest.mark.parametrize("action", MISSING_CASES)
@given(data=st.data(), suffix=SUFFIXES)
async def test_catalog_missing_required(
    fuzzed_gateway: FuzzedGateway, action: str, data: Any, suffix: str
) -> None:
    params = PARAMS[action]
    required = [p.name for p in params if p.required]
    missing = data.draw(st.sampled_from(required), label="missing")
    chosen = others(params, data.draw, skip=missing)
    # Validation refuses it before anything runs (1404: an action this backend lacks).
    label = f"{action}{suffix} without {missing}"
    await catalog_call(fuzzed_gateway, action + suffix, chosen, label, frozenset({1400, 1404}))


UNTYPED = sorted(
    name for name, params in PARAMS.items() if not any(p.wrong or p.required for p in params)
)


@FEW
@pytest.mark.parametrize("action", UNTYPED)
@given(extra=st.dictionaries(st.text(max_size=8), JSON_VALUES, max_size=4), suffix=SUFFIXES)
async def test_catalog_no_params_to_break(
    fuzzed_gateway: FuzzedGateway, action: str, extra: dict[str, Any], suffix: str
) -> None:
    """Actions whose parameters take any type (or that have none) get arbitrary extra ones."""
    extra.pop("echo", None)
    await catalog_call(fuzzed_gateway, action + suffix, extra, f"{action}{suffix} extras")


def test_catalog_coverage() -> None:
    """Every catalog action is fuzzed, except those spared here for a stated reason."""
    fuzzed = {case.values[0] for case in WRONG_TYPE_CASES} | {
        case.values[0] for case in MISSING_CASES
    }
    assert set(PARAMS) == fuzzed | set(UNTYPED)
    assert set(PARAMS) | set(SPARED) == {action.name for action in CATALOG}
    print(
        f"catalog fuzz: {len(WRONG_TYPE_CASES)} (action, parameter) pairs, "
        f"{len(MISSING_CASES)} actions with required parameters; "
        f"{len(UNTYPED)} with no parameter to break (extras sent); spared: {SPARED}"
    )


# --- the figures -----------------------------------------------------------------------------


async def test_http_figures(fuzzed_gateway: FuzzedGateway) -> None:
    """Last in the module: the process survived, a normal call answers 0, no 5xx, no silence."""
    wrong = await send(
        fuzzed_gateway, "normal call after the fuzz", post('{"echo": "after"}'), echoes("after")
    )
    figures = FIGURES["http"]
    print(f"HTTP fuzz: {figures.line()}, process alive: {fuzzed_gateway.alive}")
    assert fuzzed_gateway.alive, "the gateway process exited"
    assert wrong is None, wrong
    assert figures.calls > 0
    assert figures.server_errors == 0, figures.problems
    assert figures.unanswered == 0, figures.problems
