"""Push notifications to people who are not online: what is sent, not how it is sent.

``vapid`` holds the server's VAPID identity (RFC 8292), ``webpush`` encrypts payloads for a
browser's subscription (RFC 8291) and builds the request, ``payloads`` says what a push
carries (Web Push JSON, the Matrix push gateway's notify body), ``request`` is the value the
sender posts through the egress guard. Nothing here does I/O.
"""

from cronchat.push.payloads import (
    GatewayDevice,
    MessagePush,
    Push,
    ReadPush,
    gateway_body,
    gateway_request,
    rejected_pushkeys,
    webpush_payload,
)
from cronchat.push.request import PushRequest
from cronchat.push.vapid import VapidKeys
from cronchat.push.webpush import SubscriptionKeys, encrypt, topic_for, webpush_request

__all__ = [
    "GatewayDevice",
    "MessagePush",
    "Push",
    "PushRequest",
    "ReadPush",
    "SubscriptionKeys",
    "VapidKeys",
    "encrypt",
    "gateway_body",
    "gateway_request",
    "rejected_pushkeys",
    "topic_for",
    "webpush_payload",
    "webpush_request",
]
