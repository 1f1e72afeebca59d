"""How the bot under test is started: the `onebot_bot` fixture of `pytest -p gateway.testing`."""

import sys
from pathlib import Path

import pytest

from gateway.testing import BotSpec

HERE = Path(__file__).parent


@pytest.fixture
def onebot_bot() -> BotSpec:
    # The bot connects to the sandbox's forward WebSocket (ONEBOT_WS_URL in its environment).
    return BotSpec([sys.executable, str(HERE / "nonebot_bot" / "bot.py")], transport="ws")
