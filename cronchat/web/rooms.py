"""REST handlers of /rooms and their members."""

from __future__ import annotations

from cronchat import validation
from cronchat.models import RoomView
from cronchat.services.members import AddMember, ChangeRole
from cronchat.services.rooms import CreateRoom, OpenDirect, UpdateRoom
from cronchat.views import member_json, room_view_json
from cronchat.web.base import BaseHandler


class RoomBase(BaseHandler):
    async def rooms_json(self, views: list[RoomView]) -> list[dict]:
        # A peer who left the direct room no longer shares it: no presence for them.
        presence = await self.presence(view.peer.id for view in views if view.peer is not None)
        return [
            room_view_json(
                view,
                peer_online=presence[view.peer.id] if view.peer is not None else False,
                links=self.links,
            )
            for view in views
        ]

    async def room_json(self, view: RoomView) -> dict:
        return (await self.rooms_json([view]))[0]


class RoomsHandler(RoomBase):
    async def get(self) -> None:
        views, next_cursor = await self.services.rooms.list_rooms(
            self.principal.user,
            self.query_int("limit", 50),
            self.get_query_argument("cursor", None),
        )
        self.write_json({"rooms": await self.rooms_json(views), "next_cursor": next_cursor})

    async def post(self) -> None:
        body = self.json_body(CreateRoom)
        view = await self.services.rooms.create_group(self.principal.user, body)
        self.write_json(await self.room_json(view), status=201)


class DirectRoomHandler(RoomBase):
    async def post(self) -> None:
        body = self.json_body(OpenDirect)
        view, created = await self.services.rooms.open_direct(self.principal.user, body)
        self.write_json(await self.room_json(view), status=201 if created else 200)


class RoomHandler(RoomBase):
    async def get(self, room_id: str) -> None:
        view = await self.services.rooms.view_room(self.principal.user, room_id)
        self.write_json(await self.room_json(view))

    async def patch(self, room_id: str) -> None:
        body = self.json_body(UpdateRoom)
        view = await self.services.rooms.update_room(self.principal.user, room_id, body)
        self.write_json(await self.room_json(view))

    async def delete(self, room_id: str) -> None:
        await self.services.rooms.delete_room(self.actor, room_id)
        self.no_content()


class MembersHandler(BaseHandler):
    async def get(self, room_id: str) -> None:
        members = await self.services.members.list_members(self.actor, room_id)
        online = await self.online(m.user.id for m in members)
        self.write_json(
            {"members": [member_json(m, m.user.id in online, self.links) for m in members]}
        )

    async def post(self, room_id: str) -> None:
        body = self.json_body(AddMember)
        member = await self.services.members.add_member(self.actor, room_id, body)
        online = member.user.id in await self.online([member.user.id])
        self.write_json(member_json(member, online, self.links), status=201)


class MemberHandler(BaseHandler):
    """A membership: its role and timed mute (PATCH; a null ``muted_until`` unmutes, an
    absent one keeps it), and removal (DELETE)."""

    async def patch(self, room_id: str, user_id: str) -> None:
        given = self.json_object()
        body = validation.parse(ChangeRole, given)
        member = await self.services.members.change_role(
            self.principal.user, room_id, user_id, body, keep_mute="muted_until" not in given
        )
        online = member.user.id in await self.online([member.user.id])
        self.write_json(member_json(member, online, self.links))

    async def delete(self, room_id: str, user_id: str) -> None:
        await self.services.members.remove_member(self.actor, room_id, user_id)
        self.no_content()
