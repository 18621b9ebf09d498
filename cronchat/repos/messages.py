"""SQL of messages and reactions. Messages come back whole (reply, reactions, media) from a
fixed number of queries, whatever the number of messages."""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass

from cronchat.db import Query, Row, Tx, in_list, pairs_match
from cronchat.models import NO_MENTIONS, MediaInfo, Mentions, Message, ReactionCount, ReplyRef
from cronchat.repos import mentions as mention_rows

EXCERPT_LENGTH = 100

_COLUMNS = (
    "x.id, x.room_id, x.seq, x.sender_id, x.kind, x.text, x.media_id, x.reply_to_id,"
    " x.client_msg_id, x.created_at, x.edited_at, x.deleted_at, x.mentions"
)


@dataclass(frozen=True, slots=True)
class NewMessage:
    id: str
    room_id: str
    seq: int
    sender_id: str
    kind: str
    text: str | None
    media_id: str | None
    reply_to_id: str | None
    client_msg_id: str
    created_at: int
    mentions: Mentions = NO_MENTIONS


def mentions_column(mentions: Mentions) -> str | None:
    """``messages.mentions``: the JSON of whom a message mentions, NULL for nobody."""
    if not mentions.user_ids and not mentions.room:
        return None
    return json.dumps({"user_ids": list(mentions.user_ids), "room": mentions.room})


def mentions_from_column(stored: str | None) -> Mentions:
    if stored is None:
        return NO_MENTIONS
    shaped = json.loads(stored)
    return Mentions(tuple(shaped["user_ids"]), bool(shaped["room"]))


def insert_messages(tx: Tx, new: list[NewMessage]) -> list[Message]:
    """Insert messages and their mentions in two statements; answers them whole (replies
    and media included)."""
    rows = [
        {
            "id": m.id,
            "room_id": m.room_id,
            "seq": m.seq,
            "sender_id": m.sender_id,
            "kind": m.kind,
            "text": m.text,
            "media_id": m.media_id,
            "reply_to_id": m.reply_to_id,
            "client_msg_id": m.client_msg_id,
            "created_at": m.created_at,
            "mentions": mentions_column(m.mentions),
            "edited_at": None,
            "deleted_at": None,
        }
        for m in new
    ]
    tx.executemany_later(
        "INSERT INTO messages (id, room_id, seq, sender_id, kind, text, media_id, reply_to_id,"
        " client_msg_id, created_at, mentions)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
        [tuple(row.values())[:11] for row in rows],
    )
    mention_rows.insert_mentions(
        tx,
        [
            mention_rows.MentionRow(m.id, user_id, m.room_id, m.seq, m.sender_id, m.created_at)
            for m in new
            for user_id in mention_rows.row_user_ids(m.mentions)
        ],
    )
    return hydrate(tx, rows, viewer_id=None)


def sent_before(tx: Tx, keys: set[tuple[str, str]]) -> set[tuple[str, str]]:
    """Which of these (sender_id, client_msg_id) pairs already name a message."""
    result: set[tuple[str, str]] = tx.fetch(already_sent(keys))[0]
    return result


def already_sent(keys: set[tuple[str, str]]) -> Query[set[tuple[str, str]]]:
    """:func:`sent_before` as a query, to send with others (``Tx.fetch``)."""
    condition, params = pairs_match("sender_id", "client_msg_id", keys)
    return Query(
        f"SELECT sender_id, client_msg_id FROM messages WHERE {condition}",
        params,
        lambda rows: {(row["sender_id"], row["client_msg_id"]) for row in rows},
    )


def find_by_client_msg_id(
    tx: Tx, sender_id: str, client_msg_id: str, viewer_id: str
) -> Message | None:
    rows = tx.all(
        f"SELECT {_COLUMNS} FROM messages x WHERE x.sender_id = %s AND x.client_msg_id = %s",
        (sender_id, client_msg_id),
    )
    found = hydrate(tx, rows, viewer_id)
    return found[0] if found else None


def find_message(tx: Tx, room_id: str, message_id: str, viewer_id: str) -> Message | None:
    rows = tx.all(
        f"SELECT {_COLUMNS} FROM messages x WHERE x.id = %s AND x.room_id = %s",
        (message_id, room_id),
    )
    found = hydrate(tx, rows, viewer_id)
    return found[0] if found else None


def messages_by_id(tx: Tx, message_ids: list[str], viewer_id: str) -> dict[str, Message]:
    """These messages, whole, by id (those that exist)."""
    if not message_ids:
        return {}
    marks, params = in_list(message_ids)
    rows = tx.all(f"SELECT {_COLUMNS} FROM messages x WHERE x.id IN ({marks})", params)
    return {message.id: message for message in hydrate(tx, rows, viewer_id)}


def page(
    tx: Tx,
    room_id: str,
    viewer_id: str,
    limit: int,
    before_seq: int | None,
    after_seq: int | None,
) -> tuple[list[Message], bool]:
    """A page of history, ascending by seq. With ``after_seq`` the oldest ones above it;
    otherwise the newest ones (below ``before_seq`` when given). ``has_more`` says whether
    more lie beyond the page in the direction of paging."""
    where = ["x.room_id = %s"]
    params: list[str | int] = [room_id]
    if before_seq is not None:
        where.append("x.seq < %s")
        params.append(before_seq)
    if after_seq is not None:
        where.append("x.seq > %s")
        params.append(after_seq)
    order = "ASC" if after_seq is not None else "DESC"
    rows = tx.all(
        f"SELECT {_COLUMNS} FROM messages x WHERE {' AND '.join(where)}"
        f" ORDER BY x.seq {order} LIMIT %s",
        (*params, limit + 1),
    )
    has_more = len(rows) > limit
    rows = rows[:limit]
    if order == "DESC":
        rows.reverse()
    return hydrate(tx, rows, viewer_id), has_more


def last_messages(tx: Tx, room_ids: list[str], viewer_id: str) -> dict[str, Message]:
    """The last message of each room, by room id."""
    if not room_ids:
        return {}
    marks, params = in_list(room_ids)
    rows = tx.all(
        f"SELECT {_COLUMNS} FROM messages x JOIN rooms r"
        " ON r.id = x.room_id AND x.seq = r.last_message_seq"
        f" WHERE r.id IN ({marks})",
        params,
    )
    return {message.room_id: message for message in hydrate(tx, rows, viewer_id)}


def hydrate(tx: Tx, rows: list[Row], viewer_id: str | None) -> list[Message]:
    """Rows to whole messages: replies, reactions and media in one query each. Without a
    viewer, the messages are new ones, which have no reactions yet."""
    if not rows:
        return []
    replies = _reply_refs(tx, {row["reply_to_id"] for row in rows if row["reply_to_id"]})
    reactions = (
        {} if viewer_id is None else _reaction_counts(tx, [row["id"] for row in rows], viewer_id)
    )
    media = _media(tx, {row["media_id"] for row in rows if row["media_id"]})
    messages = []
    for row in rows:
        deleted = row["deleted_at"] is not None
        messages.append(
            Message(
                id=row["id"],
                room_id=row["room_id"],
                seq=row["seq"],
                sender_id=row["sender_id"],
                kind=row["kind"],
                text=None if deleted else row["text"],
                media=None if deleted else media.get(row["media_id"]),
                reply_to=replies.get(row["reply_to_id"]),
                reactions=() if deleted else tuple(reactions.get(row["id"], ())),
                created_at=row["created_at"],
                edited_at=row["edited_at"],
                deleted=deleted,
                client_msg_id=row["client_msg_id"],
                mentions=NO_MENTIONS if deleted else mentions_from_column(row["mentions"]),
            )
        )
    return messages


def _reply_refs(tx: Tx, message_ids: set[str]) -> dict[str, ReplyRef]:
    if not message_ids:
        return {}
    marks, params = in_list(message_ids)
    rows = tx.all(
        f"SELECT id, sender_id, text, deleted_at FROM messages WHERE id IN ({marks})", params
    )
    return {
        row["id"]: ReplyRef(
            id=row["id"],
            sender_id=row["sender_id"],
            excerpt=None if row["deleted_at"] is not None else excerpt(row["text"]),
            deleted=row["deleted_at"] is not None,
        )
        for row in rows
    }


def excerpt(text: str | None) -> str | None:
    if text is None:
        return None
    return text if len(text) <= EXCERPT_LENGTH else text[: EXCERPT_LENGTH - 1] + "…"


def _reaction_counts(
    tx: Tx, message_ids: list[str], viewer_id: str
) -> dict[str, list[ReactionCount]]:
    marks, params = in_list(message_ids)
    rows = tx.all(
        "SELECT message_id, emoji, COUNT(*) AS count,"
        " MAX(CASE WHEN user_id = %s THEN 1 ELSE 0 END) AS me, MIN(created_at) AS first_at"
        f" FROM reactions WHERE message_id IN ({marks})"
        " GROUP BY message_id, emoji ORDER BY first_at, emoji",
        (viewer_id, *params),
    )
    counts: dict[str, list[ReactionCount]] = defaultdict(list)
    for row in rows:
        counts[row["message_id"]].append(
            ReactionCount(row["emoji"], int(row["count"]), bool(row["me"]))
        )
    return counts


def _media(tx: Tx, media_ids: set[str]) -> dict[str, MediaInfo]:
    if not media_ids:
        return {}
    marks, params = in_list(media_ids)
    rows = tx.all(
        f"SELECT id, owner_id, content_type, width, height, size FROM media WHERE id IN ({marks})",
        params,
    )
    return {row["id"]: MediaInfo(**row) for row in rows}


def rooms_of_messages(tx: Tx, message_ids: set[str]) -> dict[str, str]:
    """The room of each of these messages that exists, by message id."""
    result: dict[str, str] = tx.fetch(message_rooms(message_ids))[0]
    return result


def message_rooms(message_ids: set[str]) -> Query[dict[str, str]]:
    """:func:`rooms_of_messages` as a query, to send with others (``Tx.fetch``)."""
    marks, params = in_list(message_ids)
    return Query(
        f"SELECT id, room_id FROM messages WHERE id IN ({marks})",
        params,
        lambda rows: {row["id"]: row["room_id"] for row in rows},
    )


@dataclass(frozen=True, slots=True)
class MessageOwner:
    """What a change of a message is checked against: who sent it, its seq, its media, when
    it was deleted (None while it is not) and whom it mentions."""

    sender_id: str
    seq: int
    media_id: str | None
    deleted_at: int | None
    created_at: int
    mentions: Mentions


def message_owner(tx: Tx, room_id: str, message_id: str) -> MessageOwner | None:
    """Sender, seq, media, deletion and mentions of a message of this room, locked for the
    change to come."""
    row = tx.one(
        "SELECT sender_id, seq, media_id, deleted_at, created_at, mentions FROM messages"
        " WHERE id = %s AND room_id = %s" + tx.dialect.for_update,
        (message_id, room_id),
    )
    if row is None:
        return None
    return MessageOwner(
        row["sender_id"],
        row["seq"],
        row["media_id"],
        row["deleted_at"],
        row["created_at"],
        mentions_from_column(row["mentions"]),
    )


def replies_to(tx: Tx, message_id: str) -> list[str]:
    """The ids of the messages that quote this one."""
    rows = tx.all("SELECT id FROM messages WHERE reply_to_id = %s", (message_id,))
    return [row["id"] for row in rows]


def set_text(tx: Tx, message_id: str, text: str, now: int) -> None:
    tx.execute(
        "UPDATE messages SET text = %s, edited_at = %s WHERE id = %s", (text, now, message_id)
    )


def set_mentions(tx: Tx, message_id: str, mentions: Mentions) -> None:
    tx.execute(
        "UPDATE messages SET mentions = %s WHERE id = %s", (mentions_column(mentions), message_id)
    )


def mark_deleted(tx: Tx, message_id: str, now: int) -> None:
    """The row becomes a tombstone: no text, media, reactions or mentions."""
    tx.execute(
        "UPDATE messages SET deleted_at = %s, text = NULL, media_id = NULL, mentions = NULL"
        " WHERE id = %s",
        (now, message_id),
    )
    tx.execute("DELETE FROM reactions WHERE message_id = %s", (message_id,))
    mention_rows.delete_mentions(tx, message_id)


def add_reaction(tx: Tx, message_id: str, user_id: str, emoji: str, now: int) -> bool:
    return (
        tx.execute(
            f"{tx.dialect.insert_ignore} INTO reactions (message_id, emoji, user_id, created_at)"
            " VALUES (%s, %s, %s, %s)",
            (message_id, emoji, user_id, now),
        )
        == 1
    )


def remove_reaction(tx: Tx, message_id: str, user_id: str, emoji: str) -> bool:
    return (
        tx.execute(
            "DELETE FROM reactions WHERE message_id = %s AND emoji = %s AND user_id = %s",
            (message_id, emoji, user_id),
        )
        == 1
    )
