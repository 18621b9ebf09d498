"""The browser client: ``/`` serves ``static/index.html`` and ``/static/...`` its assets.

These are not API endpoints (they are not in openapi.yaml): plain files, no auth, no JSON.
Every answer carries a strict Content-Security-Policy, so even a bug in the client cannot run
an injected script or send data to another origin: it may connect to this server only."""

from __future__ import annotations

import re

import tornado.web

# The policy, but for connect-src, which names this server's own WebSocket URLs.
_POLICY_BEFORE_CONNECT = "default-src 'self'; img-src 'self' blob: data:"
_POLICY_AFTER_CONNECT = "; ".join(
    [
        "style-src 'self'",
        "script-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)
# A host name or IPv4 address with an optional port: what a CSP host-source may spell.
_HOST = re.compile(r"[a-z0-9](?:[a-z0-9.-]{0,251}[a-z0-9])?(?::(?P<port>[0-9]{1,5}))?")
# Module imports between assets are not versioned, so assets are cached briefly and then
# revalidated by ETag; the page itself is always revalidated.
ASSET_MAX_AGE = 60


def content_security_policy(host: str) -> str:
    """The policy of a page served as ``host`` (the request's Host). ``'self'`` covers this
    server's ws(s) URLs in current browsers only; older ones need them spelled out. A Host
    that is no plain host name gets ``'self'`` alone: it can never widen the policy."""
    host = host.strip().lower()
    connect = "connect-src 'self'"
    plain = _HOST.fullmatch(host)
    if plain and int(plain["port"] or 0) <= 65535:
        connect += f" ws://{host} wss://{host}"
    return f"{_POLICY_BEFORE_CONNECT}; {connect}; {_POLICY_AFTER_CONNECT}"


def set_security_headers(handler: tornado.web.RequestHandler) -> None:
    handler.set_header("Content-Security-Policy", content_security_policy(handler.request.host))
    handler.set_header("X-Content-Type-Options", "nosniff")
    handler.set_header("Referrer-Policy", "no-referrer")
    handler.set_header("X-Frame-Options", "DENY")


class ClientAssetHandler(tornado.web.StaticFileHandler):
    """A file of the browser client under ``/static/``, with ETag and a short max-age."""

    def set_default_headers(self) -> None:
        set_security_headers(self)

    def get_cache_time(self, path: str, modified: object, mime_type: str) -> int:
        return ASSET_MAX_AGE

    def set_extra_headers(self, path: str) -> None:
        self.set_header("Cache-Control", f"public, max-age={ASSET_MAX_AGE}, must-revalidate")

    def get_content_type(self) -> str:
        # JavaScript modules must be served as JavaScript, whatever the host's mime table says.
        if self.absolute_path and self.absolute_path.endswith(".mjs"):
            return "text/javascript; charset=utf-8"
        content_type = super().get_content_type()
        if content_type in ("application/javascript", "text/javascript"):
            return "text/javascript; charset=utf-8"
        if content_type in ("text/css", "text/html"):
            return f"{content_type}; charset=utf-8"
        return content_type


class ClientPageHandler(ClientAssetHandler):
    """``/``: the client's single page, always revalidated (``no-cache`` with an ETag)."""

    file_name = "index.html"

    async def get(self, path: str = "", include_body: bool = True) -> None:
        await super().get(self.file_name, include_body)

    async def head(self, path: str = "") -> None:
        await self.get(path, include_body=False)

    def get_cache_time(self, path: str, modified: object, mime_type: str) -> int:
        return 0

    def set_extra_headers(self, path: str) -> None:
        self.set_header("Cache-Control", "no-cache")


class ServiceWorkerHandler(ClientPageHandler):
    """``/sw.js``: the client's service worker (``static/sw.js``), served from the root so
    that its scope is the whole app (a worker's scope cannot be above its own path), and
    revalidated like the page so that an update reaches browsers at their next check."""

    file_name = "sw.js"
