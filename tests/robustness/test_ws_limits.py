"""Work one client can cause is bounded.

- `_async` calls beyond `api.maxAsyncCalls` are refused with 1200, until one finishes.
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp

from tests.conftest import http_entry, run_gateway, sandbox_config
from tests.held_server import held_server


async def test_async_calls_beyond_max_async_calls_are_refused_until_one_finishes() -> None:
    doc = {**sandbox_config(httpServers=[http_entry("api")]), "api": {"maxAsyncCalls": 2}}
    async with held_server() as media, run_gateway(doc) as gw, aiohttp.ClientSession() as http:

        async def call_async(name: str) -> dict[str, Any]:
            url = gw.url("api", "/download_file_async")
            async with http.post(url, json={"url": media.url(name)}) as response:
                answer: dict[str, Any] = await response.json()
                return answer

        assert [(await call_async(name))["retcode"] for name in ("a", "b")] == [1, 1]
        await media.wait_for(2)
        refused = await call_async("c")
        assert (refused["status"], refused["retcode"]) == ("failed", 1200)
        assert "2 _async calls are running, the limit (api.maxAsyncCalls)" in refused["message"]
        assert media.arrived == 2  # the refused call never ran
        media.release.set()
        for _ in range(500):  # until the two background calls are done
            if (await call_async("d"))["retcode"] == 1:
                break
            await asyncio.sleep(0.01)
        else:
            raise AssertionError("no _async call accepted after the running ones finished")
