"""Accounts: registration, login, token refresh, logout, passwords, and admin actions."""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial

from cronchat.blocking import BlockingPool
from cronchat.config import Settings
from cronchat.db import Database, Tx, UniqueViolation
from cronchat.errors import Conflict, Forbidden, Invalid, InvalidCredentials, NotFound, Unauthorized
from cronchat.ids import new_id
from cronchat.models import AuthResult, Principal, User
from cronchat.passwords import PasswordHasher
from cronchat.rate_limits import LOGIN_USERNAME, RateLimits
from cronchat.realtime.broker import Broker
from cronchat.realtime.notices import SessionsRevokedNotice
from cronchat.realtime.session_cache import SessionCache
from cronchat.repos import audit, sessions, users
from cronchat.services.access import require_server_admin
from cronchat.times import now_ms
from cronchat.tokens import AccessClaims, TokenIssuer, hash_refresh_token, new_refresh_token
from cronchat.validation import check_shown_text

log = logging.getLogger("cronchat.accounts")

USERNAME = re.compile(r"[A-Za-z0-9_.-]{3,32}")
PASSWORD_MIN, PASSWORD_MAX = 8, 256
DISPLAY_NAME_MAX = 64


@dataclass(frozen=True, slots=True)
class Register:
    username: str
    password: str
    display_name: str | None = None


@dataclass(frozen=True, slots=True)
class Login:
    username: str
    password: str


@dataclass(frozen=True, slots=True)
class Refresh:
    refresh_token: str


@dataclass(frozen=True, slots=True)
class ChangePassword:
    current_password: str
    new_password: str


def check_username(username: str) -> str:
    if not USERNAME.fullmatch(username):
        raise Invalid(
            "username must be 3-32 characters of a-z, 0-9, '_', '.' and '-'", field="username"
        )
    return username


def check_password(password: str, field: str = "password") -> str:
    if not PASSWORD_MIN <= len(password) <= PASSWORD_MAX:
        raise Invalid(f"{field} must be {PASSWORD_MIN}-{PASSWORD_MAX} characters long", field=field)
    return password


def check_display_name(display_name: str) -> str:
    """The name others see (a direct room is named after it): its runs of whitespace made one
    space, no control or bidirectional characters, something visible (400 otherwise)."""
    check_shown_text("display_name", display_name)
    cleaned = " ".join(display_name.split())
    if not 1 <= len(cleaned) <= DISPLAY_NAME_MAX:
        raise Invalid(
            f"display_name must be 1-{DISPLAY_NAME_MAX} characters long", field="display_name"
        )
    return cleaned


class Accounts:
    def __init__(
        self,
        settings: Settings,
        db: Database,
        blocking: BlockingPool,
        broker: Broker,
        limits: RateLimits,
        sessions: SessionCache,
    ) -> None:
        self.settings = settings
        self.db = db
        self.blocking = blocking
        self.broker = broker
        self.limits = limits
        self.sessions = sessions
        self.passwords = PasswordHasher(settings.argon2_time_cost, settings.argon2_memory_kib)
        self.tokens = TokenIssuer(settings.jwt_secret, settings.access_token_ttl)

    # -- sign-up and sign-in -------------------------------------------------------------

    async def register(self, cmd: Register, user_agent: str = "") -> AuthResult:
        if not self.settings.open_registration:
            raise Forbidden("registration is closed on this server; ask an administrator")
        user = await self.create_user(cmd.username, cmd.password, cmd.display_name)
        return await self._open_session(user, user_agent)

    async def create_user(
        self,
        username: str,
        password: str,
        display_name: str | None = None,
        is_admin: bool = False,
    ) -> User:
        """Create an account (registration and the CLI both come here)."""
        username = check_username(username)
        check_password(password)
        display_name = check_display_name(display_name if display_name is not None else username)
        async with self.limits.password_hashes.slot():
            password_hash = await self.blocking.run(self.passwords.hash, password)
        user_id = new_id()
        try:
            return await self.db.run(
                self._create_user_tx, user_id, username, display_name, password_hash, is_admin
            )
        except UniqueViolation:
            raise Conflict("that username is taken", field="username") from None

    @staticmethod
    def _create_user_tx(
        tx: Tx,
        user_id: str,
        username: str,
        display_name: str,
        password_hash: str,
        is_admin: bool,
    ) -> User:
        users.insert_user(tx, user_id, username, display_name, password_hash, now_ms(), is_admin)
        user = users.find_user(tx, user_id)
        assert user is not None
        return user

    async def login(self, cmd: Login, user_agent: str = "") -> AuthResult:
        """Check the password; each attempt costs a token of the username's bucket before
        the hash runs (so that a password cannot be guessed at speed, even while right), and
        a success refills it: what is counted is failures, and attempts still running."""
        username_key = cmd.username[:64].lower()  # longer than any username: a bounded key
        self.limits.require(LOGIN_USERNAME, username_key)
        found = await self.db.read(self._credentials_tx, cmd.username)
        user, password_hash = found if found else (None, None)
        # Always verify, against a dummy hash for an unknown user: equal time either way.
        async with self.limits.password_hashes.slot():
            matches = await self.blocking.run(self.passwords.verify, password_hash, cmd.password)
        if user is None or not matches:
            raise InvalidCredentials("wrong username or password")
        self.limits.forget(LOGIN_USERNAME, username_key)
        if user.disabled:
            raise InvalidCredentials("this account is disabled")
        return await self._open_session(user, user_agent)

    @staticmethod
    def _credentials_tx(tx: Tx, username: str) -> tuple[User, str] | None:
        return users.find_credentials(tx, username)

    async def _open_session(self, user: User, user_agent: str) -> AuthResult:
        session_id = new_id()
        refresh_token = new_refresh_token()
        await self.db.run(self._open_session_tx, user.id, session_id, refresh_token, user_agent)
        log.info("session opened user_id=%s session_id=%s", user.id, session_id)
        return self._tokens_for(user, session_id, refresh_token)

    def _tokens_for(self, user: User, session_id: str, refresh_token: str) -> AuthResult:
        """A fresh access token of the session, with its refresh token."""
        return AuthResult(
            user=user,
            access_token=self.tokens.issue_access(user.id, session_id),
            refresh_token=refresh_token,
            expires_in=self.tokens.access_ttl,
            session_id=session_id,
        )

    def _open_session_tx(
        self, tx: Tx, user_id: str, session_id: str, refresh_token: str, user_agent: str
    ) -> None:
        now = now_ms()
        sessions.insert_session(tx, session_id, user_id, user_agent, now)
        sessions.insert_refresh_token(
            tx,
            hash_refresh_token(refresh_token),
            session_id,
            now,
            now + self.settings.refresh_token_ttl * 1000,
        )

    # -- refresh and revocation ----------------------------------------------------------

    async def refresh(self, cmd: Refresh) -> AuthResult:
        """Spend a refresh token for a new pair; a spent one revokes its whole session."""
        new_token = new_refresh_token()
        user, session_id, reused = await self.db.run(
            self._refresh_tx, hash_refresh_token(cmd.refresh_token), new_token
        )
        if reused:
            log.warning("spent refresh token presented session_id=%s: revoked", session_id)
            await self.announce_revoked([session_id])
            raise Unauthorized("the refresh token was already used; the session is revoked")
        return self._tokens_for(user, session_id, new_token)

    def _refresh_tx(self, tx: Tx, token_hash: str, new_token: str) -> tuple[User, str, bool]:
        now = now_ms()
        record = sessions.find_refresh_token(tx, token_hash)
        if record is None or record.session_revoked_at is not None or record.user.disabled:
            raise Unauthorized("the refresh token is invalid")
        if record.spent_at is not None or not sessions.spend_refresh_token(tx, token_hash, now):
            sessions.revoke_session(tx, record.session_id, now)
            return record.user, record.session_id, True
        if record.expires_at <= now:
            raise Unauthorized("the refresh token has expired")
        sessions.insert_refresh_token(
            tx,
            hash_refresh_token(new_token),
            record.session_id,
            now,
            now + self.settings.refresh_token_ttl * 1000,
        )
        sessions.touch_session(tx, record.session_id, now)
        return record.user, record.session_id, False

    async def logout(self, principal: Principal) -> None:
        await self.db.run(self._logout_tx, principal.session_id)
        log.info("session closed user_id=%s session_id=%s", principal.user.id, principal.session_id)
        await self.announce_revoked([principal.session_id])

    @staticmethod
    def _logout_tx(tx: Tx, session_id: str) -> None:
        sessions.revoke_session(tx, session_id, now_ms())

    async def authenticate(self, access_token: str) -> Principal:
        """The caller of a Bearer token: valid signature and claims, live session, user
        enabled, the session read from the database (a socket, once, shows the profile)."""
        claims = self.tokens.decode_access(access_token, remember=False)
        user = await self.sessions.read_through(claims.session_id, self._session_read(claims))
        return self._principal(user, claims)

    async def authenticate_request(self, access_token: str) -> Principal:
        """As :meth:`authenticate`, the session known live from memory when it was read
        live lately (:class:`~cronchat.realtime.session_cache.SessionCache`): a revocation
        is forgotten on every process as its notice arrives, on this one before the
        revoking request answers. The user is as it was read then: its id and username do
        not change; a profile to show is read with ``Users.get_user``."""
        claims = self.tokens.decode_access(access_token)
        read = self._session_read(claims)
        user = await self.sessions.live_user(claims.session_id, claims.user_id, read)
        return self._principal(user, claims)

    def _session_read(self, claims: AccessClaims) -> Callable[[], Awaitable[User | None]]:
        """The database read of a token's session: its user while it is live, else None."""
        return partial(self.db.read, self._session_user_tx, claims.session_id, claims.user_id)

    @staticmethod
    def _principal(user: User | None, claims: AccessClaims) -> Principal:
        if user is None:
            raise Unauthorized("the session has ended; log in again")
        return Principal(user=user, session_id=claims.session_id, expires_at=claims.expires_at)

    @staticmethod
    def _session_user_tx(tx: Tx, session_id: str, user_id: str) -> User | None:
        return sessions.find_active_session_user(tx, session_id, user_id)

    async def change_password(self, principal: Principal, cmd: ChangePassword) -> None:
        """Change the password after checking the current one; other sessions end. A wrong
        current password counts as a failed login of the username (a stolen access token
        does not make the password guessable faster than logins do)."""
        check_password(cmd.new_password, "new_password")
        await self.check_own_password(principal.user, cmd.current_password, "current password")
        await self._replace_password(principal.user.id, cmd.new_password, keep=principal.session_id)

    async def check_own_password(self, user: User, password: str, what: str = "password") -> None:
        """InvalidCredentials unless ``password`` is the user's own (before an act that needs
        it: a password change, deleting the account). A wrong one counts as a failed login of
        the username, so that a stolen access token does not make the password guessable
        faster than logins do."""
        username_key = user.username.lower()
        self.limits.require(LOGIN_USERNAME, username_key)
        current_hash = await self.db.read(self._password_hash_tx, user.id)
        async with self.limits.password_hashes.slot():
            matches = await self.blocking.run(self.passwords.verify, current_hash, password)
        if not matches:
            raise InvalidCredentials(f"the {what} is wrong")
        self.limits.forget(LOGIN_USERNAME, username_key)

    @staticmethod
    def _password_hash_tx(tx: Tx, user_id: str) -> str | None:
        return users.password_hash_of(tx, user_id)

    async def _replace_password(
        self, user_id: str, password: str, keep: str | None, by_operator: bool = False
    ) -> None:
        async with self.limits.password_hashes.slot():
            password_hash = await self.blocking.run(self.passwords.hash, password)
        revoked = await self.db.run(
            self._replace_password_tx, user_id, password_hash, keep, by_operator
        )
        await self.announce_revoked(revoked, user_id)

    @staticmethod
    def _replace_password_tx(
        tx: Tx, user_id: str, password_hash: str, keep: str | None, by_operator: bool
    ) -> list[str]:
        now = now_ms()
        users.set_password_hash(tx, user_id, password_hash, now)
        if by_operator:
            audit.record(tx, "user.password_set", None, now, target_user_id=user_id)
        return sessions.revoke_user_sessions(tx, user_id, now, keep=keep)

    async def announce_revoked(self, session_ids: list[str], user_id: str | None = None) -> None:
        """Tell every process to close the sockets of these sessions (code 4003) and to stop
        believing them live (all of the user's, with ``user_id``). This process hears of it
        before this returns: the broker hands a notice to the local hub at once."""
        if session_ids or user_id is not None:
            await self.broker.publish([SessionsRevokedNotice(tuple(session_ids), user_id)])

    # -- administration (the CLI) --------------------------------------------------------

    async def set_password(self, username: str, password: str) -> User:
        check_password(password)
        user = await self.require_username(username)
        await self._replace_password(user.id, password, keep=None, by_operator=True)
        return user

    async def set_disabled(self, username: str, disabled: bool) -> User:
        """The operator disables or enables a user (``cronchat user disable|enable``)."""
        user = await self.require_username(username)
        return await self._set_disabled(None, user.id, disabled)

    async def admin_set_disabled(self, admin: User, user_id: str, disabled: bool) -> User:
        """A server admin disables or enables a user (``PATCH /admin/users/{id}``): as the
        operator does, recorded with the admin as the actor. Not oneself (400)."""
        require_server_admin(admin)
        if user_id == admin.id:
            raise Invalid("a server admin cannot disable or enable themselves", field="id")
        return await self._set_disabled(admin.id, user_id, disabled)

    async def _set_disabled(self, actor_id: str | None, user_id: str, disabled: bool) -> User:
        """Disabling ends the user's sessions and closes their sockets (4003) on every
        process, the notice published before this returns."""
        revoked, user = await self.db.run(self._set_disabled_tx, actor_id, user_id, disabled)
        if disabled:
            await self.announce_revoked(revoked, user_id)
        return user

    @staticmethod
    def _set_disabled_tx(
        tx: Tx, actor_id: str | None, user_id: str, disabled: bool
    ) -> tuple[list[str], User]:
        if actor_id is not None:
            # Read again: a server admin demoted meanwhile acts no more.
            actor = users.find_user(tx, actor_id)
            if actor is None:
                raise Forbidden("only server admins may do this")
            require_server_admin(actor)
        user = _live_user_tx(tx, user_id)
        now = now_ms()
        if user.disabled != disabled:
            users.set_flag(tx, user_id, "disabled", disabled, now)
            action = "user.disabled" if disabled else "user.enabled"
            audit.record(tx, action, actor_id, now, target_user_id=user_id)
        revoked = sessions.revoke_user_sessions(tx, user_id, now) if disabled else []
        updated = users.find_user(tx, user_id)
        assert updated is not None
        return revoked, updated

    async def promote(self, username: str, is_admin: bool = True) -> User:
        user = await self.require_username(username)
        await self.db.run(self._set_admin_tx, user.id, is_admin)
        return await self.db.read(self._get_user_tx, user.id)

    @staticmethod
    def _set_admin_tx(tx: Tx, user_id: str, is_admin: bool) -> None:
        user = _live_user_tx(tx, user_id)
        now = now_ms()
        users.set_flag(tx, user_id, "is_admin", is_admin, now)
        if is_admin and not user.is_admin:
            audit.record(tx, "user.promoted", None, now, target_user_id=user_id)

    async def require_username(self, username: str) -> User:
        found = await self.db.read(self._credentials_tx, username)
        if found is None:
            raise NotFound(f"no user named {username!r}")
        return found[0]

    @staticmethod
    def _get_user_tx(tx: Tx, user_id: str) -> User:
        user = users.find_user(tx, user_id)
        if user is None:
            raise NotFound("no such user")
        return user

    async def list_users(self, limit: int = 1000, offset: int = 0) -> list[User]:
        return await self.db.read(self._list_users_tx, limit, offset)

    @staticmethod
    def _list_users_tx(tx: Tx, limit: int, offset: int) -> list[User]:
        return users.list_users(tx, limit, offset)


def _live_user_tx(tx: Tx, user_id: str) -> User:
    """A user whose flags an act changes, locked; NotFound, or Conflict once deleted."""
    user = users.find_user(tx, user_id, lock=True)
    if user is None:
        raise NotFound("no such user")
    if user.deleted:
        raise Conflict("the account is deleted")
    return user
