"""The benchmark presets, and the plan of one run: who is in which room, who sends what,
which socket runs in which load-generator process."""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True, slots=True)
class Preset:
    name: str
    rooms: int
    room_size: int  # members per room; users = rooms * room_size
    senders: int
    messages: int  # in all, split evenly between the senders
    duration: float  # default cap of the send phase, seconds
    idle: bool = False  # connect, authenticate, measure memory; send nothing
    sockets_per_user: int = 1
    # Sends a sender keeps unacknowledged: enough to keep the server busy, few enough that
    # the latency is the server's and not a queue of our own making.
    window: int = 2
    # Every message mentions the room (``mentions.room``): each member but the sender also
    # gets a ``mention`` frame, and the senders are made admins, who may mention a large room.
    mention_room: bool = False
    # A push preset: the kind of device ("webpush", "gateway") every member registers. Its
    # ``room_size`` members are in all its ``rooms``, with no socket open; each message is
    # sent over REST into a room of its own (see bench/push.py).
    push: str | None = None

    @property
    def users(self) -> int:
        return self.room_size if self.push else self.rooms * self.room_size

    @property
    def sockets(self) -> int:
        return self.users * self.sockets_per_user


# Pushes: 10 members offline in 2,000 rooms, one message per room, 9 pushes per message.
PUSH = Preset(
    "push",
    rooms=2000,
    room_size=10,
    senders=4,
    messages=2000,
    duration=30,
    sockets_per_user=0,
    push="webpush",
)
FANOUT = Preset("fanout", rooms=1, room_size=1000, senders=4, messages=1000, duration=60, window=1)

PRESETS = {
    "small": Preset("small", rooms=2, room_size=10, senders=4, messages=2000, duration=60),
    "medium": Preset("medium", rooms=20, room_size=10, senders=20, messages=5000, duration=60),
    "fanout": FANOUT,
    # The room of 1,000 again, every message a room mention: what mentions cost in fan-out.
    "fanout-mentions": replace(FANOUT, name="fanout-mentions", mention_room=True),
    "rooms100": Preset(
        "rooms100", rooms=10, room_size=100, senders=10, messages=3000, duration=60, window=1
    ),
    # Commit throughput: senders alone in their rooms, so that fan-out costs little.
    "durable": Preset(
        "durable", rooms=50, room_size=1, senders=50, messages=40000, duration=60, window=16
    ),
    "push": PUSH,
    # The same with gateway devices: no encryption, the Matrix push gateway's JSON.
    "push-gateway": replace(PUSH, name="push-gateway", push="gateway"),
    "idle": Preset("idle", rooms=1000, room_size=10, senders=0, messages=0, duration=0, idle=True),
}


def idle_preset(sockets: int) -> Preset:
    """``idle`` scaled to ``sockets`` sockets (one per user, rooms of 10)."""
    room_size = min(10, sockets)
    return replace(PRESETS["idle"], rooms=max(1, sockets // room_size), room_size=room_size)


@dataclass(frozen=True, slots=True)
class SocketSpec:
    """One WebSocket client: whose token, which rooms it follows, what it sends."""

    index: int
    user: int
    token: str
    rooms: tuple[str, ...]
    send_room: str | None = None
    quota: int = 0  # messages to send

    def as_dict(self) -> dict:
        return {
            "index": self.index,
            "user": self.user,
            "token": self.token,
            "rooms": list(self.rooms),
            "send_room": self.send_room,
            "quota": self.quota,
        }


def room_of(preset: Preset, user: int) -> int:
    return user // preset.room_size


def sender_users(preset: Preset) -> list[int]:
    """Senders spread over the rooms: sender k is member k // rooms of room k % rooms."""
    users = []
    for k in range(preset.senders):
        room, member = k % preset.rooms, k // preset.rooms
        users.append(room * preset.room_size + member % preset.room_size)
    return users


def build_sockets(preset: Preset, tokens: list[str], room_ids: list[str]) -> list[SocketSpec]:
    """Every user's sockets; the senders' first socket carries its share of the messages."""
    senders = sender_users(preset)
    quotas = [preset.messages // max(1, preset.senders)] * preset.senders
    for k in range(preset.messages - sum(quotas)):
        quotas[k] += 1
    quota_of = dict(zip(senders, quotas, strict=True))
    specs = []
    for user in range(preset.users):
        room_id = room_ids[room_of(preset, user)]
        for copy in range(preset.sockets_per_user):
            sends = copy == 0 and user in quota_of
            specs.append(
                SocketSpec(
                    index=len(specs),
                    user=user,
                    token=tokens[user],
                    rooms=(room_id,),
                    send_room=room_id if sends else None,
                    quota=quota_of.get(user, 0) if sends else 0,
                )
            )
    return specs


def split(specs: list[SocketSpec], processes: int) -> list[list[SocketSpec]]:
    """Round-robin, senders first, so that the senders and every room's members are spread
    evenly over the processes."""
    parts: list[list[SocketSpec]] = [[] for _ in range(processes)]
    ordered = [s for s in specs if s.quota] + [s for s in specs if not s.quota]
    for position, spec in enumerate(ordered):
        parts[position % processes].append(spec)
    return [part for part in parts if part]
