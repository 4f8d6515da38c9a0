"""The dashboard page and its files: ``/dashboard``, its start-up configuration and its
static assets (the app's own, and Leaflet from the ``xstatic-leaflet`` package), all from the
installed packages, so the page works on a network that reaches nothing but Toshi."""

from __future__ import annotations

import mimetypes
from pathlib import Path

import orjson
import xstatic.pkg.leaflet as leaflet
from fastapi import APIRouter, Request, Response
from fastapi.responses import FileResponse

from broker.api.access import PUBLIC
from broker.api.requests import runtime
from broker.ngsild.errors import ResourceNotFound

router = APIRouter(tags=["Dashboard"])
STATIC = Path(__file__).parent / "static"
LEAFLET = Path(leaflet.BASE_DIR)
_CACHE = {"Cache-Control": "no-cache"}
"""Revalidated on each load (ETag): an upgraded Toshi serves its new page at once."""
_CSP = (
    "default-src 'self'; img-src 'self' data: blob: {tiles}; connect-src 'self' {connect}; "
    "style-src 'self' 'unsafe-inline'; frame-ancestors 'none'"
)


def _file(base: Path, relative: str) -> FileResponse:
    """``relative`` inside ``base``, never outside it (no ``..`` escapes)."""
    path = (base / relative).resolve()
    if not path.is_file() or not path.is_relative_to(base.resolve()):
        raise ResourceNotFound(f"no dashboard file {relative}")
    media = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    return FileResponse(path, media_type=media, headers=_CACHE)


@router.get("/dashboard", summary="The dashboard page", dependencies=[PUBLIC])
async def page(request: Request) -> Response:
    settings = runtime(request).settings.dashboard
    response = _file(STATIC, "index.html")
    tiles = _origin(settings.tile_url)
    connect = _origin(settings.oidc_issuer)
    response.headers["Content-Security-Policy"] = _CSP.format(tiles=tiles, connect=connect)
    return response


@router.get(
    "/dashboard/config.json", summary="What the page is told at start", dependencies=[PUBLIC]
)
async def config(request: Request) -> Response:
    parts = runtime(request)
    settings = parts.settings.dashboard
    body = {
        "auth": parts.auth.enabled,
        "tileUrl": settings.tile_url,
        "tileAttribution": settings.tile_attribution,
        "oidc": None
        if settings.oidc_issuer is None
        else {
            "issuer": settings.oidc_issuer,
            "clientId": settings.oidc_client_id,
            "scope": settings.oidc_scope,
        },
        "publicToken": settings.public_token,
    }
    return Response(orjson.dumps(body), media_type="application/json", headers=_CACHE)


@router.get("/dashboard/static/{path:path}", summary="The page's own files", dependencies=[PUBLIC])
async def static(path: str) -> FileResponse:
    return _file(STATIC, path)


@router.get(
    "/dashboard/vendor/leaflet/{path:path}",
    summary="Leaflet, from the xstatic-leaflet package",
    dependencies=[PUBLIC],
)
async def vendor_leaflet(path: str) -> FileResponse:
    return _file(LEAFLET, path)


def _origin(url: str | None) -> str:
    """``scheme://host[:port]`` of ``url`` for the page's content security policy."""
    if not url:
        return ""
    scheme, _, rest = url.partition("://")
    host = rest.split("/", 1)[0].replace("{s}", "*")
    return f"{scheme}://{host}"
