"""The config file: NapCat's `onebot11.json` shape (JSON or JSON5) plus the gateway's own sections.

Models are frozen, inert data. Field names are NapCat's camelCase spellings (snake_case in Python);
a docstring under every field becomes its JSON Schema description. `load_config()` is the only way
in: it expands `${VAR}` references, validates laxly (`"3000"` -> 3000) and turns every failure into
one `ConfigError` naming the field path.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic.alias_generators import to_camel
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, SettingsConfigDict

from gateway.event_filter import compile_filter
from gateway.policy import check_pattern
from gateway.protocol import jsonio

MessageFormat = Literal["array", "string"]
OverflowPolicy = Literal["drop_oldest", "disconnect"]

DEFAULT_MAX_BODY = 64 * 1024 * 1024
DEFAULT_MAX_INFLIGHT = 64


class ConfigError(Exception):
    """An invalid config file; the message names the file and each bad field's path."""


class _Model(BaseModel):
    model_config = ConfigDict(
        frozen=True,
        alias_generator=to_camel,
        populate_by_name=True,
        use_attribute_docstrings=True,
        coerce_numbers_to_str=True,
        # NapCat strips unknown keys too; load_config() warns about each one so typos are seen.
        extra="ignore",
    )


class ActionsConfig(_Model):
    """`actions` of an entry: which actions its bots may call (see `gateway/policy.py`). A
    refused call gets 1403 naming the action and the entry. Unknown keys are errors: a typo
    would silently drop a rule."""

    model_config = ConfigDict(extra="forbid")

    allow: tuple[str, ...] | None = None
    """Globs (`get_*`, `send_group_msg`) of the actions allowed; absent allows every action
    but the process-level ones (`bot_exit`, `set_restart`, `clean_cache`,
    `clean_stream_temp_file`), which are allowed only when listed here by name, never by a
    glob. `[]` allows nothing (an events-only entry)."""
    deny: tuple[str, ...] = ()
    """Globs of actions refused; they win over `allow`. Matched against the canonical name and
    the alias a bot used, without `_async`/`_rate_limited`."""

    @field_validator("allow", "deny")
    @classmethod
    def _check_patterns(cls, patterns: tuple[str, ...] | None) -> tuple[str, ...] | None:
        for pattern in patterns or ():
            check_pattern(pattern)
        return patterns


class SendRateConfig(_Model):
    """`sendRate` of an entry: a token bucket per account for the calls that post into a chat
    (the `send_*` family, forwards, file uploads, a quick operation's reply). Calls over the
    rate wait in order; beyond `maxWaiting` waiting calls they fail with 1200. Unknown keys are
    errors."""

    model_config = ConfigDict(extra="forbid")

    per_minute: Annotated[float, Field(gt=0, allow_inf_nan=False)]
    """Sends per minute, sustained (tokens refilled per minute; fractions allowed)."""
    burst: Annotated[int, Field(ge=1)] = 5
    """Sends allowed at once after a quiet spell (the bucket's size)."""
    max_waiting: Annotated[int, Field(ge=0)] = 100
    """Calls that may wait for a token; the next one fails with 1200 at once (0: never wait)."""


AccountRef = Annotated[int, Field(gt=0, lt=2**63)] | str
"""An account named in an entry's `accounts`: its `name`, or its QQ number (`self_id`)."""


def _qq_or_name(ref: AccountRef) -> AccountRef:
    """A string of ASCII digits as the QQ number it is; anything else as it is."""
    return int(ref) if isinstance(ref, str) and ref.isascii() and ref.isdigit() else ref


class _AdapterEntry(_Model):
    """Fields every adapter entry has."""

    kind: ClassVar[str]
    name: str
    """Unique name of this entry across all adapter lists; the identity used by reload."""
    enable: bool = False
    """Only enabled entries are started."""
    message_post_format: MessageFormat = "array"
    """Message format of pushed events: `array` (segments) or `string` (CQ codes)."""
    token: str = ""
    """Access token (servers check it, clients send it). Supports `${ENV_VAR}`."""
    debug: bool = False
    """Log every request and response of this entry (tokens redacted); debug subscribers also
    receive fields a backend marks as debug-only (such as a relayed `raw`)."""
    event_filter: dict[str, Any] | None = None
    """Only events matching this filter are pushed (see `gateway/event_filter.py` for the
    language: field equality, `.in`, `.regex`, `.and`/`.or`/`.not`, ...). None pushes all."""
    queue_size: Annotated[int, Field(gt=0)] = 1024
    """Events held per subscriber before the overflow policy applies."""
    overflow_policy: OverflowPolicy = "drop_oldest"
    """When a subscriber's queue is full: `drop_oldest` (counted and logged) or `disconnect`."""
    actions: ActionsConfig = ActionsConfig()
    """Which actions this entry's bots may call (default: all but the process-level ones)."""
    send_rate: SendRateConfig | None = None
    """Rate limit of this entry's sends, per account; None (default) does not limit them."""
    accounts: tuple[AccountRef, ...] | None = None
    """The accounts this entry serves, by `name` (from the top-level `accounts`) or by QQ
    number (`self_id`); None (default) serves every account. Its bots get only these accounts'
    events, and their calls go only to these accounts (see the README's routing rules)."""

    @field_validator("accounts")
    @classmethod
    def _check_account_refs(
        cls, refs: tuple[AccountRef, ...] | None
    ) -> tuple[AccountRef, ...] | None:
        if refs is None:
            return None
        if not refs:
            raise ValueError("an entry must serve at least one account (omit `accounts` for all)")
        # A string of digits is a QQ number (account names are never all digits).
        return tuple(
            int(ref) if isinstance(ref, str) and ref.isascii() and ref.isdigit() else ref
            for ref in refs
        )

    @field_validator("event_filter")
    @classmethod
    def _compile_filter(cls, spec: dict[str, Any] | None) -> dict[str, Any] | None:
        if spec is not None:
            compile_filter(spec)  # raises FilterError (a ValueError) naming the path inside
        return spec


class _ServerEntry(_AdapterEntry):
    """Fields of entries that listen on a host and port."""

    host: str = "127.0.0.1"
    """Address to bind. A non-loopback address needs a token (or `allowInsecure`)."""
    port: Annotated[int, Field(ge=0, le=65535)] = 3000
    """TCP port; 0 picks a free port (the bound address is logged)."""
    allow_insecure: bool = False
    """Allow binding a non-loopback address with an empty token. Anyone who can reach the port
    controls the account; only set this behind a trusted network boundary."""
    max_body_size: Annotated[int, Field(gt=0)] = DEFAULT_MAX_BODY
    """Largest accepted HTTP body or WebSocket frame, in bytes (413 / close 1009 beyond)."""
    allowed_origins: tuple[str, ...] = ()
    """Browser origins (`https://app.example`) allowed to open WebSockets on this entry. Browsers
    always send `Origin`; bots usually send none and are not affected. A listed origin is the
    only defence against a web page driving a token-less gateway from its visitors' browsers.
    Empty allows any origin, as NapCat. A refused upgrade gets 403 + 1403, no socket."""
    max_inflight: Annotated[int, Field(gt=0)] = DEFAULT_MAX_INFLIGHT
    """WebSocket calls one connection may have running at once. At the limit the connection is
    not read until one of them is answered (TCP backpressure): nothing is dropped."""


class HttpServerConfig(_ServerEntry):
    """`network.httpServers[]`: the HTTP API server (NapCat's `http-server`)."""

    kind: ClassVar[str] = "httpServers"
    name: str = "http-server"
    """Unique name of this entry across all adapter lists; the identity used by reload."""
    enable_cors: bool = True
    """Send CORS headers and answer preflight requests (NapCat ignores this field; we honour it)."""
    cors_origins: tuple[str, ...] = ()
    """Origins allowed by CORS. Empty means any origin (`*`), as NapCat."""
    enable_websocket: bool = False
    """Accept WebSocket upgrades on the same port (`/`, `/api`, `/event`)."""
    report_self_message: bool = False
    """Push the bot's own sent messages as `message_sent` on same-port WebSockets."""
    heart_interval: int = 30000
    """Heartbeat interval of same-port WebSockets in ms (NapCat fixes it at 30000); 0 disables."""


class HttpSseServerConfig(HttpServerConfig):
    """`network.httpSseServers[]`: an HTTP API server that also streams events on `/_events`."""

    kind: ClassVar[str] = "httpSseServers"
    name: str = "http-sse-server"
    """Unique name of this entry across all adapter lists; the identity used by reload."""
    keep_alive_interval: Annotated[int, Field(gt=0)] = 15000
    """A `: keep-alive` comment is written to idle event streams every this many ms."""


class HttpClientConfig(_AdapterEntry):
    """`network.httpClients[]`: POSTs every event to `url` (HTTP POST reporting)."""

    kind: ClassVar[str] = "httpClients"
    name: str = "http-client"
    """Unique name of this entry across all adapter lists; the identity used by reload."""
    url: str = "http://localhost:8080"
    """Where events are POSTed."""
    report_self_message: bool = False
    """Push the bot's own sent messages as `message_sent` events."""
    timeout: Annotated[int, Field(gt=0)] = 5000
    """Request timeout in ms (NapCat has none)."""
    max_retries: Annotated[int, Field(ge=0)] = 8
    """Retries of one event after a connection error or a 5xx answer; then it is dropped
    (counted and logged). Events published meanwhile wait in the queue, in order."""
    retry_interval: Annotated[int, Field(gt=0)] = 500
    """First retry delay in ms; doubles per attempt (with full jitter) up to `retryMaxInterval`."""
    retry_max_interval: Annotated[int, Field(gt=0)] = 10000
    """Largest retry delay in ms."""
    heart_interval: int = 0
    """Heartbeat meta events POSTed every this many ms; 0 (the default, as NapCat) disables."""
    buffer_max_age: Annotated[int, Field(ge=0)] = 300000
    """Events older than this (ms) when their turn comes are dropped (counted); 0 keeps all."""


class WebsocketServerConfig(_ServerEntry):
    """`network.websocketServers[]`: the forward WebSocket server."""

    kind: ClassVar[str] = "websocketServers"
    name: str = "websocket-server"
    """Unique name of this entry across all adapter lists; the identity used by reload."""
    port: Annotated[int, Field(ge=0, le=65535)] = 3001
    """TCP port; 0 picks a free port (the bound address is logged)."""
    report_self_message: bool = False
    """Push the bot's own sent messages as `message_sent` events."""
    enable_force_push_event: bool = True
    """Accepted for NapCat compatibility (NapCat reads it nowhere either)."""
    heart_interval: int = 30000
    """Heartbeat meta event interval in ms; 0 or less disables heartbeats."""


class WebsocketClientConfig(_AdapterEntry):
    """`network.websocketClients[]`: the reverse WebSocket client."""

    kind: ClassVar[str] = "websocketClients"
    name: str = "websocket-client"
    """Unique name of this entry across all adapter lists; the identity used by reload."""
    url: str = "ws://localhost:8082"
    """The bot framework's reverse WebSocket endpoint (`ws://` or `wss://`)."""
    report_self_message: bool = False
    """Push the bot's own sent messages as `message_sent` events."""
    reconnect_interval: Annotated[int, Field(gt=0)] = 5000
    """First reconnect delay in ms; doubles per failed attempt (with full jitter)."""
    reconnect_max_interval: Annotated[int, Field(gt=0)] = 60000
    """Largest reconnect delay in ms."""
    stable_after: Annotated[int, Field(ge=0)] = 10000
    """A connection that lived this long (ms) resets the backoff to `reconnectInterval`."""
    handshake_timeout: Annotated[int, Field(gt=0)] = 10000
    """How long (ms) the bot may take to accept the connection (NapCat: 2000, too short for a
    busy bot)."""
    ping_interval: Annotated[int, Field(ge=0)] = 15000
    """WebSocket ping every this many ms; no pong within half of it replaces the connection
    (catches half-open sockets). 0 disables."""
    buffer_max_age: Annotated[int, Field(ge=0)] = 300000
    """Events buffered while disconnected are delivered on reconnect unless older than this
    (ms); 0 keeps all. The buffer holds `queueSize` events (oldest dropped, counted)."""
    heart_interval: int = 30000
    """Heartbeat meta event interval in ms; 0 or less disables heartbeats."""
    verify_certificate: bool = True
    """Verify the server certificate on `wss://`."""
    max_inflight: Annotated[int, Field(gt=0)] = DEFAULT_MAX_INFLIGHT
    """Calls the bot may have running at once on this connection. At the limit the connection
    is not read until one of them is answered (TCP backpressure): nothing is dropped."""


class PluginConfig(_Model):
    """`network.plugins[]`: NapCat's in-process JS plugins; accepted and ignored."""

    name: str = "plugin"
    """Plugin name."""
    enable: bool = False
    """Ignored."""
    message_post_format: MessageFormat = "array"
    """Ignored."""
    report_self_message: bool = False
    """Ignored."""
    debug: bool = False
    """Ignored."""


AdapterConfig = (
    HttpServerConfig
    | HttpSseServerConfig
    | HttpClientConfig
    | WebsocketServerConfig
    | WebsocketClientConfig
)


class NetworkConfig(_Model):
    """`network`: the adapter lists. Unknown keys here are errors: a typo would drop adapters."""

    model_config = ConfigDict(extra="forbid")

    http_servers: tuple[HttpServerConfig, ...] = ()
    """HTTP API servers."""
    http_sse_servers: tuple[HttpSseServerConfig, ...] = ()
    """HTTP API servers with an SSE event stream."""
    http_clients: tuple[HttpClientConfig, ...] = ()
    """HTTP POST event reporters."""
    websocket_servers: tuple[WebsocketServerConfig, ...] = ()
    """Forward WebSocket servers."""
    websocket_clients: tuple[WebsocketClientConfig, ...] = ()
    """Reverse WebSocket clients."""
    plugins: tuple[PluginConfig, ...] = ()
    """NapCat JS plugins: accepted for compatibility and ignored (a warning is logged)."""

    def entries(self) -> Iterator[tuple[str, int, AdapterConfig]]:
        """Every adapter entry as (list name, index, entry), in file order per kind."""
        for kind in ADAPTER_KINDS:
            for index, entry in enumerate(getattr(self, _FIELD_OF_KIND[kind])):
                yield kind, index, entry


ADAPTER_KINDS = (
    "httpServers",
    "httpSseServers",
    "httpClients",
    "websocketServers",
    "websocketClients",
)
NETWORK_KEYS = (*ADAPTER_KINDS, "plugins")
_FIELD_OF_KIND = {kind: re.sub(r"([A-Z])", r"_\1", kind).lower() for kind in ADAPTER_KINDS}


class TimeoutConfig(_Model):
    """`timeout`: NapCat's media send/download timeout model (ms)."""

    base_timeout: int = 10000
    """Base timeout in ms."""
    upload_speed_k_bps: int = 256
    """Assumed upload speed in KiB/s."""
    download_speed_k_bps: int = 256
    """Assumed download speed in KiB/s."""
    max_timeout: int = 1800000
    """Upper bound in ms."""


class SandboxBackendConfig(_Model):
    """`backend` with `type: "sandbox"`: the embedded simulated account on SQLite."""

    type: Literal["sandbox"] = "sandbox"
    """Backend kind."""
    database: str = "sandbox.db"
    """SQLite file holding the simulated account; `:memory:` keeps nothing across restarts."""
    world: str | None = None
    """JSON5 world file seeding an empty database; the built-in default world when absent."""
    self_id: Annotated[int, Field(gt=0, lt=2**63)] | None = None
    """The account's QQ number, instead of the world's `self.user_id` (several accounts can
    then share one world file: each is added to the world's groups as a member)."""
    nickname: str | None = None
    """The account's nickname, instead of the world's `self.nickname`."""
    media_fetch_timeout: Annotated[int, Field(gt=0)] = 10000
    """How long (ms) fetching one loopback `http(s)://` media URL (an image in a message, an
    upload, `download_file`) may take in all before the action fails with 1200. Fetches run on
    the event loop, so a slow URL delays only the call that named it."""
    local_file_roots: tuple[str, ...] | None = None
    """Directories whose files a bot may name by local path or `file://` URL (a segment's
    `file`, `upload_group_file`, `send_online_file`, `create_flash_task`, ...); a path outside
    them (symbolic links and `..` resolved first) fails with 1200 naming this field. Absent,
    any file the gateway can read, as NapCat; `[]` refuses every local path. For a sandbox
    other people's bots can reach."""
    media_max_size: Annotated[int, Field(gt=0)] = 64 * 1024 * 1024
    """Largest media file the sandbox takes, in bytes, from any source (URL, local path,
    base64); larger ones fail with 1200. A fetch stops reading once the body passes it."""
    bench_hook: bool = False
    """Enable `sandbox_emit_bench`, which publishes up to 10 million events for benchmarks
    (`bench/run.py` turns it on). Off, the action answers 1404 saying how to turn it on."""


class RelayBackendConfig(_Model):
    """`backend` with `type: "relay"`: a real OneBot 11 implementation (NapCat, Lagrange,
    LLOneBot) upstream, over one universal WebSocket."""

    type: Literal["relay"]
    """Backend kind."""
    mode: Literal["forward", "reverse"] = "forward"
    """`forward`: the gateway dials `url` (the upstream's WebSocket server). `reverse`: the
    gateway listens on `host:port` + `path` and the upstream connects as a reverse client."""
    url: str = "ws://127.0.0.1:3001/"
    """Forward mode: the upstream's universal WebSocket."""
    host: str = "127.0.0.1"
    """Reverse mode: address to listen on."""
    port: Annotated[int, Field(ge=0, le=65535)] = 8082
    """Reverse mode: port to listen on."""
    path: str = "/"
    """Reverse mode: the WebSocket path the upstream connects to (accounts sharing one
    `host:port` may use different paths: an upstream is routed by path and `X-Self-ID`)."""
    token: str = ""
    """Sent as `Authorization: Bearer` (forward) or required from the upstream (reverse)."""
    allow_insecure: bool = False
    """Reverse mode: allow a non-loopback listener with an empty token."""
    self_id: int = 0
    """The account's QQ number before upstream tells it (0: learn it from upstream). Required,
    and distinct, for reverse-mode accounts sharing one `host:port`: it tells their upstreams
    apart by `X-Self-ID`."""
    call_timeout: Annotated[int, Field(gt=0)] = 30000
    """How long (ms) an action may wait for upstream before it fails with 1200."""
    connect_timeout: Annotated[int, Field(ge=0)] = 5000
    """How long (ms) start-up waits for the first upstream connection before going on
    without it (actions fail fast until upstream is there)."""
    reconnect_interval: Annotated[int, Field(gt=0)] = 1000
    """Forward mode: first reconnect delay in ms (exponential backoff with full jitter)."""
    reconnect_max_interval: Annotated[int, Field(gt=0)] = 30000
    """Forward mode: largest reconnect delay in ms."""
    ping_interval: Annotated[int, Field(ge=0)] = 15000
    """WebSocket pings to upstream every this many ms (half-open detection); 0 disables."""
    dedupe_window_ms: Annotated[int, Field(ge=0)] = 0
    """Drop an upstream event identical in (post_type, message_id or flag, time) to one seen
    within this many ms. 0 (default) keeps every event."""


BackendConfig = Annotated[SandboxBackendConfig | RelayBackendConfig, Field(discriminator="type")]

ACCOUNT_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}")
DEFAULT_ACCOUNT = "default"
"""The name of the one account of a config with `backend` (or neither section)."""


class AccountConfig(_Model):
    """`accounts[]`: one QQ account behind the gateway and the backend that runs it."""

    name: str
    """Unique name of the account (letters, digits, `_`, `.`, `-`; not all digits, so it
    cannot be mistaken for a QQ number); entries name it in their `accounts`."""
    backend: BackendConfig = SandboxBackendConfig()
    """The account's backend, as the top-level `backend` section of a one-account config. A
    sandbox account without `database` keeps its state in `sandbox-<name>.db`."""

    @model_validator(mode="before")
    @classmethod
    def _default_backend(cls, data: Any) -> Any:
        # A `backend` without `type` is the sandbox, as is no section at all; a sandbox account
        # without `database` gets its own file, so accounts never share one by accident.
        if not isinstance(data, dict):
            return data
        backend = data.get("backend", {})
        if not isinstance(backend, dict):
            return data
        backend = {"type": "sandbox", **backend}
        if backend["type"] == "sandbox" and "database" not in backend:
            backend["database"] = f"sandbox-{data.get('name')}.db"
        return {**data, "backend": backend}

    @field_validator("name")
    @classmethod
    def _check_name(cls, name: str) -> str:
        if not ACCOUNT_NAME.fullmatch(name) or name.isdigit():
            raise ValueError(
                f"{name!r} is not an account name: use 1-64 letters, digits, '_', '.' or '-', "
                "not all digits"
            )
        return name


class ApiConfig(_Model):
    """`api`: how the dispatcher runs actions."""

    rate_limit_interval: Annotated[int, Field(ge=0)] = 500
    """Interval in ms between queued `<action>_rate_limited` calls."""
    shutdown_grace: Annotated[float, Field(ge=0)] = 10.0
    """Seconds in-flight requests and WebSocket calls get to finish on SIGTERM/SIGINT: one
    deadline shared by every listener and the `_async` calls, not a grace each."""
    max_async_calls: Annotated[int, Field(gt=0)] = 1000
    """`<action>_async` calls running in the background at once; beyond it a call is refused
    with 1200 (a message naming this limit) and does not run."""


class NatsTlsConfig(_Model):
    """`cluster.nats.tls`: TLS to the NATS servers."""

    model_config = ConfigDict(extra="forbid")

    ca: str | None = None
    """CA bundle (PEM) that signed the servers' certificates; the system's when absent."""
    cert: str | None = None
    """Client certificate (PEM), for servers that verify clients."""
    key: str | None = None
    """The client certificate's private key (PEM)."""


class NatsConfig(_Model):
    """`cluster.nats`: how to reach the NATS servers (JetStream enabled)."""

    model_config = ConfigDict(extra="forbid")

    url: str | None = None
    """One server, `nats://host:4222` (`tls://` for TLS)."""
    urls: tuple[str, ...] = ()
    """Several servers of one NATS cluster (instead of `url`)."""
    credentials: str | None = None
    """A `.creds` file (user JWT and NKey seed) for servers that require one."""
    token: str = ""
    """A token for servers that require one. Supports `${ENV_VAR}`."""
    tls: NatsTlsConfig | None = None
    """TLS settings; `tls://` URLs use TLS with the system CAs without this section."""
    connect_timeout: Annotated[int, Field(gt=0)] = 2000
    """How long (ms) one connection attempt may take; the gateway keeps retrying meanwhile."""

    def servers(self) -> list[str]:
        """Every server URL (`url` and `urls`)."""
        return [*([self.url] if self.url else []), *self.urls]

    @model_validator(mode="after")
    def _some_server(self) -> NatsConfig:
        for server in self.servers():
            if not re.match(r"^(nats|tls|ws|wss)://", server):
                raise ValueError(f"{server!r} is not a NATS URL (nats://host:4222, tls://...)")
        if not self.servers():
            raise ValueError("name the NATS server with `url` (or several with `urls`)")
        return self


class ClusterEventsConfig(_Model):
    """`cluster.events`: the JetStream stream holding every account's events."""

    model_config = ConfigDict(extra="forbid")

    max_age: Annotated[int, Field(gt=0)] = 24 * 3600 * 1000
    """How long (ms) an event is kept for consumers that were away (a restarting node's bots
    get what they missed within it)."""
    max_bytes: Annotated[int, Field(gt=0)] = 1024 * 1024 * 1024
    """Largest size of the stream in bytes; the oldest events go first beyond it."""
    replicas: Annotated[int, Field(ge=1, le=5)] = 1
    """Copies of the stream in a NATS cluster (1 on a single server)."""


class ClusterConfig(_Model):
    """`cluster`: gateways sharing accounts and events through NATS JetStream. Absent, the
    gateway is a single node with its in-process event bus. Unknown keys are errors."""

    model_config = ConfigDict(extra="forbid")

    nats: NatsConfig
    """The NATS servers."""
    node: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
    """This gateway's name in the cluster (unique per node: durable consumers are named after
    it, so a restarted node resumes where it stopped)."""
    prefix: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,32}$")] = "onebot"
    """The first token of every subject, stream and bucket name (several clusters can share
    one NATS)."""
    events: ClusterEventsConfig = ClusterEventsConfig()
    """Retention of the event stream."""
    directory_ttl: Annotated[int, Field(ge=1000)] = 15000
    """An account whose node stops refreshing it is offline after this many ms."""
    request_timeout: Annotated[int, Field(gt=0)] = 30000
    """How long (ms) a call for an account on another node waits for its answer (1200 after)."""
    buffer_size: Annotated[int, Field(gt=0)] = 10000
    """Events of this node's accounts held while NATS is unreachable (the oldest are dropped
    beyond it, counted), published when it returns."""


class AdminConfig(_Model):
    """`admin`: health, readiness, Prometheus metrics and the OpenAPI document."""

    host: str = "127.0.0.1"
    """Address to bind. A non-loopback address needs a token (or `allowInsecure`)."""
    port: Annotated[int, Field(ge=0, le=65535)] = 9090
    """TCP port; 0 picks a free port."""
    token: str = ""
    """Token for every endpoint except `/healthz` (which reveals nothing)."""
    allow_insecure: bool = False
    """Allow a non-loopback bind with an empty token."""


class GatewayConfig(_Model):
    """The whole config file."""

    network: NetworkConfig = NetworkConfig()
    """Adapter lists (NapCat's `network`)."""
    music_sign_url: str = ""
    """Music card signing service (NapCat field; used by the relay's upstream)."""
    enable_local_file2_url: bool = False
    """Include `base64` of local files in `get_file`/`get_image`/`get_record` answers."""
    parse_mult_msg: bool = False
    """Expand incoming `forward` segments with their nested messages (`content`)."""
    image_download_proxy: str = ""
    """HTTP proxy for downloading `http(s)://` media (NapCat field)."""
    timeout: TimeoutConfig = TimeoutConfig()
    """Media timeouts (NapCat field)."""
    backend: BackendConfig = SandboxBackendConfig()
    """The account behind the gateway; the sandbox when absent. For several accounts use
    `accounts` instead (not both)."""
    accounts: tuple[AccountConfig, ...] | None = None
    """Several accounts behind one gateway, each with its own backend (instead of `backend`).
    Entries serve all of them unless their `accounts` says which."""
    api: ApiConfig = ApiConfig()
    """Dispatcher settings."""
    admin: AdminConfig | None = None
    """The admin listener; off when absent."""
    cluster: ClusterConfig | None = None
    """Several gateways sharing accounts and events through NATS JetStream; off when absent."""

    @model_validator(mode="before")
    @classmethod
    def _default_backend_type(cls, data: Any) -> Any:
        # A `backend` section without `type` is the sandbox, as is no section at all.
        backend = data.get("backend") if isinstance(data, dict) else None
        if isinstance(backend, dict) and "type" not in backend:
            return {**data, "backend": {**backend, "type": "sandbox"}}
        return data

    @model_validator(mode="after")
    def _check_entries(self) -> GatewayConfig:
        _check_unique_names(self.network)
        _check_listen_addresses(self.network)
        _check_insecure_binds(self.network)
        _check_accounts(self)
        admin = self.admin
        for path, relay in self.backends():
            if (
                isinstance(relay, RelayBackendConfig)
                and relay.mode == "reverse"
                and not relay.token
                and not relay.allow_insecure
                and not is_loopback(relay.host)
            ):
                raise ValueError(
                    f"{path}.token: listening on non-loopback address {relay.host!r} "
                    "with an empty token would let anyone pose as the upstream; set a "
                    "token or `allowInsecure: true`"
                )
        if admin and not admin.token and not admin.allow_insecure and not is_loopback(admin.host):
            raise ValueError(
                f"admin.token: binding non-loopback address {admin.host!r} with an "
                "empty token would expose the gateway; set a token or "
                "`allowInsecure: true`"
            )
        return self

    def account_configs(self) -> tuple[AccountConfig, ...]:
        """Every account: those of `accounts`, or the one of `backend` (named `default`)."""
        if self.accounts is not None:
            return self.accounts
        return (AccountConfig(name=DEFAULT_ACCOUNT, backend=self.backend),)

    def backends(self) -> Iterator[tuple[str, SandboxBackendConfig | RelayBackendConfig]]:
        """Every account's backend section with its path in the file (`backend`,
        `accounts[1].backend`)."""
        if self.accounts is None:
            yield "backend", self.backend
            return
        for index, account in enumerate(self.accounts):
            yield f"accounts[{index}].backend", account.backend


def _check_accounts(config: GatewayConfig) -> None:
    """`backend` xor `accounts`; unique account names and sandbox databases; entries name only
    accounts that exist (a QQ number may name an account whose number is learned later)."""
    accounts = config.accounts
    if accounts is not None and "backend" in config.model_fields_set:
        raise ValueError(
            "backend, accounts: a config has either `backend` (one account) or `accounts` "
            "(several, each with its own backend), not both; move the backend into an account"
        )
    if accounts is not None and not accounts and config.cluster is None:
        raise ValueError(
            "accounts: list at least one account (or use `backend` for one); only a cluster "
            "node may host none"
        )
    names: dict[str, int] = {}
    databases: dict[str, int] = {}
    numbers: dict[int | str | None, int] = {}
    """A sandbox account's QQ number: its `selfId`, else its world's own (the same world file
    gives the same number)."""
    for index, account in enumerate(config.account_configs()):
        if account.name in names:
            raise ValueError(
                f"accounts[{index}].name: duplicate name {account.name!r} "
                f"(also accounts[{names[account.name]}])"
            )
        names[account.name] = index
        backend = account.backend
        if isinstance(backend, SandboxBackendConfig) and backend.database != ":memory:":
            where = str(Path(backend.database).resolve())
            if where in databases:
                raise ValueError(
                    f"accounts[{index}].backend.database: {backend.database!r} is already the "
                    f"database of accounts[{databases[where]}]; each account needs its own"
                )
            databases[where] = index
        if isinstance(backend, SandboxBackendConfig):
            number = backend.self_id or f"world:{backend.world}"
            if number in numbers:
                other = numbers[number]
                same = (
                    f"QQ number {number}"
                    if isinstance(number, int)
                    else f"world's own QQ number ({backend.world or 'the built-in world'})"
                )
                raise ValueError(
                    f"accounts[{index}].backend.selfId: accounts[{other}] and accounts[{index}] "
                    f"would both be the {same}; give each sandbox account its own `selfId`"
                )
            numbers[number] = index
    for kind, index, entry in config.network.entries():
        for position, ref in enumerate(entry.accounts or ()):
            if isinstance(ref, str) and ref not in names:
                known = ", ".join(repr(name) for name in names)
                raise ValueError(
                    f"{_entry_path(kind, index)}.accounts[{position}]: no account is named "
                    f"{ref!r} (accounts: {known}; a QQ number names an account by self_id)"
                )
    _check_relay_listeners(config)


def _check_relay_listeners(config: GatewayConfig) -> None:
    """Reverse relay accounts on one `host:port` share its listener, which hands each upstream
    to the account of its path and X-Self-ID: each sets a distinct `selfId` (paths may differ).
    A relay listener whose address overlaps another's or a server entry's (the same port on
    the same host, a wildcard or `localhost`) could not bind."""
    listeners: dict[tuple[str, int], list[tuple[str, RelayBackendConfig]]] = {}
    for path, relay in config.backends():
        if isinstance(relay, RelayBackendConfig) and relay.mode == "reverse" and relay.port:
            listeners.setdefault((relay.host, relay.port), []).append((path, relay))
    taken = [
        (_entry_path(kind, index), entry.host, entry.port)
        for kind, index, entry in config.network.entries()
        if isinstance(entry, _ServerEntry) and entry.enable and entry.port
    ]
    for (host, port), members in listeners.items():
        for owner, other, other_port in taken:
            same = _normal_host(host) == _normal_host(other)
            if port == other_port and (same or _is_wildcard(host) or _is_wildcard(other)):
                raise ValueError(
                    f"{members[0][0]}.port: the relay listener {host}:{port} overlaps "
                    f"{other}:{port} of {owner} (accounts share a relay listener by naming the "
                    "same host and port; nothing else can listen there)"
                )
        taken.append((members[0][0], host, port))
        if len(members) < 2:
            continue
        owners: dict[int, str] = {}
        for path, relay in members:
            if not 0 < relay.self_id < 2**63:
                raise ValueError(
                    f"{path}.selfId: the relay listener {host}:{port} is shared by "
                    f"{', '.join(p for p, _ in members)}, whose upstreams are told apart by "
                    "X-Self-ID; set selfId to this account's QQ number"
                )
            if relay.self_id in owners:
                raise ValueError(
                    f"{path}.selfId: {relay.self_id} is also the selfId of "
                    f"{owners[relay.self_id]} on the shared relay listener {host}:{port}; "
                    "each account's upstream needs its own"
                )
            owners[relay.self_id] = path


def _entry_path(kind: str, index: int) -> str:
    return f"network.{kind}[{index}]"


def _check_unique_names(network: NetworkConfig) -> None:
    seen: dict[str, str] = {}
    for kind, index, entry in network.entries():
        path = _entry_path(kind, index)
        if entry.name in seen:
            raise ValueError(
                f"{path}.name: duplicate name {entry.name!r} (also {seen[entry.name]})"
            )
        seen[entry.name] = path


def _check_listen_addresses(network: NetworkConfig) -> None:
    taken: dict[tuple[str, int], str] = {}
    for kind, index, entry in network.entries():
        if not isinstance(entry, _ServerEntry) or not entry.enable or entry.port == 0:
            continue
        path = _entry_path(kind, index)
        host = _normal_host(entry.host)
        for (other_host, port), other in taken.items():
            clash = port == entry.port and (
                host == other_host or _is_wildcard(host) or _is_wildcard(other_host)
            )
            if clash:
                raise ValueError(
                    f"{path}: {entry.host}:{entry.port} is already used by {other} "
                    "(two enabled entries cannot listen on one host and port)"
                )
        taken[(host, entry.port)] = path


def _check_insecure_binds(network: NetworkConfig) -> None:
    for kind, index, entry in network.entries():
        if not isinstance(entry, _ServerEntry) or not entry.enable:
            continue
        if not entry.token and not entry.allow_insecure and not is_loopback(entry.host):
            raise ValueError(
                f"{_entry_path(kind, index)}.token: binding non-loopback address "
                f"{entry.host or '(all interfaces)'!r} with an empty token would expose the "
                "account; "
                "set a token or `allowInsecure: true`"
            )


def _normal_host(host: str) -> str:
    return "127.0.0.1" if host == "localhost" else host


def _is_wildcard(host: str) -> bool:
    return host in ("", "0.0.0.0", "::")  # noqa: S104 - recognising wildcards, not binding them


def is_loopback(host: str) -> bool:
    """True for `localhost` and loopback IP literals; hostnames are never assumed local."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


# --- loading -----------------------------------------------------------------------------------

_ENV_REF = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-(.*?))?\}")


def expand_env(value: Any, env: Mapping[str, str], path: str = "") -> Any:
    """Replace `${VAR}` and `${VAR:-default}` in every string of a parsed document.

    `$$` is a literal `$`. An unset variable without a default is a ConfigError naming the field.
    """
    if isinstance(value, str):
        return _expand_string(value, env, path)
    if isinstance(value, dict):
        return {k: expand_env(v, env, f"{path}.{k}" if path else str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [expand_env(v, env, f"{path}[{i}]") for i, v in enumerate(value)]
    return value


def _expand_string(text: str, env: Mapping[str, str], path: str) -> str:
    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, default = match.group(1), match.group(2)
        if name in env and (env[name] or default is None):
            return env[name]
        if default is not None:
            return default
        raise ConfigError(
            f"{path}: environment variable {name} is not set (use ${{{name}:-default}})"
        )

    return _ENV_REF.sub(replace, text)


def parse_config(document: Any, env: Mapping[str, str] | None = None) -> GatewayConfig:
    """Validate an already-parsed document; raises ConfigError with one line per bad field."""
    if not isinstance(document, dict):
        raise ConfigError(f"the top level must be an object, got {type(document).__name__}")
    expanded = expand_env(document, os.environ if env is None else env)
    try:
        return GatewayConfig.model_validate(expanded)
    except ValidationError as error:
        raise ConfigError(format_validation_error(error)) from None


def read_document(path: str | Path) -> Any:
    """Read and parse a JSON or JSON5 file; ConfigError names the file and position."""
    file = Path(path)
    try:
        data = file.read_bytes()
    except OSError as error:
        raise ConfigError(f"{file}: cannot read config file: {error.strerror}") from None
    try:
        return jsonio.loads(data)
    except jsonio.JsonError as error:
        raise ConfigError(f"{file}: not valid JSON or JSON5: {error}") from None


def load_config(path: str | Path, env: Mapping[str, str] | None = None) -> GatewayConfig:
    """Read, expand and validate a JSON or JSON5 config file."""
    document = read_document(path)
    try:
        return parse_config(document, env)
    except ConfigError as error:
        raise ConfigError(f"{path}: {error}") from None


def format_validation_error(error: ValidationError) -> str:
    """One line per error: `network.httpServers[0].port: <what is wrong> (got ...)`."""
    lines = []
    for item in error.errors(include_url=False):
        path = _format_loc(item["loc"])
        message = item["msg"]
        if item["type"] == "value_error":
            # Our cross-field checks already name their path.
            message = message.removeprefix("Value error, ")
            lines.append(message if not path else f"{path}: {message}")
            continue
        if item["type"] == "extra_forbidden":
            lines.append(_unknown_field(item["loc"], path))
            continue
        if item["type"] == "union_tag_invalid":
            tag = item.get("ctx", {}).get("tag")
            expected = item.get("ctx", {}).get("expected_tags")
            lines.append(f"{path}.type: unknown type {tag!r} (expected {expected})")
            continue
        got = item.get("input")
        suffix = (
            "" if item["type"] == "missing" or isinstance(got, dict | list) else f" (got {got!r})"
        )
        lines.append(f"{path or '(top level)'}: {message}{suffix}")
    return "\n".join(lines)


_STRICT_SECTIONS: dict[str, type[BaseModel]] = {
    "actions": ActionsConfig,
    "sendRate": SendRateConfig,
    "cluster": ClusterConfig,
    "nats": NatsConfig,
    "events": ClusterEventsConfig,
    "tls": NatsTlsConfig,
}
"""Entry sections whose unknown keys are errors (besides `network` itself), by key."""


def _unknown_field(loc: tuple[int | str, ...], path: str) -> str:
    section = _STRICT_SECTIONS.get(str(loc[-2])) if len(loc) > 1 else None
    if section is None:
        return f"{path}: unknown adapter list (expected one of {', '.join(NETWORK_KEYS)})"
    known = ", ".join(info.alias or name for name, info in section.model_fields.items())
    return f"{path}: unknown field (expected one of {known})"


def _format_loc(loc: tuple[int | str, ...]) -> str:
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        elif part in ("sandbox", "relay") and text.endswith("backend"):
            continue  # the discriminated union's tag, not a field
        elif not _PLAIN_KEY.fullmatch(part):
            # A key a file may hold but a path cannot show (a newline, a space, nothing): quoted,
            # so every error stays one line and the key is seen as it is.
            text += f"[{part!r}]"
        else:
            text += f".{part}" if text else part
    return text


_PLAIN_KEY = re.compile(r"[A-Za-z0-9_$-]+")


def unknown_keys(
    document: Any, model: type[BaseModel] = GatewayConfig, path: str = ""
) -> list[str]:
    """Paths of keys the models do not know (they are ignored, as NapCat does; callers warn).

    Known keys come from the models themselves (field names and their camelCase aliases), so
    a new field is never reported. A section of a discriminated union (`backend`) is checked
    against the member its `type` selects, the default member's without one: a relay's
    `callTimeout` is known, a sandbox's `callTimeout` is reported, since the sandbox ignores it.
    """
    if not isinstance(document, dict):
        return []
    return _unknown_in(document, (model,), path)


def _unknown_in(
    document: dict[Any, Any], models: tuple[type[BaseModel], ...], path: str
) -> list[str]:
    known: dict[Any, FieldInfo] = {}
    for model in reversed(models):  # the first model's field wins a key several define
        for name, info in model.model_fields.items():
            known[name] = info
            if info.alias:
                known[info.alias] = info
    found = []
    for key, value in document.items():
        where = f"{path}.{key}" if path else str(key)
        field = known.get(key)
        if field is None:
            found.append(where)
            continue
        items = enumerate(value) if isinstance(value, list) else [(None, value)]
        for index, item in items:
            candidates = _models_for(field, item)
            if candidates and isinstance(item, dict):
                found += _unknown_in(
                    item, candidates, where if index is None else f"{where}[{index}]"
                )
    return found


def _models_for(field: FieldInfo, value: Any) -> tuple[type[BaseModel], ...]:
    """The models that validate `value` in `field`: for a discriminated union, the member its
    tag selects (the default's model without a tag; none for an unknown tag, which validation
    reports); for any other field, every model it names."""
    models = _models_in(field.annotation)
    key = field.discriminator
    if len(models) < 2 or not isinstance(key, str) or not isinstance(value, dict):
        return models
    if key not in value:
        default = field.get_default(call_default_factory=True)
        return (type(default),) if isinstance(default, BaseModel) else models
    for model in models:
        tag = model.model_fields.get(key)
        if tag is not None and value[key] in get_args(tag.annotation):
            return (model,)
    return ()


def _models_in(annotation: Any) -> tuple[type[BaseModel], ...]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return (annotation,)
    found: tuple[type[BaseModel], ...] = ()
    for arg in get_args(annotation):
        found += tuple(m for m in _models_in(arg) if m not in found)
    return found


def json_schema() -> dict[str, Any]:
    """JSON Schema of the config file, field docstrings as descriptions."""
    schema = GatewayConfig.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "OneBot Gateway config"
    return schema


class RuntimeSettings(BaseSettings):
    """Process settings from the environment (`ONEBOT_GATEWAY_*`); CLI flags override them."""

    model_config = SettingsConfigDict(env_prefix="ONEBOT_GATEWAY_", frozen=True)

    config: str = "onebot11.json"
    """Config file used when `--config` is not given."""
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    """Lowest level logged."""
    log_format: Literal["auto", "console", "json"] = "auto"
    """`auto`: console on a TTY, JSON lines otherwise."""
