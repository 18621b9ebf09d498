"""Settings: read once from ``CRONCHAT_*`` variables and flags, validated, then passed down."""

from __future__ import annotations

import ipaddress
import os
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from cronchat.private_files import FILE_MODE, make_private_dir
from cronchat.push.vapid import generate_private_key_pem, parse_private_key


class ConfigError(Exception):
    """Configuration that cannot work; the message is one line for the operator."""


class Secret:
    """A string that never shows itself in a repr, a log line or a traceback."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and secrets.compare_digest(self._value, other._value)

    def __hash__(self) -> int:
        return hash(self._value)


@dataclass(frozen=True, slots=True)
class DatabaseUrl:
    """Where the data lives: ``sqlite:///path`` or ``mysql://user:pass@host:port/db``."""

    dialect: str
    path: str = ""
    host: str = ""
    port: int = 3306
    user: str = ""
    password: Secret = field(default_factory=lambda: Secret(""))
    database: str = ""

    @classmethod
    def parse(cls, url: str) -> DatabaseUrl:
        if url.startswith("sqlite:"):
            # sqlite:///relative/file or sqlite:////absolute/file, as elsewhere in Python.
            path = url.removeprefix("sqlite:").removeprefix("//").removeprefix("/")
            if not path:
                raise ConfigError("CRONCHAT_DATABASE_URL: sqlite URL needs a file path")
            return cls(dialect="sqlite", path=unquote(path))
        parts = urlsplit(url)
        if parts.scheme in ("mysql", "mariadb"):
            database = parts.path.lstrip("/")
            if not parts.hostname or not database:
                raise ConfigError(
                    "CRONCHAT_DATABASE_URL: mysql URL needs a host and a database name"
                )
            try:
                port = parts.port or 3306
            except ValueError as error:
                raise ConfigError(f"CRONCHAT_DATABASE_URL: bad port ({error})") from None
            return cls(
                dialect="mysql",
                host=parts.hostname,
                port=port,
                user=unquote(parts.username or "root"),
                password=Secret(unquote(parts.password or "")),
                database=database,
            )
        raise ConfigError(
            f"CRONCHAT_DATABASE_URL: unknown scheme {parts.scheme!r} (use sqlite:/// or mysql://)"
        )

    def describe(self) -> str:
        """A form safe to print: no password."""
        if self.dialect == "sqlite":
            return f"sqlite:///{self.path}"
        return f"mysql://{self.user}@{self.host}:{self.port}/{self.database}"


_PERIOD_UNITS = {"s": 1, "m": 60, "h": 3600}
_RATE = re.compile(r"(\d+)/(\d*)([smh]?)")


@dataclass(frozen=True, slots=True)
class Rate:
    """``count`` requests per ``seconds``: a bucket of ``count`` tokens, refilled evenly over
    ``seconds``. Written ``COUNT/PERIOD``: ``5/m``, ``10/h``, ``30/10m``, ``20/s``, ``600/60``."""

    count: int
    seconds: int

    @classmethod
    def parse(cls, name: str, value: str) -> Rate:
        match = _RATE.fullmatch(value.strip().lower())
        if match is None or (not match.group(2) and not match.group(3)):
            raise ConfigError(f"{name}: expected COUNT/PERIOD such as 5/m or 30/10m, got {value!r}")
        count = int(match.group(1))
        seconds = int(match.group(2) or 1) * _PERIOD_UNITS[match.group(3) or "s"]
        if count < 1 or seconds < 1:
            raise ConfigError(f"{name}: the count and the period must be at least 1")
        return cls(count, seconds)

    def __str__(self) -> str:
        return f"{self.count}/{self.seconds}s"


IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def _networks(name: str, value: str) -> tuple[IpNetwork, ...]:
    """Comma-separated addresses or CIDR blocks: ``10.0.0.0/8,::1``."""
    try:
        return tuple(
            ipaddress.ip_network(part.strip(), strict=False)
            for part in value.split(",")
            if part.strip()
        )
    except ValueError as error:
        raise ConfigError(f"{name}: {error}") from None


def _bool(name: str, value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name}: expected true or false, got {value!r}")


def _int(name: str, value: str, minimum: int = 0, maximum: int | None = None) -> int:
    try:
        number = int(value)
    except ValueError:
        raise ConfigError(f"{name}: expected an integer, got {value!r}") from None
    if number < minimum or (maximum is not None and number > maximum):
        upper = "" if maximum is None else f" and {maximum}"
        raise ConfigError(f"{name}: {number} is out of range (between {minimum}{upper})")
    return number


def _seconds(name: str, value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise ConfigError(f"{name}: expected a number of seconds, got {value!r}") from None
    if not 0 < number <= 3600:
        raise ConfigError(f"{name}: {value} is out of range (above 0, at most 3600)")
    return number


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything the server needs to know, validated. Built by :func:`load_settings`."""

    host: str
    port: int
    data_dir: Path
    database: DatabaseUrl
    jwt_secret: Secret
    access_token_ttl: int = 15 * 60
    refresh_token_ttl: int = 30 * 24 * 3600
    # Seconds a session read live is believed live without reading it again. Revocations
    # reach every process at once as notices; this bounds what a lost notice costs. 0: read
    # the session on every request.
    session_cache_seconds: int = 60
    open_registration: bool = True
    media_backend: str = "local"
    s3_endpoint_url: str = ""
    s3_bucket: str = ""
    s3_region: str = "us-east-1"
    s3_access_key_id: Secret = field(default_factory=lambda: Secret(""))
    s3_secret_access_key: Secret = field(default_factory=lambda: Secret(""))
    redis_url: Secret = field(default_factory=lambda: Secret(""))
    workers: int = 1
    max_body_bytes: int = 256 * 1024
    body_timeout: int = 120
    idle_connection_timeout: int = 60
    max_header_bytes: int = 32 * 1024
    max_text_length: int = 4000
    media_max_bytes: int = 10 * 1024 * 1024
    media_max_pixels: int = 40_000_000
    media_max_frames: int = 500
    media_max_decode_seconds: float = 5.0
    media_max_concurrent_uploads: int = 8
    media_url_ttl: int = 3600
    db_pool_size: int = 8
    # Send transactions of different rooms committing side by side (MySQL; SQLite has one
    # writer). One is cheapest in CPU per message, on a core of its own.
    db_writers: int = 1
    # How long, in microseconds, a thread may hold the interpreter while another waits for
    # it: a database thread whose answer has arrived waits up to that long for the IOLoop
    # thread. Python's 5,000; 500 measured the same on the pinned set.
    switch_interval_us: int = 5000
    # Seconds one database call may wait on the network (read, write, connect) before it
    # fails as unavailable, and seconds Redis may stay silent before it counts as away.
    db_timeout: int = 10
    redis_timeout: int = 5
    ws_auth_timeout: int = 10
    ws_ping_interval: int = 20
    ws_buffer_bytes: int = 1024 * 1024
    ws_rate_per_second: int = 20
    ws_rate_burst: int = 60
    # Rate limits (cronchat.rate_limits): per client address before login, per user after.
    rate_limits: bool = True
    rate_login_address: Rate = Rate(30, 60)
    rate_login_username: Rate = Rate(5, 60)
    rate_register: Rate = Rate(10, 3600)
    rate_refresh: Rate = Rate(60, 60)
    rate_reads: Rate = Rate(600, 60)
    rate_writes: Rate = Rate(120, 60)
    rate_sends: Rate = Rate(60, 60)
    rate_uploads: Rate = Rate(30, 600)
    rate_password_hashes: int = 2
    rate_password_queue: int = 8
    trusted_proxies: tuple[IpNetwork, ...] = ()
    # Egress to client-given URLs (push endpoints): true admits http and any address,
    # loopback and private ones included, for tests and closed networks (cronchat.egress).
    push_allow_private: bool = False
    argon2_time_cost: int = 3
    argon2_memory_kib: int = 65536
    log_level: str = "INFO"
    # Push notifications: the VAPID key (PEM or base64url; generated into the data dir when
    # not given), the contact the push services see (RFC 8292 ``sub``), and whether pushes
    # carry the room name, the sender's name and an excerpt.
    vapid_private_key: Secret = field(default_factory=lambda: Secret(""))
    vapid_subject: str = "mailto:admin@localhost"
    push_content: bool = True
    # Push delivery: the first retry's wait (doubled at each try, with jitter), how many
    # pushes one process sends at once, and how long one push's exchange may take.
    push_retry_base_seconds: float = 5.0
    push_concurrency: int = 16
    push_timeout_seconds: float = 15.0
    # The browser client's files: static/ beside the package in a checkout.
    static_dir: Path = Path(__file__).resolve().parent.parent / "static"

    @property
    def media_dir(self) -> Path:
        return self.data_dir / "media"


# Environment variable (without the CRONCHAT_ prefix) -> setting name and parser.
_PARSERS: dict[str, tuple[str, Any]] = {
    "HOST": ("host", str),
    "PORT": ("port", lambda n, v: _int(n, v, 0, 65535)),
    "ACCESS_TOKEN_TTL": ("access_token_ttl", lambda n, v: _int(n, v, 10)),
    "REFRESH_TOKEN_TTL": ("refresh_token_ttl", lambda n, v: _int(n, v, 60)),
    "SESSION_CACHE_SECONDS": ("session_cache_seconds", lambda n, v: _int(n, v, 0, 3600)),
    "OPEN_REGISTRATION": ("open_registration", _bool),
    "MEDIA_BACKEND": ("media_backend", str),
    "S3_ENDPOINT_URL": ("s3_endpoint_url", str),
    "S3_BUCKET": ("s3_bucket", str),
    "S3_REGION": ("s3_region", str),
    "S3_ACCESS_KEY_ID": ("s3_access_key_id", lambda n, v: Secret(v)),
    "S3_SECRET_ACCESS_KEY": ("s3_secret_access_key", lambda n, v: Secret(v)),
    "REDIS_URL": ("redis_url", lambda n, v: Secret(v)),
    "WORKERS": ("workers", lambda n, v: _int(n, v, 1, 64)),
    "MAX_BODY_BYTES": ("max_body_bytes", lambda n, v: _int(n, v, 1024)),
    "BODY_TIMEOUT": ("body_timeout", lambda n, v: _int(n, v, 1, 3600)),
    "IDLE_CONNECTION_TIMEOUT": ("idle_connection_timeout", lambda n, v: _int(n, v, 1, 3600)),
    "MAX_HEADER_BYTES": ("max_header_bytes", lambda n, v: _int(n, v, 4096, 1024 * 1024)),
    "MAX_TEXT_LENGTH": ("max_text_length", lambda n, v: _int(n, v, 1, 100_000)),
    "MEDIA_MAX_BYTES": ("media_max_bytes", lambda n, v: _int(n, v, 1024)),
    "MEDIA_MAX_PIXELS": ("media_max_pixels", lambda n, v: _int(n, v, 1)),
    "MEDIA_MAX_FRAMES": ("media_max_frames", lambda n, v: _int(n, v, 1)),
    "MEDIA_MAX_DECODE_SECONDS": ("media_max_decode_seconds", _seconds),
    "MEDIA_MAX_CONCURRENT_UPLOADS": (
        "media_max_concurrent_uploads",
        lambda n, v: _int(n, v, 1, 10_000),
    ),
    "MEDIA_URL_TTL": ("media_url_ttl", lambda n, v: _int(n, v, 10)),
    "DB_POOL_SIZE": ("db_pool_size", lambda n, v: _int(n, v, 1, 256)),
    "DB_WRITERS": ("db_writers", lambda n, v: _int(n, v, 1, 64)),
    "SWITCH_INTERVAL_US": ("switch_interval_us", lambda n, v: _int(n, v, 50, 100_000)),
    "DB_TIMEOUT": ("db_timeout", lambda n, v: _int(n, v, 1, 3600)),
    "REDIS_TIMEOUT": ("redis_timeout", lambda n, v: _int(n, v, 1, 600)),
    "WS_AUTH_TIMEOUT": ("ws_auth_timeout", lambda n, v: _int(n, v, 1, 600)),
    "WS_PING_INTERVAL": ("ws_ping_interval", lambda n, v: _int(n, v, 1, 3600)),
    "WS_BUFFER_BYTES": ("ws_buffer_bytes", lambda n, v: _int(n, v, 4096)),
    "WS_RATE_PER_SECOND": ("ws_rate_per_second", lambda n, v: _int(n, v, 1)),
    "WS_RATE_BURST": ("ws_rate_burst", lambda n, v: _int(n, v, 1)),
    "RATE_LIMITS": ("rate_limits", _bool),
    "RATE_LOGIN_ADDRESS": ("rate_login_address", Rate.parse),
    "RATE_LOGIN_USERNAME": ("rate_login_username", Rate.parse),
    "RATE_REGISTER": ("rate_register", Rate.parse),
    "RATE_REFRESH": ("rate_refresh", Rate.parse),
    "RATE_READS": ("rate_reads", Rate.parse),
    "RATE_WRITES": ("rate_writes", Rate.parse),
    "RATE_SENDS": ("rate_sends", Rate.parse),
    "RATE_UPLOADS": ("rate_uploads", Rate.parse),
    "RATE_PASSWORD_HASHES": ("rate_password_hashes", lambda n, v: _int(n, v, 1, 64)),
    "RATE_PASSWORD_QUEUE": ("rate_password_queue", lambda n, v: _int(n, v, 0, 10_000)),
    "TRUSTED_PROXIES": ("trusted_proxies", _networks),
    "PUSH_ALLOW_PRIVATE": ("push_allow_private", _bool),
    "ARGON2_TIME_COST": ("argon2_time_cost", lambda n, v: _int(n, v, 1, 10)),
    "ARGON2_MEMORY_KIB": ("argon2_memory_kib", lambda n, v: _int(n, v, 8, 4 * 1024 * 1024)),
    "LOG_LEVEL": ("log_level", lambda n, v: v.upper()),
    "VAPID_PRIVATE_KEY": ("vapid_private_key", lambda n, v: Secret(v)),
    "VAPID_SUBJECT": ("vapid_subject", str),
    "PUSH_CONTENT": ("push_content", _bool),
    "PUSH_RETRY_BASE_SECONDS": ("push_retry_base_seconds", _seconds),
    "PUSH_CONCURRENCY": ("push_concurrency", lambda n, v: _int(n, v, 1, 1000)),
    "PUSH_TIMEOUT_SECONDS": ("push_timeout_seconds", _seconds),
    "STATIC_DIR": ("static_dir", lambda n, v: Path(v)),
}


def load_settings(environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
    """Build settings from ``CRONCHAT_*`` variables, then flags (``overrides``) on top.

    Creates the data dir and, when no JWT secret is configured, generates one into it.
    Raises :class:`ConfigError` with a one-line reason when anything cannot work.
    """
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for suffix, (name, parse) in _PARSERS.items():
        raw = environ.get(f"CRONCHAT_{suffix}")
        if raw is not None and raw != "":
            values[name] = raw if parse is str else parse(f"CRONCHAT_{suffix}", raw)
    for name, value in overrides.items():
        if value is not None:
            values[name] = value

    data_dir = Path(overrides.get("data_dir") or environ.get("CRONCHAT_DATA_DIR") or "./data")
    data_dir = _prepare_data_dir(data_dir)
    database_url = overrides.get("database_url") or environ.get("CRONCHAT_DATABASE_URL")
    values.pop("database_url", None)
    values["data_dir"] = data_dir
    values["database"] = (
        DatabaseUrl.parse(database_url)
        if database_url
        else DatabaseUrl(dialect="sqlite", path=str(data_dir / "cronchat.sqlite3"))
    )
    secret = overrides.get("jwt_secret") or environ.get("CRONCHAT_JWT_SECRET")
    values["jwt_secret"] = Secret(secret) if secret else _stored_secret(data_dir)
    vapid_key = values.get("vapid_private_key")
    if isinstance(vapid_key, str):
        vapid_key = Secret(vapid_key)
    if vapid_key is None or not vapid_key.reveal().strip():
        vapid_key = _stored_vapid_key(data_dir)
    values["vapid_private_key"] = vapid_key
    values.setdefault("host", "0.0.0.0")
    values.setdefault("port", 8080)

    known = {f.name for f in fields(Settings)}
    unknown = set(values) - known
    if unknown:
        raise ConfigError(f"unknown settings: {', '.join(sorted(unknown))}")
    settings = Settings(**values)
    _validate(settings)
    return settings


def _prepare_data_dir(path: Path) -> Path:
    """The data dir, created 0700 when missing (it holds the database, secrets and media)."""
    try:
        make_private_dir(path)
        probe = path / ".write-check"
        probe.write_text("ok")
        probe.unlink()
    except OSError as error:
        raise ConfigError(
            f"CRONCHAT_DATA_DIR: {path} is not writable ({error.strerror or error})"
        ) from None
    return path.resolve()


def _stored_secret(data_dir: Path) -> Secret:
    """The JWT secret generated once into the data dir (mode 0600), created on first use."""
    path = data_dir / "jwt_secret"
    if not path.exists():
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
        os.fchmod(descriptor, FILE_MODE)  # whatever the umask
        with os.fdopen(descriptor, "w") as handle:
            handle.write(secrets.token_urlsafe(64))
    value = path.read_text().strip()
    if len(value) < 32:
        raise ConfigError(f"{path}: the stored JWT secret is too short; delete it to regenerate")
    return Secret(value)


def _stored_vapid_key(data_dir: Path) -> Secret:
    """The VAPID private key generated once into the data dir (PEM, mode 0600). Written to a
    file of its own first and then linked into place, so that processes starting together
    all read the one complete key that won."""
    path = data_dir / "vapid_private_key.pem"
    if not path.exists():
        draft = data_dir / f".vapid_private_key.{os.getpid()}.{secrets.token_hex(4)}"
        descriptor = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
        os.fchmod(descriptor, FILE_MODE)  # whatever the umask
        try:
            with os.fdopen(descriptor, "w") as handle:
                handle.write(generate_private_key_pem())
            os.link(draft, path)
        except FileExistsError:
            pass  # another process stored its key first: that one is used
        finally:
            draft.unlink()
    return Secret(path.read_text())


def _validate(settings: Settings) -> None:
    if len(settings.jwt_secret.reveal()) < 32:
        raise ConfigError("CRONCHAT_JWT_SECRET: use at least 32 characters")
    if settings.media_backend not in ("local", "s3"):
        raise ConfigError(
            f"CRONCHAT_MEDIA_BACKEND: unknown backend {settings.media_backend!r} (local or s3)"
        )
    if settings.media_backend == "s3" and not settings.s3_bucket:
        raise ConfigError("CRONCHAT_S3_BUCKET: required when CRONCHAT_MEDIA_BACKEND=s3")
    redis_url = settings.redis_url.reveal()
    if redis_url and not redis_url.startswith(("redis://", "rediss://", "unix://")):
        raise ConfigError("CRONCHAT_REDIS_URL: expected redis://host:port/db")
    if settings.workers > 1 and not redis_url:
        raise ConfigError(
            "--workers above 1 needs CRONCHAT_REDIS_URL: without Redis, run one process"
        )
    try:
        parse_private_key(settings.vapid_private_key.reveal())
    except ValueError as error:
        raise ConfigError(
            f"CRONCHAT_VAPID_PRIVATE_KEY (or the data dir's vapid_private_key.pem): {error}"
        ) from None
    if not settings.vapid_subject.startswith(("mailto:", "https://")):
        raise ConfigError(
            "CRONCHAT_VAPID_SUBJECT: a mailto: address or an https:// URL the push services"
            f" can reach the operator by, not {settings.vapid_subject!r}"
        )
    if settings.log_level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise ConfigError(f"CRONCHAT_LOG_LEVEL: unknown level {settings.log_level!r}")
