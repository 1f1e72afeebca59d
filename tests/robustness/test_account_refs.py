"""Any value as the account of a console call (`/api/call {account}`, `/api/catalog?account=`)
or of `/readyz?account=` gets a JSON answer: the account's, or 400/404 with a message naming the
accounts; never a 500, never another account's."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import aiohttp
from hypothesis import given
from hypothesis import strategies as st

from tests.conftest import run_gateway
from tests.robustness.conftest import FUZZ

A, B = 10001, 10002
TOKEN = {"Authorization": "Bearer admin-secret"}
KNOWN = {"a": A, "b": B, A: A, B: B, str(A): A, str(B): B}
ACCOUNTS = "'a' (10001), 'b' (10002)"

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)  # JSON has no infinities
    | st.text(max_size=30)
    | st.sampled_from(["a", "b", str(A), " 10001", "10001 ", "١٠٠٠١", "0", "-10001", "A"])
    | st.sampled_from([A, B, 0, -1, 2**63])
)
refs = scalars | st.lists(scalars, max_size=2) | st.dictionaries(st.text(max_size=4), scalars)


def document() -> dict[str, Any]:
    return {
        "accounts": [
            {"name": "a", "backend": {"database": ":memory:", "selfId": A}},
            {"name": "b", "backend": {"database": ":memory:", "selfId": B}},
        ],
        "admin": {"port": 0, "token": "admin-secret"},
    }


def expected(ref: Any) -> int | None:
    """The QQ number of the account `ref` names, if it names one."""
    if isinstance(ref, bool) or not isinstance(ref, str | int):
        return None
    return KNOWN.get(ref)


@FUZZ
@given(values=st.lists(refs, min_size=1, max_size=12))
async def test_any_account_value_gets_its_account_or_a_clear_refusal(values: list[Any]) -> None:
    async with run_gateway(document()) as gw, aiohttp.ClientSession() as http:
        assert gw.supervisor.admin is not None
        base = f"http://127.0.0.1:{gw.supervisor.admin.port}"
        for ref in values:
            body = {"action": "get_login_info", "account": ref}
            async with http.post(f"{base}/api/call", json=body, headers=TOKEN) as response:
                answer = await response.json()
            wanted = expected(ref)
            if wanted is not None:
                assert response.status == 200 and answer["data"]["user_id"] == wanted, ref
            elif ref is None or ref == "":
                assert response.status == 400 and ACCOUNTS in answer["message"], ref
            else:
                assert response.status == 404 and ACCOUNTS in answer["message"], ref
            if isinstance(ref, str):
                query = quote(ref, safe="")
                async with http.get(f"{base}/readyz?account={query}", headers=TOKEN) as response:
                    ready = await response.json()
                if wanted is not None:
                    assert response.status == 200 and ready["account"]["self_id"] == wanted
                else:
                    assert response.status == 404 and ACCOUNTS in ready["message"], ref
                url = f"{base}/api/catalog?account={query}"
                async with http.get(url, headers=TOKEN) as response:
                    assert response.status in ((200,) if wanted else (400, 404)), ref
