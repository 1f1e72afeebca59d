"""Any `accounts`, entry `accounts` or `cluster` section: the config parses, or is one
`ConfigError` whose every line names the section it is about; never another exception. And a
parsed config's accounts are what a supervisor can start: unique names, distinct sandbox
databases and QQ numbers, entries naming only accounts that exist."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.config import ConfigError, SandboxBackendConfig, parse_config
from tests.robustness.conftest import FUZZ

PARSING = settings(FUZZ, max_examples=FUZZ.max_examples * 10)

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**64), max_value=2**64)
    | st.floats(allow_nan=True)
    | st.text(max_size=12)
    | st.sampled_from(["a", "b", "10001", "", "0", "١٢", "a b", "x" * 70, ":memory:"])
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=8,
)
backends = st.fixed_dictionaries(
    {},
    optional={
        "type": st.sampled_from(["sandbox", "relay", "other"]) | values,
        "database": st.sampled_from([":memory:", "x.db", "y.db"]) | values,
        "selfId": st.sampled_from([10001, 10002, 0, -1, "10003"]) | values,
        "nickname": values,
        "mode": st.sampled_from(["forward", "reverse"]),
        "port": st.sampled_from([8082, 0]) | values,
    },
)
accounts = (
    st.lists(
        st.fixed_dictionaries(
            {"name": st.sampled_from(["a", "b", "c", "12", ""]) | values},
            optional={"backend": backends | values},
        ),
        max_size=4,
    )
    | values
)
entry_accounts = st.lists(st.sampled_from(["a", "b", "zz", 10001, "10002", 0]) | values) | values
clusters = (
    st.fixed_dictionaries(
        {},
        optional={
            "nats": st.fixed_dictionaries(
                {},
                optional={
                    "url": st.sampled_from(["nats://127.0.0.1:4222", "http://x"]) | values,
                    "urls": values,
                    "tls": values,
                    "token": values,
                },
            )
            | values,
            "node": st.sampled_from(["edge", "bad node", ""]) | values,
            "prefix": values,
            "events": values,
            "directoryTtl": values,
            "bufferSize": values,
            "unknown": values,
        },
    )
    | values
)
SECTIONS = ("accounts", "backend", "cluster", "network")


@PARSING
@given(accounts=accounts, refs=entry_accounts, cluster=clusters | st.none())
def test_any_accounts_and_cluster_sections_parse_or_name_the_field(
    accounts: Any, refs: Any, cluster: Any
) -> None:
    document: dict[str, Any] = {
        "accounts": accounts,
        "network": {"httpServers": [{"name": "api", "port": 0, "accounts": refs}]},
    }
    if cluster is not None:
        document["cluster"] = cluster
    try:
        config = parse_config(document, env={})
    except ConfigError as error:
        for line in str(error).splitlines():
            assert line.startswith(SECTIONS) or line.startswith("(top level)"), line
        return
    configs = config.account_configs()
    names = [account.name for account in configs]
    assert len(names) == len(set(names))
    sandboxes = [a.backend for a in configs if isinstance(a.backend, SandboxBackendConfig)]
    files = [Path(b.database).resolve() for b in sandboxes if b.database != ":memory:"]
    assert len(files) == len(set(files))
    numbers = [b.self_id or f"world:{b.world}" for b in sandboxes]
    assert len(numbers) == len(set(numbers))
    for ref in config.network.http_servers[0].accounts or ():
        assert isinstance(ref, int) or ref in names


@pytest.mark.parametrize(
    ("document", "field"),
    [
        ({"accounts": [{"name": "a"}], "backend": {}}, "backend, accounts"),
        ({"accounts": "a"}, "accounts"),
        ({"accounts": [{"name": "a", "backend": {"type": "nope"}}]}, "accounts[0].backend.type"),
        ({"accounts": [{"name": "a", "backend": {"selfId": -3}}]}, "accounts[0].backend.selfId"),
        ({"cluster": {"node": "n"}}, "cluster.nats"),
        ({"cluster": {"nats": {"url": "nats://x"}}}, "cluster.node"),
        ({"cluster": {"nats": {"url": "nats://x"}, "node": "n", "x": 1}}, "cluster.x"),
    ],
)
def test_bad_sections_are_one_error_naming_the_field(document: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigError) as refused:
        parse_config(document, env={})
    assert str(refused.value).startswith(field), str(refused.value)
