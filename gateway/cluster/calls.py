"""Calls for accounts hosted on another node: NATS requests to `<prefix>.v11.<self_id>.action`,
answered by the hosting node's dispatcher.

A request is JSON `{"action", "params", "echo", "packets"}` (`packets`: whether the caller can
carry a stream action's intermediate packets) with a reply subject on the caller's inbox. The
host answers on it with `{"packet": envelope}` messages (a stream action's packets, in order)
and last `{"final": envelope}`. Packets are flow-controlled: each carries a reply subject the
caller acknowledges once its own transport has taken the packet, and the host keeps at most
`WINDOW` unacknowledged, so a slow bot holds back the host's producer as it would locally.

Failures on the caller's side are 1200 envelopes naming the account: nobody serves it (NATS
answers "no responders" at once), no answer within `timeout` seconds (of silence: a stream's
packets each restart it), or the link to NATS is down (at once, without waiting). Calls are at
most once: a timeout or a lost link may hide a call that did run, and the message says so.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import Callable
from typing import Any

import orjson
import structlog
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from gateway.accounts import Account
from gateway.actions import default_catalog
from gateway.actions.catalog import Catalog, Params
from gateway.cluster.directory import Directory
from gateway.cluster.link import ClusterLink, action_subject, end_task
from gateway.dispatcher import ANSWER_BATCH, Answered, split_suffix
from gateway.protocol import jsonio
from gateway.protocol.envelope import ActionFailed, Envelope, Retcode, encode, failed
from gateway.protocol.stream import Send

log = structlog.get_logger("gateway.cluster")

QUEUE_GROUP_SUFFIX = "-hosts"
"""Hosts of one account (normally one node) answer as one queue group: each call runs once."""
WINDOW = 8
"""A stream call's packets in flight between host and caller before the host waits."""
MAX_RUNNING = 1000
"""Calls one node's responder runs at once; beyond, a call is answered 1200 and not run."""
NO_RESPONDERS = "503"
STOP = b"stop"
"""What a caller acknowledges a packet with once its own client is gone."""


class _Flow:
    """The packets of one stream call the caller has not acknowledged yet."""

    __slots__ = ("changed", "stopped", "unacked")

    def __init__(self) -> None:
        self.unacked = 0
        self.stopped = False
        self.changed = asyncio.Event()


class Responder:
    """Serves this node's hosted accounts: runs the calls other nodes send them on the
    account's dispatcher (looked up at each call: a reload may replace it)."""

    def __init__(self, link: ClusterLink, prefix: str) -> None:
        self.link = link
        self.prefix = prefix
        self.timeout = link.config.request_timeout / 1000
        self._served: dict[str, tuple[Account, Subscription | None]] = {}
        self._running: set[asyncio.Task[None]] = set()
        self._flows: dict[str, _Flow] = {}
        self._acks: tuple[Client, str] | None = None
        self._ids = itertools.count()

    async def start(self) -> None:
        """Subscribe the served accounts whenever the link (re)connects."""
        self.link.on_connect(self._connected)

    async def stop(self, grace: float = 10.0) -> None:
        """Stop taking calls, give running ones `grace` seconds, cancel the rest."""
        self.link.remove_listener(self._connected)
        for name in list(self._served):
            await self.unserve(name)
        if self._running and grace > 0:
            await asyncio.wait(self._running, timeout=grace)
        for task in list(self._running):
            await end_task(task)

    async def serve(self, account: Account) -> None:
        """Answer calls for `account` (by its QQ number, known once its backend started).

        With the link up, calls from other nodes reach it once this returns: publish the
        account in the directory after, not before. An account without a number yet (a relay
        that has not met its upstream) is not subscribed: serve it again once it has one."""
        await self.unserve(account.name)
        self._served[account.name] = (account, None)
        if self.link.connected:
            await self._subscribe(account)

    async def unserve(self, name: str) -> None:
        """Stop answering calls for the account `name` (calls running go on). Once this
        returns, NATS routes its calls to no subscription of this node; a call already on its
        way is answered 1200 (not run)."""
        _account, subscription = self._served.pop(name, (None, None))
        if subscription is None or not self.link.connected:
            return
        try:
            await subscription.drain()  # type: ignore[no-untyped-call]  # reaches `_take` still
            await self.link.settle()  # drain's own round trip can overtake its UNSUB
        except Exception as error:
            log.warning("cluster_unserve_failed", account=name, error=str(error))

    async def resync(self) -> None:
        """Subscribe the accounts that learned their QQ number since they were served (a relay
        meeting its upstream late), and move those whose number changed."""
        if not self.link.connected:
            return
        for account, subscription in list(self._served.values()):
            if not account.self_id:
                continue
            subject = action_subject(self.prefix, account.self_id)
            if subscription is None:
                await self._subscribe(account)
            elif subscription.subject != subject:
                await self.serve(account)

    async def _connected(self) -> None:
        # nats-py subscribes again what it had on a reconnect; this covers accounts served
        # while the link had never been up.
        for account, subscription in list(self._served.values()):
            if subscription is None:
                await self._subscribe(account)

    async def _subscribe(self, account: Account) -> None:
        nc = self.link.nc
        assert nc is not None
        if not account.self_id:
            log.warning("cluster_account_without_self_id", account=account.name)
            return

        async def on_request(msg: Msg) -> None:
            self._take(account, msg)

        subscription = await nc.subscribe(
            action_subject(self.prefix, account.self_id),
            queue=f"{self.prefix}{QUEUE_GROUP_SUFFIX}",
            cb=on_request,
        )
        if self._served.get(account.name, (None,))[0] is not account:  # unserved meanwhile
            await subscription.unsubscribe()
            return
        self._served[account.name] = (account, subscription)
        await self.link.settle()

    def _take(self, account: Account, msg: Msg) -> None:
        """Run one request in a task of its own (a subscription's callbacks run one by one)."""
        if not msg.reply:
            log.warning("cluster_request_without_reply", account=account.name)
            return
        served = self._served.get(account.name, (None,))[0] is account
        work = self._answer(account, msg) if served else self._refuse(account, msg)
        task = asyncio.create_task(work, name=f"cluster-call:{account.name}")
        self._running.add(task)
        task.add_done_callback(self._running.discard)

    async def _refuse(self, account: Account, msg: Msg) -> None:
        message = (
            f"account {account.self_id} is no longer hosted by node {self.link.node!r}; "
            "the call was not run"
        )
        await self._reply(account, msg, failed(Retcode.FAILED, message))

    async def _answer(self, account: Account, msg: Msg) -> None:
        if len(self._running) > MAX_RUNNING:
            final = failed(
                Retcode.FAILED,
                f"node {self.link.node!r} runs {MAX_RUNNING} calls from other nodes already; "
                "this one was not run, retry later",
            )
        else:
            final = await self._run(account, msg)
        await self._reply(account, msg, final)

    async def _reply(self, account: Account, msg: Msg, final: Envelope) -> None:
        """Publish a call's final envelope (a 1200 instead when it is too large for NATS)."""
        data = b'{"final":' + encode(final, jsonio.dumps) + b"}"
        nc = self.link.nc
        if nc is None:
            return
        if len(data) > nc.max_payload:
            message = (
                f"the answer is {len(data)} bytes, more than NATS carries in one message "
                f"(max_payload {nc.max_payload} bytes)"
            )
            echo = final.get("echo")
            data = b'{"final":' + jsonio.dumps(failed(Retcode.FAILED, message, echo)) + b"}"
        try:
            await nc.publish(msg.reply, data)
        except Exception as error:
            log.warning("cluster_answer_lost", account=account.name, error=str(error))

    async def _run(self, account: Account, msg: Msg) -> Envelope:
        """Parse the request and run it on the account's dispatcher."""
        try:
            request = jsonio.loads(msg.data)
        except jsonio.JsonError as error:
            echo = jsonio.salvage_echo(error)
            return failed(Retcode.BAD_REQUEST, f"the cluster request is not JSON: {error}", echo)
        if type(request) is not dict:
            kind = jsonio.type_name(request)
            return failed(Retcode.BAD_REQUEST, f"the cluster request must be an object, got {kind}")
        echo = request.get("echo")
        action = request.get("action")
        if type(action) is not str or not action:
            got = jsonio.type_name(action)
            return failed(
                Retcode.BAD_REQUEST, f"action must be a non-empty string, got {got}", echo
            )
        send = self._sender(msg.reply) if request.get("packets", True) is True else None
        try:
            return await account.dispatcher.call(action, request.get("params"), echo, send)
        finally:
            if send is not None:
                self._flows.pop(getattr(send, "token", ""), None)

    def _sender(self, reply: str) -> Send:
        """The `send` of one stream call: each packet to the caller's inbox, at most `WINDOW`
        unacknowledged."""
        token = str(next(self._ids))
        flow = self._flows[token] = _Flow()
        timeout = self.timeout

        async def send(packet: Envelope) -> None:
            nc = self.link.nc
            if nc is None or flow.stopped:
                raise ConnectionError("the caller is gone")
            while flow.unacked >= WINDOW:
                flow.changed.clear()
                try:
                    async with asyncio.timeout(timeout):
                        await flow.changed.wait()
                except TimeoutError:
                    raise ConnectionError("the caller stopped taking packets") from None
                if flow.stopped:
                    raise ConnectionError("the caller is gone")
            data = b'{"packet":' + jsonio.dumps(packet) + b"}"
            if len(data) > nc.max_payload:
                raise ActionFailed(
                    f"a packet is {len(data)} bytes, more than NATS carries in one message "
                    f"(max_payload {nc.max_payload} bytes): ask for smaller chunks"
                )
            acks = await self._ack_inbox(nc)
            try:
                await nc.publish(reply, data, reply=acks + token)
            except Exception as error:
                raise ConnectionError(f"the cluster link failed: {error}") from error
            flow.unacked += 1

        send.token = token  # type: ignore[attr-defined]  # found again by `_run` to forget it
        return send

    async def _ack_inbox(self, nc: Client) -> str:
        """The prefix of the subjects callers acknowledge packets on (one subscription)."""
        if self._acks is None or self._acks[0] is not nc:
            prefix = nc.new_inbox() + "."
            self._acks = (nc, prefix)
            await nc.subscribe(prefix + "*", cb=self._on_ack)
        return self._acks[1]

    async def _on_ack(self, msg: Msg) -> None:
        flow = self._flows.get(msg.subject.rpartition(".")[2])
        if flow is None:
            return
        if msg.data == STOP:
            flow.stopped = True
        else:
            flow.unacked -= 1
        flow.changed.set()


class RemoteBackend:
    """The `Backend` of an account hosted on another node: its state comes from the directory;
    it runs nothing (its dispatcher is a `RemoteDispatcher`)."""

    kind = "remote"
    passes_through = True
    """Every action goes to the host, whose dispatcher answers 1404 for what it lacks."""

    def __init__(self, self_id: int, directory: Directory) -> None:
        self._self_id = self_id
        self.directory = directory

    @property
    def self_id(self) -> int:
        return self._self_id

    async def start(self) -> None:
        """Nothing to start: the account runs on its node."""

    async def stop(self) -> None:
        """Nothing to stop."""

    def status(self) -> dict[str, Any]:
        online = self.directory.online(self._self_id)
        return {"online": online, "good": online and self.directory.link.connected}

    @property
    def down_reason(self) -> str:
        """Why calls cannot reach the account now ('' when they can)."""
        link = self.directory.link
        if not link.connected:
            return f"the cluster link to NATS is down: {link.last_error or 'not connected'}"
        entry = self.directory.lookup(self._self_id)
        if entry is None:
            return "no node of the cluster hosts it"
        if not entry.live(self.directory.ttl):
            return f"its node {entry.node!r} has it offline or stopped answering"
        return ""

    def supports(self, action: str) -> bool:
        return True

    async def call(self, action: str, params: Params) -> Any:
        raise RuntimeError("a remote account's calls go through its RemoteDispatcher")

    def bind(self, action: str) -> Callable[[Params], Any]:
        raise RuntimeError("a remote account's calls go through its RemoteDispatcher")


class RemoteDispatcher:
    """The dispatcher of an account hosted on another node: the surface of
    `gateway.dispatcher.Dispatcher` the fronts and the supervisor use, each call a request to
    the host. `timeout` is in seconds (`cluster.requestTimeout / 1000`)."""

    def __init__(
        self,
        link: ClusterLink,
        prefix: str,
        self_id: int,
        timeout: float,
        *,
        directory: Directory | None = None,
        catalog: Catalog | None = None,
        backend: RemoteBackend | None = None,
    ) -> None:
        """`directory` names the host in timeouts (and makes the default `backend`);
        `catalog` is what the console lists for the account (the default catalog if None)."""
        self.link = link
        self.self_id = self_id
        self.subject = action_subject(prefix, self_id)
        self.timeout = timeout
        self.directory = directory
        self.catalog = default_catalog() if catalog is None else catalog
        if backend is None and directory is not None:
            backend = RemoteBackend(self_id, directory)
        self.backend = backend
        self.observer: Callable[[list[Answered]], None] | None = None
        """Receives answers in batches, as `(action, retcode, seconds)` (metrics)."""
        self._answered: list[Answered] = []
        self._pending: dict[str, asyncio.Queue[Msg | str]] = {}
        self._inbox: tuple[Client, str] | None = None
        self._inbox_lock = asyncio.Lock()
        self._ids = itertools.count()
        self._idle = asyncio.Event()
        """Set when the last waiting call got its answer (what `stop` waits for)."""

    async def start(self) -> None:
        """Fail the calls waiting for an answer as soon as the link goes down."""
        self.link.on_disconnect(self._link_lost)

    async def stop(self, grace: float = 10.0) -> None:
        """Give calls waiting for an answer `grace` seconds, then answer them 1200."""
        self.link.remove_listener(self._link_lost)
        if self._pending and grace > 0:
            self._idle.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(grace):
                    await self._idle.wait()
        for queue in list(self._pending.values()):
            queue.put_nowait("the gateway is stopping")

    async def call(
        self, action: str, params: Any = None, echo: Any = None, send: Send | None = None
    ) -> Envelope:
        """Run one action on the host and return its envelope (the caller's `echo` in it).
        Never raises for bad input or a failed link."""
        started = time.perf_counter()
        answer = await self._call(action, params, echo, send)
        answered = self._answered
        answered.append((split_suffix(action)[0], answer["retcode"], time.perf_counter() - started))
        if len(answered) >= ANSWER_BATCH:
            self.flush_answered()
        return answer

    def record(self, action: str, retcode: int, seconds: float = 0.0) -> None:
        """Count an answer a client got for this account without a call (see `Dispatcher`)."""
        self._answered.append((action, retcode, seconds))
        if len(self._answered) >= ANSWER_BATCH:
            self.flush_answered()

    def flush_answered(self) -> None:
        """Hand the answers recorded since the last flush to the observer."""
        batch, self._answered = self._answered, []
        if self.observer is not None and batch:
            self.observer(batch)

    def _node(self) -> str:
        entry = self.directory.lookup(self.self_id) if self.directory is not None else None
        return f"node {entry.node!r}" if entry is not None else "node unknown"

    async def _call(self, action: str, params: Any, echo: Any, send: Send | None) -> Envelope:
        nc = self.link.nc
        if nc is None or not self.link.connected:
            return self._failed(self._link_down(), echo)
        request = {"action": action, "params": params, "echo": echo, "packets": send is not None}
        try:
            payload = jsonio.dumps(request)
        except TypeError as error:
            return failed(Retcode.BAD_REQUEST, f"the call cannot be sent as JSON: {error}", echo)
        if len(payload) > nc.max_payload:
            return self._failed(
                f"account {self.self_id}: the call is {len(payload)} bytes, more than NATS "
                f"carries in one message (max_payload {nc.max_payload} bytes); the call was "
                "not run (send a file in smaller chunks)",
                echo,
            )
        token = str(next(self._ids))
        queue: asyncio.Queue[Msg | str] = asyncio.Queue()
        self._pending[token] = queue
        try:
            inbox = await self._reply_inbox(nc)
            await nc.publish(self.subject, payload, reply=inbox + token)
            return await self._answer(nc, queue, echo, send)
        except Exception as error:  # the link failed under the publish
            return self._failed(f"{self._link_down()} ({error or type(error).__name__})", echo)
        finally:
            del self._pending[token]
            if not self._pending:
                self._idle.set()

    async def _answer(
        self, nc: Client, queue: asyncio.Queue[Msg | str], echo: Any, send: Send | None
    ) -> Envelope:
        """Read the host's messages: packets (to `send`, each acknowledged), then the final."""
        gone = False
        while True:
            try:
                async with asyncio.timeout(self.timeout):
                    msg = await queue.get()
            except TimeoutError:
                return self._failed(
                    f"account {self.self_id} ({self._node()}) did not answer within "
                    f"{self.timeout:g} s; the call may have run",
                    echo,
                )
            if isinstance(msg, str):
                return self._failed(f"{msg}; the call to account {self.self_id} may have run", echo)
            if msg.headers and msg.headers.get("Status") == NO_RESPONDERS:
                return self._failed(
                    f"account {self.self_id} is not hosted by any node now; the call was not run",
                    echo,
                )
            body = _reply_body(msg.data)
            if body is None:
                return self._failed(
                    f"account {self.self_id} ({self._node()}) answered something that is not an "
                    "envelope",
                    echo,
                )
            kind, answer = body
            answer["echo"] = echo
            if kind == "final":
                return answer
            if send is not None and not gone:
                try:
                    await send(answer)
                except ConnectionError:
                    gone = True  # the host stops at its next packet; its final is still read
            if msg.reply:
                with contextlib.suppress(Exception):
                    await nc.publish(msg.reply, STOP if gone or send is None else b"")

    def _failed(self, message: str, echo: Any) -> Envelope:
        return failed(Retcode.FAILED, message, echo)

    def _link_down(self) -> str:
        reason = self.link.last_error or "not connected"
        return (
            f"the cluster link to NATS is down: {reason}; account {self.self_id} cannot be reached"
        )

    async def _reply_inbox(self, nc: Client) -> str:
        """The prefix of this dispatcher's reply subjects (one subscription per connection)."""
        inbox = self._inbox
        if inbox is not None and inbox[0] is nc:
            return inbox[1]
        async with self._inbox_lock:
            if self._inbox is None or self._inbox[0] is not nc:
                prefix = nc.new_inbox() + "."
                await nc.subscribe(prefix + "*", cb=self._on_reply)
                self._inbox = (nc, prefix)
            return self._inbox[1]

    async def _on_reply(self, msg: Msg) -> None:
        queue = self._pending.get(msg.subject.rpartition(".")[2])
        if queue is not None:
            queue.put_nowait(msg)

    def _link_lost(self) -> None:
        for queue in self._pending.values():
            queue.put_nowait("the cluster link to NATS went down while waiting for the answer")


def _reply_body(data: bytes) -> tuple[str, Envelope] | None:
    """(`packet` or `final`, envelope) of a host's message, or None if it is neither."""
    try:
        body = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    if type(body) is not dict or len(body) != 1:
        return None
    kind, answer = next(iter(body.items()))
    if kind not in ("packet", "final") or type(answer) is not dict or "retcode" not in answer:
        return None
    return kind, answer
