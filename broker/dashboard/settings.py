"""The dashboard's settings (``TOSHI_DASHBOARD__*``), a group of ``broker.settings.Settings``."""

from __future__ import annotations

from pydantic import BaseModel, Field


class DashboardSettings(BaseModel):
    """How the dashboard page is served and what it is told at start."""

    enabled: bool = Field(True, description="Serve the dashboard at /dashboard.")
    tile_url: str | None = Field(
        None,
        description="Base-map tile URL template ({z}/{x}/{y}), e.g. a tile server on the town's "
        "network; unset: no base map, only the districts and features of the definition.",
    )
    tile_attribution: str = Field("", description="Attribution shown for the tiles.")
    oidc_issuer: str | None = Field(
        None,
        description="The town's OpenID Provider the page signs in with (authorization code "
        "with PKCE); unset: no sign-in button.",
    )
    oidc_client_id: str = Field("toshi-dashboard", description="The page's public client id.")
    oidc_scope: str = Field("openid ngsi-ld", description="Scopes the page asks for.")
    public_token: str | None = Field(
        None,
        description="A credential of the public view (an API key of a principal that only "
        "grants reach), which visitors who do not sign in use; unset: no public view "
        "when authentication is on.",
    )
    stream_queue: int = Field(
        1000,
        gt=0,
        description="Events (each the changes of one window) a slow page may fall behind "
        "before it is told to take a new snapshot instead.",
    )
    throttling: float = Field(
        0.1,
        ge=0,
        le=0.5,
        description="The streams' window in seconds: changes within it are sent together in "
        "one event, the latest state of each entity (0: those of one turn of the event loop).",
    )
    heartbeat: float = Field(
        15.0, gt=0, description="Seconds between keep-alive comments on an idle stream."
    )
