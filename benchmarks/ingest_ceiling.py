"""The ingest ceiling, the same-run baseline of ``ingest.py``: Mosquitto's own pub -> sub rate.

Run by ``ingest.py`` as a process pinned to the core Toshi gets (``taskset``): one plain
paho-mqtt subscriber (MQTT 5.0, QoS 1, paho's own loop, acknowledging each message when its
callback returns) on ``--topic``, counting messages. The same publishers send it the same
measures as Toshi gets, so ``Toshi's rate ÷ this`` is the share of the broker-to-subscriber path
that decoding, mapping and committing entity updates leave. It prints ``ready`` once subscribed,
its running count every ``PROGRESS_EVERY`` messages (``ingest.py`` paces its publishers by it),
and at the end one JSON object: ``{"count": N, "cpu": CPU seconds since ready}``. It stops
after ``--count`` messages or ``--timeout`` seconds.

It asks for Toshi's Receive Maximum (``RECEIVE_MAXIMUM``, the default
``TOSHI_MQTT__MAX_INFLIGHT``), so Mosquitto keeps as much for it as for Toshi. Without one,
Mosquitto allows it 20 messages in flight, and Mosquitto 2.0.11 then dropped messages for it now
and then with only 700 not yet through. With it such a loss remained, rarely, at a window of
1,000: ``ingest.py`` notes it with Mosquitto's log line, and the rate counts what went through.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sys
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

PROGRESS_EVERY = 100
RECEIVE_MAXIMUM = 1_000
HOST, MQTT_PORT = "127.0.0.1", 1883


def subscribe(args: argparse.Namespace) -> None:
    count, ready_cpu = 0, 0.0

    def on_connect(
        client: paho.Client, _: Any, flags: Any, reason: ReasonCode, props: Properties | None
    ) -> None:
        client.subscribe(args.topic, qos=1)

    def on_subscribe(*_: Any) -> None:
        nonlocal ready_cpu
        ready_cpu = time.process_time()
        print("ready", flush=True)

    def on_message(client: paho.Client, _: Any, message: paho.MQTTMessage) -> None:
        nonlocal count
        count += 1
        if count % PROGRESS_EVERY == 0 or count == args.count:
            print(count, flush=True)
        if count >= args.count:
            client.disconnect()

    client = paho.Client(
        CallbackAPIVersion.VERSION2, client_id=args.client_id, protocol=paho.MQTTv5
    )
    client.on_connect, client.on_subscribe, client.on_message = on_connect, on_subscribe, on_message
    properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call] # paho: untyped
    properties.ReceiveMaximum = RECEIVE_MAXIMUM
    client.connect(HOST, MQTT_PORT, clean_start=True, properties=properties)
    deadline = threading.Timer(args.timeout, client.disconnect)
    deadline.daemon = True
    deadline.start()
    client.loop_forever()
    cpu = time.process_time() - ready_cpu
    print(json.dumps({"count": count, "cpu": cpu}), flush=True)


class CeilingSubscriber:
    """The subscriber process above, pinned to ``core``; ``progress`` counts its messages."""

    def __init__(self, core: int, topic: str, client_id: str, count: int) -> None:
        taskset = ["taskset", "-c", str(core)] if shutil.which("taskset") else []
        self.command = [
            *taskset,
            sys.executable,
            str(Path(__file__)),
            *("--topic", topic, "--client-id", client_id, "--count", str(count)),
        ]
        self.expected = count
        self.count = 0
        self.cpu = 0.0  # its CPU seconds once subscribed; known after the block
        self.process: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None

    async def __aenter__(self) -> CeilingSubscriber:
        self.process = await asyncio.create_subprocess_exec(
            *self.command, stdout=asyncio.subprocess.PIPE
        )
        assert self.process.stdout is not None
        ready = await asyncio.wait_for(self.process.stdout.readline(), 10.0)
        if ready.strip() != b"ready":
            raise RuntimeError(f"the ceiling subscriber did not start: {ready!r}")
        self._reader = asyncio.create_task(self._read())
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        assert self.process is not None
        assert self._reader is not None
        try:  # it ends by itself once it has them all, and then reports its CPU time
            await asyncio.wait_for(self.process.wait(), 5.0 if self.count >= self.expected else 0)
        except TimeoutError:
            self.process.terminate()
            await self.process.wait()
        await self._reader

    async def progress(self) -> int:
        return self.count

    async def _read(self) -> None:
        assert self.process is not None
        assert self.process.stdout is not None
        async for line in self.process.stdout:
            if line.startswith(b"{"):
                self.cpu = float(json.loads(line)["cpu"])
            elif line.strip():
                self.count = int(line)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--topic", required=True, help="topic filter to subscribe to")
    parser.add_argument("--client-id", required=True)
    parser.add_argument("--count", type=int, required=True, help="stop after this many")
    parser.add_argument("--timeout", type=float, default=300.0, help="stop after this long")
    subscribe(parser.parse_args())
    sys.exit(0)
