"""Catalog: restarting and exiting, OCR and English→Chinese translation.

OCR and translation need optional extras (`onebot-gateway[ocr]`, `onebot-gateway[translate]`);
without them the sandbox answers 1404 naming the extra.
"""

from __future__ import annotations

from pydantic import AliasChoices, Field, model_validator

from gateway.actions.catalog import Action, NoParams, Params


class SetRestart(Params):
    """Parameters of `set_restart`."""

    delay: int = Field(0, ge=0, le=3_600_000)
    """Milliseconds to wait before restarting."""


class OcrImage(Params):
    """Parameters of `ocr_image` / `.ocr_image`."""

    image: str = Field(min_length=1, validation_alias=AliasChoices("image", "file"))
    """The image: a path, file:// URL, loopback http(s) URL, base64:// or plain base64 data, a
    data: URL, or a media id."""


class Translate(Params):
    """Parameters of `translate_en2zh` (`words`) and `translate_en_word_to_zn` (`word`)."""

    words: list[str] | None = None
    """English words (NapCat's form); the answer's `words` has one translation for each."""
    word: str | None = None
    """One English word (the spec's form); the answer adds `word` and `translation`."""

    @model_validator(mode="after")
    def _some(self) -> Translate:
        if self.words is None and self.word is None:
            raise ValueError("give word (or NapCat's words: a list)")
        return self


ACTIONS = (
    Action(
        "set_restart",
        SetRestart,
        "Restart the backend after `delay` ms; adapters and their connections stay up.",
    ),
    Action("bot_exit", NoParams, "Shut the gateway daemon down gracefully, after answering."),
    Action(
        "ocr_image",
        OcrImage,
        "Text in an image: `{texts: [{text, confidence, coordinates}], language}` (needs the "
        "`ocr` extra).",
        aliases=(".ocr_image",),
    ),
    Action(
        "translate_en2zh",
        Translate,
        "English words to Chinese with the CC-CEDICT dictionary (needs the `translate` extra).",
        aliases=("translate_en_word_to_zn",),
    ),
)
