"""All of Toshi's settings, in one place: defaults, ``TOSHI_*`` environment variables, CLI flags.

Nothing else in the code reads ``os.environ``. Nested groups use ``__`` in variable names, e.g.
``TOSHI_CONTEXTS__FETCH_TIMEOUT=2``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from broker.dashboard.settings import DashboardSettings


class ContextSettings(BaseModel):
    """How user @contexts are obtained."""

    core: str = Field(
        "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.8.jsonld",
        description="Core @context URL applied last to every request (v1.6-v1.9 are built in).",
    )
    fetch_timeout: float = Field(5.0, gt=0, description="Seconds to wait for a remote @context.")
    max_bytes: int = Field(1_048_576, gt=0, description="Largest remote @context accepted.")
    cache_size: int = Field(512, gt=0, description="Distinct @contexts kept processed in memory.")
    max_hosted: int = Field(
        100, ge=0, description="@contexts a tenant may host (POST /jsonldContexts; 400 above)."
    )
    hosted_max_bytes: int = Field(
        262_144, gt=0, description="Largest @context a tenant may host, as JSON (413 above)."
    )
    mirrors: dict[str, str] = Field(
        default_factory=dict,
        description="Where to download remote @contexts from instead of their own hosts: URL "
        "prefix -> the prefix of a copy (an intranet mirror, for a network that cannot reach "
        'GitHub), e.g. {"https://example.org/models/": "http://mirror.local/models/"}; the '
        "longest matching prefix wins. The @contexts keep their own URLs (Cached ones are "
        "listed by them).",
    )


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


class FederationSettings(BaseModel):
    """Distributed operations: requests forwarded to registered context sources (§4.3.6)."""

    timeout: float = Field(
        2.0,
        gt=0,
        description="Seconds to wait for a context source that registered no "
        "management.timeout; a source that does not answer in time is left out of the answer.",
    )
    cooldown: float = Field(
        30.0,
        ge=0,
        description="Seconds a source that failed `failures` times in a row is not asked "
        "(its registration's management.cooldown, in milliseconds, wins).",
    )
    failures: int = Field(3, gt=0, description="Failures in a row before a source cools down.")
    pseudonym: str | None = Field(
        None,
        description="This broker's name in Via headers (loop detection); unset: "
        "toshi-<installation id>.",
    )
    tenantless: Literal["default", "request"] = Field(
        "default",
        description="Where a request forwarded through a registration without `tenant` goes: "
        "`default`, the source's default tenant (GS CIM 009 §5.2.9); `request`, the tenant of "
        "the request being forwarded (as Orion-LD does, and as a FIWARE IoT Agent serving "
        "several services needs).",
    )


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


SignatureAlgorithm = Literal[
    "RS256",
    "RS384",
    "RS512",
    "PS256",
    "PS384",
    "PS512",
    "ES256",
    "ES384",
    "ES512",
    "EdDSA",
    "Ed25519",
]
"""JWS algorithms a token may be signed with: public-key ones only, so no configuration can
accept ``none`` or an HMAC keyed with a public key (RFC 8725 §2.1, §3.1)."""


class IssuerSettings(BaseModel):
    """One trusted OpenID Connect issuer (a town's Keycloak, Entra ID, a prefecture's own)."""

    issuer: str = Field(description="The exact 'iss' of its tokens, e.g. https://id.town.example")
    audiences: list[str] = Field(
        min_length=1, description="Accepted 'aud' values; a token must name one of them."
    )
    jwks_url: str | None = Field(
        None, description="Its JWKS URL; unset: found by OIDC discovery below the issuer."
    )
    keys_file: str | None = Field(
        None, description="A JWKS file to use instead of fetching (issuer not reachable)."
    )
    algorithms: list[SignatureAlgorithm] = Field(
        ["RS256", "PS256", "ES256"],
        min_length=1,
        description="Accepted signature algorithms (public-key only: RS*, PS*, ES*, EdDSA).",
    )
    roles_claim: str = Field(
        "toshi_roles", description="Dotted path of the roles claim, e.g. realm_access.roles."
    )
    roles_format: Literal["prefixed", "map"] = Field(
        "prefixed",
        description="prefixed: a list (or space-separated string) of 'tenant:role', plain "
        "'role' for default_tenant, 'operator' for the platform; map: {tenant: role(s)}, "
        "'*': 'operator' for the platform.",
    )
    default_tenant: str | None = Field(
        None, description="Tenant that plain role names refer to ('' is the default tenant)."
    )


class EgressRuleSettings(BaseModel):
    """Where notifications may go: networks (CIDR) and host names (exact or *.suffix)."""

    allow: list[str] = Field(
        [], description="If not empty, only these destinations are allowed (deny still wins)."
    )
    deny: list[str] = Field([], description="Destinations refused.")


class EgressSettings(EgressRuleSettings):
    """The platform's notification egress policy, and each tenant's narrowing of it."""

    default_deny: bool = Field(
        True,
        description="Also refuse link-local networks (169.254.0.0/16, fe80::/10) and cloud "
        "metadata endpoints (169.254.169.254, fd00:ec2::254, 100.100.100.200, "
        "metadata.google.internal, metadata).",
    )
    tenants: dict[str, EgressRuleSettings] = Field(
        {},
        description='Per-tenant rules, JSON {"town": {"allow": [...], "deny": [...]}}; they '
        "can only narrow the platform's.",
    )
    resolve_timeout: float = Field(
        2.0, gt=0, description="Seconds to wait for DNS when a subscription is created."
    )


class AuthSettings(BaseModel):
    """Who may do what: bearer tokens, API keys, and where notifications may be sent."""

    enabled: bool = Field(False, description="Require credentials on every request.")
    issuers: list[IssuerSettings] = Field(
        [],
        description="Trusted token issuers, JSON [{issuer, audiences, jwks_url?, keys_file?, "
        "algorithms?, roles_claim?, roles_format?, default_tenant?}].",
    )
    leeway: int = Field(30, ge=0, le=300, description="Seconds of clock skew allowed (exp, nbf).")
    token_cache_size: int = Field(
        10_000, ge=0, description="Verified tokens remembered until they expire (0: none)."
    )
    jwks_refetch_interval: float = Field(
        30.0,
        gt=0,
        description="Least seconds between two JWKS fetches of one issuer (unknown key ids, "
        "failures).",
    )
    jwks_max_age: float = Field(
        3600.0, gt=0, description="Seconds after which an issuer's keys are fetched again."
    )
    jwks_timeout: float = Field(
        3.0, gt=0, description="Seconds to wait for an issuer's discovery document and JWKS."
    )
    jwks_max_bytes: int = Field(
        262_144, gt=0, description="Largest discovery document or JWKS accepted."
    )
    api_keys: bool = Field(True, description="Accept API keys (Bearer toshi_...) too.")
    open_network: bool = Field(
        False,
        description="Allow listening on an interface other than loopback with authentication "
        "off (anyone who reaches the port may then read and change every tenant).",
    )
    egress: EgressSettings = Field(default_factory=EgressSettings)


class TenantSettings(BaseModel):
    """How tenants come to exist, and what each may use."""

    explicit: bool | None = Field(
        None,
        description="Tenants exist only once an operator created them (POST /admin/tenants); "
        "false: a write to a new tenant creates it (development, the conformance suite); "
        "unset: explicit when authentication is on.",
    )
    max_entities: int = Field(
        0, ge=0, description="Default quota of entities per tenant (0: no limit)."
    )
    max_subscriptions: int = Field(
        0, ge=0, description="Default quota of subscriptions per tenant (0: no limit)."
    )
    requests_per_second: float = Field(
        0.0, ge=0, description="Default request rate per tenant, with bursts of 2 s (0: no limit)."
    )


class TemporalSettings(BaseModel):
    """Attribute history (the Temporal API)."""

    history: bool = Field(
        True, description="Record attribute history for tenants that do not say otherwise."
    )
    retention_days: float = Field(
        0.0, ge=0, description="Drop instances recorded longer ago (0: keep them for ever)."
    )
    retention_interval: float = Field(
        600.0, gt=0, description="Seconds between two runs of the retention job."
    )
    max_instances: int = Field(
        10_000, gt=0, description="Most instances of one attribute a temporal response lists."
    )


class ReplicaSettings(BaseModel):
    """Several replicas of one installation on one shared store (MongoDB; docs/design.md)."""

    id: str | None = Field(
        None,
        min_length=1,
        max_length=200,
        description="This replica's name, unique among the replicas and the same across its "
        "restarts (it owns the notifications of the changes it commits); unset: the host name.",
    )
    lease_term: float = Field(
        10.0,
        gt=0,
        description="Seconds a replica's lease on itself lasts (renewed every third of it): "
        "the notifications owed by a replica that died are taken over this long after.",
    )
    margin: float = Field(
        1.0,
        ge=0,
        description="Seconds a replica stops counting on a lease before the database lets it "
        "lapse (clock-rate differences and pauses).",
    )


class Settings(BaseSettings):
    """Toshi's configuration."""

    model_config = SettingsConfigDict(
        env_prefix="TOSHI_", env_nested_delimiter="__", extra="ignore"
    )

    host: str | None = Field(
        None,
        description="Interface to listen on; unset: 0.0.0.0 with authentication on, 127.0.0.1 "
        "(this machine only) without it.",
    )
    port: int = Field(1026, ge=0, le=65535, description="HTTP port (1026 is NGSI's usual port).")
    store: str = Field(
        "sqlite:///./toshi-data",
        description="Where entities live: sqlite:///RELATIVE/DIR, sqlite:////ABSOLUTE/DIR, "
        "or mongodb://HOST:PORT/DBPREFIX.",
    )
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        "info", description="Log verbosity."
    )
    expiry_sweep_interval: float = Field(
        1.0,
        gt=0,
        description="Seconds between sweeps deleting expired transient entities and attributes "
        "(GS CIM 009 §4.22); reads hide them from the moment they expire.",
    )
    access_log: bool = Field(False, description="Log every HTTP request (costly at high rates).")
    fast_lane: bool = Field(
        True,
        description=(
            "Serve the hottest routes (GET /entities, GET /entities/{id}, PATCH "
            "/entities/{id}/attrs/{attr}) without FastAPI's per-request routing and parameter "
            "validation; same handlers, same checks (docs/design.md). Off: FastAPI serves them."
        ),
    )
    doc_cache_entries: int = Field(
        10_000,
        ge=0,
        description=(
            "Stored entity documents kept parsed, with their rendered JSON, keyed by the stored "
            "bytes so a write is seen by the next read (docs/design.md); 0 turns it off."
        ),
    )
    opentelemetry: bool = Field(
        False,
        description=(
            "Let FastAPI emit OpenTelemetry spans, metrics and logs to the providers the process "
            "configures (opentelemetry-sdk and its exporters). Off: no per-request telemetry "
            "checks (they cost about 7% of a small GET)."
        ),
    )
    audit_log: bool | None = Field(
        None,
        description="One JSON line per write and admin action (who, tenant, operation, ids, "
        "status); unset: on when authentication is on.",
    )
    audit_log_file: str | None = Field(
        None, description="File the audit lines are appended to; unset: standard error."
    )
    contexts: ContextSettings = Field(default_factory=ContextSettings)
    sqlite: SqliteSettings = Field(default_factory=SqliteSettings)
    limits: LimitSettings = Field(default_factory=LimitSettings)
    notifications: NotificationSettings = Field(default_factory=NotificationSettings)
    federation: FederationSettings = Field(default_factory=FederationSettings)
    mqtt: MqttSettings = Field(default_factory=MqttSettings)
    auth: AuthSettings = Field(default_factory=AuthSettings)
    tenants: TenantSettings = Field(default_factory=TenantSettings)
    dashboard: DashboardSettings = Field(default_factory=DashboardSettings)
    temporal: TemporalSettings = Field(default_factory=TemporalSettings)
    replicas: ReplicaSettings = Field(default_factory=ReplicaSettings)

    @property
    def listen_host(self) -> str:
        """The interface to listen on: ``host``, else what authentication makes safe."""
        if self.host is not None:
            return self.host
        return "0.0.0.0" if self.auth.enabled else "127.0.0.1"  # noqa: S104

    @property
    def audited(self) -> bool:
        """Whether writes and admin actions are written to the audit log."""
        return self.auth.enabled if self.audit_log is None else self.audit_log

    @property
    def explicit_tenants(self) -> bool:
        """Whether tenants must be created before use."""
        explicit = self.tenants.explicit
        return self.auth.enabled if explicit is None else explicit
