"""A device's messages are written in the order they arrived, whole (ingest, issue 11 review).

Found by the README test: a message carrying two readings was written reading by reading,
each taking the entity's lock anew, so a message that arrived after it could be written in
between, and the older message's last reading then overwrote the newer value.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from adapters.ingest import IngestService
from broker.app import open_runtime
from broker.services.dead_letters import DeadLetters
from broker.services.provisioning.parse import parse_devices, parse_groups
from broker.settings import Settings


async def test_a_later_message_is_not_overtaken_by_an_earlier_multi_reading_one(
    tmp_path: Path,
) -> None:
    async with open_runtime(Settings(store=f"sqlite:///{tmp_path}")) as runtime:
        assert runtime.provisioning is not None
        groups = parse_groups(
            {
                "groups": [
                    {
                        "apikey": "k1",
                        "resource": "/iot/json",
                        "entity_type": "WaterObserved",
                        "attributes": [{"object_id": "lvl", "name": "height", "type": "Number"}],
                    }
                ]
            }
        )
        await runtime.provisioning.create_groups("towna", groups)
        devices = parse_devices(
            {"devices": [{"device_id": "g7", "apikey": "k1", "entity_name": "urn:ngsi-ld:W:g7"}]}
        )
        await runtime.provisioning.create_devices("towna", devices)
        ingest = IngestService(
            runtime.entities, runtime.provisioning, runtime.contexts.core, DeadLetters()
        )
        for _ in range(20):
            earlier = ingest.handle_iota(
                "/json/k1/g7/attrs",
                b'[{"lvl": 1, "TimeInstant": "2025-03-14T06:35:00Z"},'
                b' {"lvl": 2, "TimeInstant": "2025-03-14T06:40:00Z"}]',
            )
            later = ingest.handle_iota("/json/k1/g7/attrs/lvl", b"3")
            # Started in arrival order, run concurrently as the MQTT source runs them.
            await asyncio.gather(asyncio.ensure_future(earlier), asyncio.ensure_future(later))
            doc = await runtime.entities.retrieve("towna", "urn:ngsi-ld:W:g7")
            (height,) = doc["attrs"][runtime.contexts.core.expand("height")]
            assert height["value"] == 3
