"""What a web page may do with a front end: nothing, unless an operator says which page.

A browser lets any page send requests to any address, also to a front end on loopback with
auth off; two checks keep pages out before any other work:

- the `Host` allow-list: a page that rebinds its own DNS name to 127.0.0.1 reaches the front
  end under that name, which is not on the list (400). Loopback names are always on it;
  `CCFLEET_ALLOWED_HOSTS` adds the names clients really use (a Service, an ingress), `*` any;
  the host of `CCFLEET_PUBLIC_URL` is on it too (the batches' `results_url` name it).
  Probes (`/health`, `/ready`) answer whatever the Host: the kubelet sends the pod's IP.
- the `Origin` check: a request a browser sent from another origin is 403, unless
  `CCFLEET_CORS_ORIGINS` names that origin; then Starlette's CORSMiddleware (added after
  this one, api/app.py) answers its preflight and adds the CORS headers. A page served by the
  front end itself (the dashboard) is its own origin.

A `results_url` is built from the request's base URL only after this check, so it names an
allowed host (or CCFLEET_PUBLIC_URL).
"""

from __future__ import annotations

from urllib.parse import urlsplit

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from api.errors import error_response
from shared.errors import FleetError, InvalidRequest, PermissionDenied
from shared.settings import Settings

LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
ANY_HOST = "*"
PROBE_PATHS = frozenset({"/health", "/ready"})


def allowed_hosts(settings: Settings) -> list[str]:
    """The host names an operator allowed: CCFLEET_ALLOWED_HOSTS and CCFLEET_PUBLIC_URL's."""
    public_host = urlsplit(settings.batches.public_url).hostname
    return [*settings.api.allowed_hosts, *([public_host] if public_host else [])]


class BrowserGuard:
    def __init__(self, app: ASGIApp, *, allowed_hosts: list[str], cors_origins: list[str]) -> None:
        self.app = app
        self.allowed_hosts = LOOPBACK_NAMES | {host.lower() for host in allowed_hosts}
        self.cors_origins = frozenset(origin.rstrip("/").lower() for origin in cors_origins)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in PROBE_PATHS:
            await self.app(scope, receive, send)
            return
        refused = self.refusal(Headers(scope=scope))
        if refused is not None:
            await error_response(refused, scope["path"])(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def refusal(self, headers: Headers) -> FleetError | None:
        host = headers.get("host", "")
        if not self.host_allowed(host):
            return InvalidRequest(
                "Host: not a name this fleet is served under (CCFLEET_ALLOWED_HOSTS)."
            )
        origin = headers.get("origin")
        if origin is not None and not self.origin_allowed(origin, host):
            return PermissionDenied(
                "Origin: pages of this origin may not call the fleet (CCFLEET_CORS_ORIGINS)."
            )
        return None

    def host_allowed(self, host: str) -> bool:
        if ANY_HOST in self.allowed_hosts:
            return True
        name = _host_name(host)
        return name is not None and name in self.allowed_hosts

    def origin_allowed(self, origin: str, host: str) -> bool:
        origin = origin.rstrip("/").lower()
        if origin in self.cors_origins:
            return True
        try:
            own = urlsplit(origin).netloc == host.lower()  # the front end's own page
        except ValueError:
            return False
        return own and origin != "null"


def _host_name(host: str) -> str | None:
    """`example.com:8080` -> `example.com`, `[::1]:8080` -> `::1`; None if malformed."""
    try:
        parts = urlsplit(f"//{host}")
        parts.port  # noqa: B018  # raises ValueError for a malformed port
    except ValueError:
        return None
    return parts.hostname or None
