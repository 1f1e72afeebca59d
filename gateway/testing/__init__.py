"""Testing bots against the sandbox: a pytest plugin (`pytest -p gateway.testing`), the `Chat`
helper it provides, and the scenario runner behind `onebot-gateway test`.

Loading this package as a pytest plugin registers two fixtures, `onebot_bot` (override it: the
bot's command and transport) and `chat`; neither does anything unless a test asks for `chat`.
"""

from __future__ import annotations

import importlib.util

from gateway.testing.chat import Chat, ChatAssertionError, Reply, segment
from gateway.testing.harness import HarnessError, HarnessOptions, SandboxHarness
from gateway.testing.session import BotSpec, bot_session

__all__ = [
    "BotSpec",
    "Chat",
    "ChatAssertionError",
    "HarnessError",
    "HarnessOptions",
    "Reply",
    "SandboxHarness",
    "bot_session",
    "segment",
]

# The fixtures need pytest; the scenario runner (`onebot-gateway test`) must not.
if importlib.util.find_spec("pytest_asyncio") is not None:
    from gateway.testing.fixtures import chat, onebot_bot

    __all__ += ["chat", "onebot_bot"]
