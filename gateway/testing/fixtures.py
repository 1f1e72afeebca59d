"""The pytest fixtures of `pytest -p gateway.testing` (they need pytest and pytest-asyncio).

Override `onebot_bot` in the bot's `conftest.py` to say how the bot is started and connected;
every test that asks for `chat` then gets a fresh sandbox with the bot connected to it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from gateway.testing.chat import Chat
from gateway.testing.session import BotSpec, bot_session


@pytest.fixture
def onebot_bot() -> BotSpec:
    """The bot under test. The default starts no bot (the test connects one itself, over
    forward WebSocket: `chat.harness.ws_url`); override it in `conftest.py`."""
    return BotSpec()


@pytest_asyncio.fixture
async def chat(onebot_bot: BotSpec) -> AsyncIterator[Chat]:
    """A fresh in-memory sandbox with the bot started and connected (see `onebot_bot`)."""
    async with bot_session(onebot_bot) as session:
        yield session
