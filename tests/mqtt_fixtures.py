"""A real MQTT broker for tests, and a subscriber that collects what is published on a topic.

``mqtt_broker`` (session scope) uses the Mosquitto already listening on 127.0.0.1:1883 when there
is one (a developer machine, a CI service container); otherwise it starts a private ``mosquitto``
on a free port for the session. With neither, every test that asks for it fails, saying so: a
notification test that silently does not run proves nothing.

The broker may be shared with other test sessions and other tests, so each test publishes on its
own topic (``unique_topic()``). ``collect`` subscribes with MQTT 5.0 at QoS 2, so a received
message shows the QoS it was *published* with and any MQTT 5.0 properties the publisher set.

``relay`` (a TCP relay that records what clients send, can hold it back from the broker as a
slow link would, and can drop its connections) and
``fake_broker`` (answers CONNECT with given bytes, or never) cover what a healthy broker never does.
``own_mosquitto`` starts a private Mosquitto for one test, and ``locked_mosquitto`` one that
admits only given logins, each limited by an ACL, as a LoRaWAN network server's broker is.

Registered for the whole suite by ``pytest_plugins`` in tests/conftest.py.
"""

from __future__ import annotations

import asyncio
import getpass
import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiomqtt
import orjson
import pytest

SHARED_BROKER = ("127.0.0.1", 1883)


@dataclass(frozen=True)
class MqttBroker:
    """Where a test broker listens (no TLS; anonymous access unless it has ``logins``)."""

    host: str
    port: int

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    def ingest(self, unique: str) -> dict[str, object]:
        """MQTT settings of a broker app ingesting from here, with a client id and share group
        of its own (the shared broker forgets the session soon after the test)."""
        return {
            "url": self.url,
            "client_id": f"toshi-{unique}",
            "shared_group": unique,
            "session_expiry": 5,
        }

    def endpoint(self, topic: str, *, userinfo: str = "") -> str:
        """An NGSI-LD MQTT endpoint URI for ``topic`` on this broker."""
        credentials = f"{userinfo}@" if userinfo else ""
        return f"mqtt://{credentials}{self.host}:{self.port}/{topic}"


def unique_topic(prefix: str = "toshi-test") -> str:
    """A topic no other test (or test session) publishes on."""
    return f"{prefix}/{uuid.uuid4().hex}"


def unused_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (at the time of the call)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="session")
def mqtt_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MqttBroker]:
    """A reachable MQTT broker: the shared one on 127.0.0.1:1883, or a private mosquitto."""
    if _accepts(*SHARED_BROKER):
        yield MqttBroker(*SHARED_BROKER)
        return
    executable = _executable("mosquitto")
    yield from _private_mosquitto(executable, tmp_path_factory.mktemp("mosquitto"))


@contextmanager
def own_mosquitto(workdir: Path) -> Iterator[MqttBroker]:
    """A private anonymous Mosquitto on a free port, which only the test's own clients use."""
    workdir.mkdir(parents=True, exist_ok=True)
    yield from _private_mosquitto(_executable("mosquitto"), workdir)


@contextmanager
def locked_mosquitto(workdir: Path, logins: dict[str, str], acl: str) -> Iterator[MqttBroker]:
    """A private Mosquitto on a free port that admits only ``logins`` (user -> password).

    ``acl`` is the text of a Mosquitto ACL file (``user <name>`` then ``topic read|write
    <filter>`` lines), e.g. each The Things Stack application's login reading only its own
    ``v3/<application>/devices/+/up``.
    """
    executable = _executable("mosquitto")
    workdir.mkdir(parents=True, exist_ok=True)
    passwords = workdir / "passwords"
    passwords.write_text("".join(f"{user}:{password}\n" for user, password in logins.items()))
    passwords.chmod(0o600)
    # Mosquitto reads only hashed password files; -U hashes the plain ones in place.
    subprocess.run([_executable("mosquitto_passwd"), "-U", str(passwords)], check=True)
    acl_file = workdir / "acl"
    acl_file.write_text(acl)
    acl_file.chmod(0o600)
    # Started as root, Mosquitto would switch to its own user, who cannot read these files.
    locks = (
        f"user {getpass.getuser()}\nallow_anonymous false\n"
        f"password_file {passwords}\nacl_file {acl_file}\n"
    )
    yield from _private_mosquitto(executable, workdir, locks)


def _executable(name: str) -> str:
    search_path = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/usr/local/sbin"])
    executable = shutil.which(name, path=search_path)
    if executable is None:
        pytest.fail(
            f"MQTT tests need a broker: no `{name}` executable was found (install Mosquitto, "
            "e.g. `apt-get install mosquitto`), and the shared one on 127.0.0.1:1883 cannot "
            "have logins and ACLs of the test's own."
            if name != "mosquitto" or _accepts(*SHARED_BROKER)
            else "MQTT tests need a broker: nothing accepts connections on 127.0.0.1:1883 and "
            "no `mosquitto` executable was found (install it, e.g. `apt-get install mosquitto`)."
        )
    return executable


@dataclass
class Received:
    """Messages that arrived on a collected topic, in arrival order."""

    messages: list[aiomqtt.Message] = field(default_factory=list)
    _arrival: asyncio.Event = field(default_factory=asyncio.Event)

    def add(self, message: aiomqtt.Message) -> None:
        self.messages.append(message)
        self._arrival.set()

    async def wait_for(self, count: int = 1, within: float = 5.0) -> list[aiomqtt.Message]:
        """The first ``count`` messages; fails the test if they do not arrive ``within`` seconds."""
        try:
            async with asyncio.timeout(within):
                while len(self.messages) < count:
                    self._arrival.clear()
                    await self._arrival.wait()
        except TimeoutError:
            pytest.fail(f"expected {count} MQTT message(s) in {within}s, got {len(self.messages)}")
        return self.messages[:count]

    def json(self, index: int = 0) -> Any:
        """The payload of message ``index``, parsed as JSON."""
        payload = self.messages[index].payload
        assert isinstance(payload, bytes | bytearray)
        return orjson.loads(payload)


@asynccontextmanager
async def collect(broker: MqttBroker, topic: str) -> AsyncIterator[Received]:
    """Subscribe to ``topic`` (MQTT 5.0, QoS 2) and gather its messages while the block runs.

    The subscription is acknowledged before the block starts, so nothing published inside it is
    missed.
    """
    received = Received()
    async with aiomqtt.Client(
        broker.host, broker.port, protocol=aiomqtt.ProtocolVersion.V5
    ) as client:
        await client.subscribe(topic, qos=2)

        async def gather() -> None:
            async for message in client.messages:
                received.add(message)

        gathering = asyncio.create_task(gather())
        try:
            yield received
        finally:
            gathering.cancel()
            with suppress(asyncio.CancelledError):
                await gathering


@dataclass
class Relay:
    """A TCP relay in front of a broker: records what clients send, can hold it back from the
    broker (``hold``, ``release``), can drop every connection."""

    upstream: MqttBroker
    port: int = 0
    connections: int = 0
    sent: bytearray = field(default_factory=bytearray)
    """Every byte clients sent to the relay, held back or not."""
    _writers: set[asyncio.StreamWriter] = field(default_factory=set)
    _flowing: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self._flowing.set()

    def hold(self) -> None:
        """Keep what clients send from the broker until ``release``, closes included: to the
        broker, the connection stays open and silent, as over a congested link."""
        self._flowing.clear()

    def release(self) -> None:
        """Pass on what was held, in order, and everything after it."""
        self._flowing.set()

    def ingest(self, unique: str) -> dict[str, object]:
        """MQTT settings of a broker app ingesting from here, with a client id and share group
        of its own (the shared broker forgets the session soon after the test)."""
        return {
            "url": self.url,
            "client_id": f"toshi-{unique}",
            "shared_group": unique,
            "session_expiry": 5,
        }

    def endpoint(self, topic: str, *, userinfo: str = "") -> str:
        """An endpoint URI for ``topic`` that goes through the relay."""
        return MqttBroker("127.0.0.1", self.port).endpoint(topic, userinfo=userinfo)

    async def cut(self) -> None:
        """Drop every relayed connection, as a broker restart or a network failure would."""
        writers, self._writers = self._writers, set()
        await _close_all(writers)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._writers.add(writer)
        upstream = await asyncio.open_connection(self.upstream.host, self.upstream.port)
        self._writers.add(upstream[1])
        await asyncio.gather(
            _pump(reader, upstream[1], self.sent, self._flowing), _pump(upstream[0], writer)
        )


@asynccontextmanager
async def relay(broker: MqttBroker) -> AsyncIterator[Relay]:
    """A ``Relay`` to ``broker`` on a free 127.0.0.1 port, for the duration of the block."""
    proxy = Relay(broker)
    server = await asyncio.start_server(proxy._handle, "127.0.0.1", 0)
    proxy.port = server.sockets[0].getsockname()[1]
    try:
        yield proxy
    finally:
        server.close()
        await proxy.cut()
        await server.wait_closed()


@asynccontextmanager
async def fake_broker(answer: bytes | None) -> AsyncIterator[int]:
    """A port where a "broker" reads the CONNECT, then sends ``answer`` (None: stays silent)."""
    writers: set[asyncio.StreamWriter] = set()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.add(writer)
        await reader.read(65536)
        if answer is not None:
            writer.write(answer)
        await reader.read()  # hold the connection until the client or the test ends it

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await _close_all(writers)
        await server.wait_closed()


async def _pump(
    source: asyncio.StreamReader,
    sink: asyncio.StreamWriter,
    record: bytearray | None = None,
    flowing: asyncio.Event | None = None,
) -> None:
    """Copy ``source`` to ``sink``, then close ``sink``; bytes are recorded as they are read and
    written only while ``flowing`` is set (reading goes on while it is not)."""
    chunks: asyncio.Queue[bytes] = asyncio.Queue()

    async def read() -> None:
        try:
            while data := await source.read(65536):
                if record is not None:
                    record.extend(data)
                chunks.put_nowait(data)
        except ConnectionError:
            pass
        finally:
            chunks.put_nowait(b"")

    async def write() -> None:
        try:
            while data := await chunks.get():
                if flowing is not None:
                    await flowing.wait()
                sink.write(data)
                await sink.drain()
        except ConnectionError:
            pass
        finally:
            if flowing is not None:
                await flowing.wait()  # the close is held back as well
            sink.close()

    await asyncio.gather(read(), write())


async def _close_all(writers: set[asyncio.StreamWriter]) -> None:
    for writer in writers:
        writer.close()
    for writer in writers:
        with suppress(ConnectionError):
            await writer.wait_closed()


def _private_mosquitto(
    executable: str, workdir: Path, access: str = "allow_anonymous true\n"
) -> Iterator[MqttBroker]:
    port = unused_port()
    config = workdir / "mosquitto.conf"
    config.write_text(f"listener {port} 127.0.0.1\n{access}persistence false\nlog_dest stderr\n")
    log_path = workdir / "mosquitto.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen([executable, "-c", str(config)], stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 10.0
        while not _accepts("127.0.0.1", port):
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"private mosquitto did not start:\n{log_path.read_text()}")
            time.sleep(0.05)
        yield MqttBroker("127.0.0.1", port)
    finally:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _accepts(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False
