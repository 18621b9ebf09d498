"""The Tornado application and its route table."""

from __future__ import annotations

import logging
from typing import Any

import tornado.web
from tornado import httputil

from cronchat.config import Settings
from cronchat.runtime import Runtime
from cronchat.web import (
    accounts,
    admin,
    blocks,
    health,
    lifecycle,
    media,
    messages,
    moderation,
    notifications,
    outbox,
    push,
    reports,
    rooms,
    socket,
    static,
)
from cronchat.web.base import HeadersTooLargeHandler, NotFoundHandler, header_bytes

access_log = logging.getLogger("cronchat.access")

API = r"/api/v1"


def routes() -> list[tuple[str, type[tornado.web.RequestHandler]]]:
    return [
        (r"/healthz", health.HealthHandler),
        (r"/readyz", health.ReadyHandler),
        (r"/metrics", health.MetricsHandler),
        (API + r"/auth/register", accounts.RegisterHandler),
        (API + r"/auth/login", accounts.LoginHandler),
        (API + r"/auth/refresh", accounts.RefreshHandler),
        (API + r"/auth/logout", accounts.LogoutHandler),
        (API + r"/users/me", lifecycle.MeHandler),
        (API + r"/users/me/export", lifecycle.ExportsHandler),
        (API + r"/users/me/exports/([^/]+)", lifecycle.ExportHandler),
        (API + r"/users/me/password", accounts.PasswordHandler),
        (API + r"/users/me/avatar", media.AvatarHandler),
        (API + r"/users/me/mentions", notifications.MentionsHandler),
        (API + r"/users/me/blocks", blocks.BlocksHandler),
        (API + r"/users/me/blocks/([^/]+)", blocks.BlockHandler),
        (API + r"/users/me/push", push.PushersHandler),
        (API + r"/users/me/push/([^/]+)", push.PusherHandler),
        (API + r"/push/vapid", push.VapidHandler),
        (API + r"/users", accounts.UsersHandler),
        (API + r"/users/([^/]+)", accounts.UserHandler),
        (API + r"/ws", socket.ChatSocket),
        (API + r"/rooms", rooms.RoomsHandler),
        (API + r"/rooms/direct", rooms.DirectRoomHandler),
        (API + r"/rooms/([^/]+)", rooms.RoomHandler),
        (API + r"/rooms/([^/]+)/members", rooms.MembersHandler),
        (API + r"/rooms/([^/]+)/members/([^/]+)", rooms.MemberHandler),
        (API + r"/rooms/([^/]+)/bans", moderation.BansHandler),
        (API + r"/rooms/([^/]+)/bans/([^/]+)", moderation.BanHandler),
        (API + r"/rooms/([^/]+)/audit", moderation.RoomAuditHandler),
        (API + r"/admin/audit", moderation.AdminAuditHandler),
        (API + r"/rooms/([^/]+)/avatar", media.RoomAvatarHandler),
        (API + r"/rooms/([^/]+)/messages", messages.MessagesHandler),
        (API + r"/rooms/([^/]+)/messages/([^/]+)", messages.MessageHandler),
        (API + r"/rooms/([^/]+)/messages/([^/]+)/reactions/([^/]+)", messages.ReactionHandler),
        (API + r"/rooms/([^/]+)/messages/([^/]+)/report", reports.MessageReportHandler),
        (API + r"/rooms/([^/]+)/reports", reports.RoomReportsHandler),
        (API + r"/rooms/([^/]+)/reports/([^/]+)", reports.RoomReportHandler),
        (API + r"/rooms/([^/]+)/read", messages.ReadHandler),
        (API + r"/rooms/([^/]+)/notifications", notifications.NotificationsHandler),
        (API + r"/rooms/([^/]+)/events", messages.EventsHandler),
        (API + r"/exports/([^/]+)/download", lifecycle.ExportDownloadHandler),
        (API + r"/admin/users/([^/]+)", admin.AdminUserHandler),
        (API + r"/admin/reports", reports.AdminReportsHandler),
        (API + r"/admin/reports/([^/]+)", reports.AdminReportHandler),
        (API + r"/media", media.UploadHandler),
        (API + r"/media/([^/]+)", media.MediaFileHandler),
        (API + r"/media/([^/]+)/thumbnail", media.ThumbnailHandler),
        # The browser client (static/): pages and assets, not API endpoints.
        (r"/", static.ClientPageHandler),
        (r"/sw.js", static.ServiceWorkerHandler),
        (r"/static/(.*)", static.ClientAssetHandler),
    ]


def log_request(handler: tornado.web.RequestHandler) -> None:
    """One line per request: method, path without the query (it may hold a signed URL's
    signature), status, duration. Never headers or bodies: they hold tokens and passwords."""
    status = handler.get_status()
    level = logging.INFO if status < 500 else logging.ERROR
    access_log.log(
        level,
        "method=%s path=%s status=%d ms=%.1f",
        handler.request.method,
        handler.request.path,
        status,
        1000.0 * handler.request.request_time(),
    )


def server_options(settings: Settings) -> dict[str, Any]:
    """The HTTPServer's options, the same for ``cronchat serve`` and the tests' server.

    Our handlers judge bodies themselves, per route, before reading them
    (``BaseHandler.judge_body``); ``max_body_size`` here bounds the few that are not ours
    (static files, the WebSocket upgrade). Headers up to ``max_header_bytes`` are read and
    a request over it answers 431; past four times that, the connection is dropped unread.
    ``idle_connection_timeout`` also bounds how long a request's headers may take."""
    return {
        "max_body_size": settings.max_body_bytes,
        "body_timeout": settings.body_timeout,
        "idle_connection_timeout": settings.idle_connection_timeout,
        "max_header_size": 4 * settings.max_header_bytes,
    }


class Application(tornado.web.Application):
    """Tornado's, with one check before routing: header fields over
    ``CRONCHAT_MAX_HEADER_BYTES`` answer 431 on every path."""

    def find_handler(
        self, request: httputil.HTTPServerRequest, **kwargs: Any
    ) -> tornado.web._HandlerDelegate:
        if header_bytes(request) > self.settings["runtime"].settings.max_header_bytes:
            return self.get_handler_delegate(request, HeadersTooLargeHandler)
        return super().find_handler(request, **kwargs)


def make_app(runtime: Runtime) -> tornado.web.Application:
    client_files = {"path": str(runtime.settings.static_dir)}
    handlers = [
        (pattern, handler, client_files)
        if issubclass(handler, tornado.web.StaticFileHandler)
        else (pattern, handler)
        for pattern, handler in routes()
    ]
    return Application(
        handlers,
        runtime=runtime,
        outbox=outbox.Outbox(),
        upload_slots=media.UploadSlots(runtime.settings.media_max_concurrent_uploads),
        default_handler_class=NotFoundHandler,
        log_function=log_request,
        compress_response=False,
        websocket_max_message_size=64 * 1024,
    )
