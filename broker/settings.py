"""All of Toshi's settings, in one place: defaults, ``TOSHI_*`` environment variables, CLI flags.

Nothing else in the code reads ``os.environ``. Nested groups use ``__`` in variable names, e.g.
``TOSHI_CONTEXTS__FETCH_TIMEOUT=2``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class ContextSettings(BaseModel):
    """How user @contexts are obtained."""

    core: str = Field(
        "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.8.jsonld",
        description="Core @context URL applied last to every request (v1.6-v1.9 are built in).",
    )
    fetch_timeout: float = Field(5.0, gt=0, description="Seconds to wait for a remote @context.")
    max_bytes: int = Field(1_048_576, gt=0, description="Largest remote @context accepted.")
    cache_size: int = Field(512, gt=0, description="Distinct @contexts kept processed in memory.")


class SqliteSettings(BaseModel):
    """The embedded SQLite store."""

    synchronous: Literal["normal", "full", "extra"] = Field(
        "normal",
        description="normal: acknowledged writes survive a crash of the broker process; "
        "full: they also survive a power cut (one fsync per write batch).",
    )


class LimitSettings(BaseModel):
    """Protection against oversized requests."""

    max_body_bytes: int = Field(1_048_576, gt=0, description="Largest request body (413 above).")
    default_page_size: int = Field(20, gt=0, description="Entities per page when no limit given.")
    max_page_size: int = Field(1000, gt=0, description="Largest limit a query may ask for.")


class NotificationSettings(BaseModel):
    """How notifications are delivered."""

    durable: bool = Field(
        True,
        description="Save each notification before the write that caused it is acknowledged, "
        "and send what was not delivered again after a restart (at-least-once).",
    )
    queue_size: int = Field(
        1000,
        gt=0,
        description="Notifications waiting per receiver (scheme://host:port); when full, the "
        "oldest is dropped and counted as a failure of its subscription.",
    )
    concurrency: int = Field(4, gt=0, description="Deliveries in flight per receiver.")
    request_timeout: float = Field(10.0, gt=0, description="Seconds to wait for a receiver.")
    max_attempts: int = Field(
        20, gt=0, description="Attempts per notification (retries back off exponentially)."
    )
    max_retry_time: float = Field(
        600.0, ge=0, description="Seconds after which a notification is no longer retried."
    )
    backoff_base: float = Field(
        0.2,
        gt=0,
        description="Bound of the first retry's delay in seconds; it doubles with each attempt "
        "(the delay is random below it: full jitter).",
    )
    backoff_cap: float = Field(30.0, gt=0, description="Largest retry delay bound in seconds.")
    idle_timeout: float = Field(
        60.0, gt=0, description="Seconds a receiver with nothing to send keeps its worker."
    )
    drain_timeout: float = Field(
        5.0,
        ge=0,
        description="Seconds a stopping broker waits for deliveries in flight; what is left "
        "is sent again after the restart.",
    )


class MqttSettings(BaseModel):
    """The MQTT / LoRaWAN ingest adapter (off unless a URL or a LoRaWAN group is provisioned)."""

    url: str | None = Field(
        None,
        description="The city's MQTT broker for IoT Agent JSON devices, e.g. "
        "mqtt://user:pass@127.0.0.1:1883 (mqtts:// for TLS). Unset: no connection to it.",
    )
    client_id: str | None = Field(
        None,
        description="MQTT client id: the broker keeps Toshi's session (QoS 1 messages "
        "published while Toshi restarts) under it, so keep it stable, and never let two "
        "installations share one. Unset: toshi-<installation id> (an id generated once and "
        "kept in the store), plus -<host name> with a MongoDB store, whose replicas each need "
        "their own.",
    )
    shared_group: str | None = Field(
        None,
        description="Subscribe as $share/<group>/<topic> so the replicas of one installation "
        "split the messages. Unset: toshi-<installation id>, so another installation on the "
        "same broker never takes this one's messages; empty for brokers without shared "
        "subscriptions.",
    )
    max_inflight: int = Field(
        1000,
        gt=0,
        le=65535,  # MQTT 5.0 §3.1.2.11.3: the broker is told it as Receive Maximum
        description="Messages being ingested at once per MQTT connection (back-pressure).",
    )
    session_expiry: int = Field(
        3600,
        ge=0,
        description="Seconds the MQTT broker keeps Toshi's session (and queues its messages) "
        "while Toshi is away.",
    )
    tls_ca_file: str | None = Field(None, description="CA bundle for mqtts:// brokers.")
    context: str | None = Field(
        None,
        description="@context URL that provisioned attribute names and entity types are "
        "expanded with (e.g. a Smart Data Models context); unset: the core context.",
    )
    dead_letters: int = Field(
        1000, gt=0, description="Rejected messages kept per tenant for GET /iot/dead-letters."
    )


class Settings(BaseSettings):
    """Toshi's configuration."""

    model_config = SettingsConfigDict(
        env_prefix="TOSHI_", env_nested_delimiter="__", extra="ignore"
    )

    host: str = Field("0.0.0.0", description="Interface to listen on.")  # noqa: S104
    port: int = Field(1026, ge=0, le=65535, description="HTTP port (1026 is NGSI's usual port).")
    store: str = Field(
        "sqlite:///./toshi-data",
        description="Where entities live: sqlite:///RELATIVE/DIR, sqlite:////ABSOLUTE/DIR, "
        "or mongodb://HOST:PORT/DBPREFIX.",
    )
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        "info", description="Log verbosity."
    )
    access_log: bool = Field(False, description="Log every HTTP request (costly at high rates).")
    contexts: ContextSettings = Field(default_factory=ContextSettings)
    sqlite: SqliteSettings = Field(default_factory=SqliteSettings)
    limits: LimitSettings = Field(default_factory=LimitSettings)
    notifications: NotificationSettings = Field(default_factory=NotificationSettings)
    mqtt: MqttSettings = Field(default_factory=MqttSettings)
