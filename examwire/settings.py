"""Settings: read once from ``EXAMWIRE_*`` environment variables into a frozen object.

Nothing else in the code base reads the environment. ``Settings.from_env`` is
called by the command line; the app factory takes the resulting object.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping


class SettingsError(ValueError):
    """A setting is missing or malformed; the message names the variable."""


def _int(env: Mapping[str, str], name: str, default: int, *, low: int, high: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name} must be an integer, got {raw!r}") from None
    if not low <= value <= high:
        raise SettingsError(f"{name} must be between {low} and {high}, got {value}")
    return value


def _list(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    raw = env.get(name, "")
    return tuple(part.strip() for part in raw.split(",") if part.strip())


def _sentinels(env: Mapping[str, str], name: str) -> tuple[tuple[str, int], ...]:
    """``host:port`` pairs, comma-separated (an IPv6 host in brackets: ``[::1]:26379``)."""
    out = []
    for part in _list(env, name):
        host, sep, port = part.rpartition(":")
        host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
        if not sep or not host or not port.isdigit() or not 1 <= int(port) <= 65535:
            raise SettingsError(f"{name} must be comma-separated host:port pairs, got {part!r}")
        out.append((host, int(port)))
    return tuple(out)


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = (env.get(name) or "").strip().lower()
    if raw == "":
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise SettingsError(f"{name} must be true or false, got {raw!r}")


def _write_concern(raw: str) -> str | int:
    """``majority``, a tag set name, or a number of nodes (0 = unacknowledged is refused)."""
    if raw.isdigit():
        if int(raw) < 1:
            raise SettingsError("EXAMWIRE_MONGODB_WRITE_CONCERN must acknowledge writes (1 or more, or majority)")
        return int(raw)
    return raw


def default_data_dir() -> Path:
    return Path(os.environ.get("XDG_DATA_HOME", Path.home() / ".local" / "share")) / "examwire"


def _secret_file(data_dir: Path, name: str, created: list[str]) -> str:
    """Return the secret stored in ``data_dir/name``, creating it (mode 0600) if absent (then ``name`` joins ``created``)."""
    path = data_dir / name
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    data_dir.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(48)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(value + "\n")
    created.append(name)
    return value


#: ``gc.set_threshold`` for a process that serves many connections (``examwire.cli.tune_gc``).
DEFAULT_GC_THRESHOLD = (50_000, 20, 100)


@dataclass(frozen=True, slots=True)
class Settings:
    """Every knob of one engine node.

    ``redis_url`` None means embedded mode: the command line starts a private
    Redis in ``data_dir`` and fills it in before the app is built. With
    ``redis_sentinels`` the sentinels name the primary of
    ``redis_sentinel_service``, and ``redis_url`` (``redis://`` when unset)
    gives only the user, password, database and TLS of the connection.
    ``mongodb_url`` None means results go to SQLite in ``data_dir``.
    ``celery_broker_url`` None means the session Redis.
    """

    data_dir: Path
    jwt_secret: str | None
    secret: str
    jwt_audience: str = "examwire"
    jwt_issuer: str | None = None
    jwks_url: str | None = None
    jwt_algorithms: tuple[str, ...] = ("HS256",)
    max_token_lifetime_s: int = 86_400
    redis_url: str | None = None
    mongodb_url: str | None = None
    allowed_origins: tuple[str, ...] = ()
    answer_grace_ms: int = 2000
    max_frame_bytes: int = 65536
    max_exam_bytes: int = 8 * 1024 * 1024
    batch_size: int = 10
    hello_timeout_s: float = 10.0
    rate_per_s: int = 20
    rate_burst: int = 40
    send_queue: int = 256
    sweep_interval_ms: int = 250
    time_push_interval_s: float = 60.0
    redis_max_connections: int = 200
    redis_sentinels: tuple[tuple[str, int], ...] = ()
    redis_sentinel_service: str = "examwire"
    redis_retry_ms: int = 10_000
    redis_timeout_ms: int = 5000
    redis_min_replicas: int = 0
    redis_wait_timeout_ms: int = 1000
    sqlite_path: Path | None = None
    mongodb_database: str = "examwire"
    mongodb_write_concern: str | int = "majority"
    store_timeout_ms: int = 5000
    celery_broker_url: str | None = None
    embedded_worker: bool = True
    worker_concurrency: int = 1
    persisted_ttl_s: int = 3600
    outbox_batch: int = 100
    outbox_retry_ms: int = 1000
    outbox_retry_max_ms: int = 60_000
    drain_interval_ms: int = 1000
    worker_sweep_interval_ms: int = 5000
    analysis_interval_s: int = 300
    presence_interval_ms: int = 5000
    proctor_update_ms: int = 250
    max_watched_exams: int = 1000
    event_rate_per_s: float = 1.0
    event_burst: int = 10
    backlog: int = 4096
    max_header_bytes: int = 32768
    max_pipelined: int = 16
    header_timeout_s: float = 10.0
    send_timeout_s: float = 20.0
    shutdown_timeout_s: int = 10
    heartbeat_interval_ms: int = 5000
    worker_stale_s: int = 30
    outbox_stale_s: int = 60
    readyz_fail_degraded: bool = False
    beat_lock_ttl_s: int = 30
    child_restart_limit: int = 5
    gc_threshold: tuple[int, int, int] = DEFAULT_GC_THRESHOLD
    metrics: bool = True
    metrics_port: int = 0
    metrics_host: str = "127.0.0.1"
    worker_metrics_port: int = 0
    metrics_refresh_ms: int = 5000
    loop_lag_interval_ms: int = 500
    #: the secret files ``from_env`` had to create in ``data_dir`` (embedded mode, first use of the dir)
    created_secrets: tuple[str, ...] = ()
    node_id: str = field(default_factory=lambda: secrets.token_hex(4))

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, *, data_dir: str | Path | None = None) -> "Settings":
        """Build settings from ``env`` (default ``os.environ``).

        Secrets: ``EXAMWIRE_JWT_SECRET`` and ``EXAMWIRE_SECRET`` (seeds and
        attempt ids) are taken from the environment; in embedded mode (no
        ``EXAMWIRE_REDIS_URL``) a missing one is generated once into the data
        dir. With a shared Redis they must be set, or nodes would disagree.
        """
        env = os.environ if env is None else env
        ddir = Path(data_dir or env.get("EXAMWIRE_DATA_DIR") or default_data_dir()).expanduser().resolve()
        redis_url = env.get("EXAMWIRE_REDIS_URL") or None
        if redis_url is not None and not redis_url.startswith(("redis://", "rediss://", "unix://")):
            raise SettingsError(f"EXAMWIRE_REDIS_URL must start with redis://, rediss:// or unix://, got {redacted_url(redis_url)!r}")
        sentinels = _sentinels(env, "EXAMWIRE_REDIS_SENTINELS")
        if sentinels:
            if redis_url is not None and redis_url.startswith("unix://"):
                raise SettingsError("EXAMWIRE_REDIS_URL cannot be a unix:// socket with EXAMWIRE_REDIS_SENTINELS")
            redis_url = redis_url or "redis://"  # the sentinels name the host; the URL adds credentials, db, TLS
        service = (env.get("EXAMWIRE_REDIS_SENTINEL_SERVICE") or "examwire").strip()
        if not service or any(c.isspace() for c in service):
            raise SettingsError(f"EXAMWIRE_REDIS_SENTINEL_SERVICE must be a name without spaces, got {service!r}")
        redis_timeout_ms = _int(env, "EXAMWIRE_REDIS_TIMEOUT_MS", 5000, low=100, high=600_000)
        min_replicas = _int(env, "EXAMWIRE_REDIS_MIN_REPLICAS", 0, low=0, high=100)
        wait_timeout_ms = _int(env, "EXAMWIRE_REDIS_WAIT_TIMEOUT_MS", 1000, low=1, high=600_000)
        if min_replicas and wait_timeout_ms >= redis_timeout_ms:
            raise SettingsError(
                f"EXAMWIRE_REDIS_WAIT_TIMEOUT_MS ({wait_timeout_ms}) must be below EXAMWIRE_REDIS_TIMEOUT_MS ({redis_timeout_ms}):"
                " a WAIT holds its connection that long"
            )
        jwks_url = env.get("EXAMWIRE_JWKS_URL") or None
        algorithms = _list(env, "EXAMWIRE_JWT_ALGORITHMS") or (("RS256",) if jwks_url else ("HS256",))
        allowed = {"HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "ES256", "ES384", "ES512", "PS256"}
        for alg in algorithms:
            if alg not in allowed:
                raise SettingsError(f"EXAMWIRE_JWT_ALGORITHMS: {alg!r} is not supported")
        symmetric = {a.startswith("HS") for a in algorithms}
        if len(symmetric) > 1:
            raise SettingsError("EXAMWIRE_JWT_ALGORITHMS mixes HMAC and public-key algorithms")
        uses_hmac = symmetric == {True}
        if jwks_url and uses_hmac:
            raise SettingsError("EXAMWIRE_JWKS_URL needs public-key algorithms (RS256, ES256, ...)")
        if not jwks_url and not uses_hmac:
            raise SettingsError("public-key EXAMWIRE_JWT_ALGORITHMS need EXAMWIRE_JWKS_URL")

        jwt_secret = env.get("EXAMWIRE_JWT_SECRET") or None
        secret = env.get("EXAMWIRE_SECRET") or None
        created: list[str] = []
        if redis_url is None:
            if uses_hmac and jwt_secret is None:
                jwt_secret = _secret_file(ddir, "jwt-secret", created)
            if secret is None:
                secret = _secret_file(ddir, "secret", created)
        else:
            if uses_hmac and jwt_secret is None:
                raise SettingsError("EXAMWIRE_JWT_SECRET must be set when EXAMWIRE_REDIS_URL is set")
            if secret is None:
                raise SettingsError("EXAMWIRE_SECRET must be set when EXAMWIRE_REDIS_URL is set")
        if uses_hmac and jwt_secret is not None and len(jwt_secret.encode()) < 32:
            raise SettingsError("EXAMWIRE_JWT_SECRET must be at least 32 bytes")

        return cls(
            data_dir=ddir,
            jwt_secret=jwt_secret if uses_hmac else None,
            secret=secret,
            jwt_audience=env.get("EXAMWIRE_JWT_AUDIENCE") or "examwire",
            jwt_issuer=env.get("EXAMWIRE_JWT_ISSUER") or None,
            jwks_url=jwks_url,
            jwt_algorithms=algorithms,
            max_token_lifetime_s=_int(env, "EXAMWIRE_MAX_TOKEN_LIFETIME_S", 86_400, low=60, high=366 * 86_400),
            redis_url=redis_url,
            mongodb_url=env.get("EXAMWIRE_MONGODB_URL") or None,
            allowed_origins=_list(env, "EXAMWIRE_ALLOWED_ORIGINS"),
            answer_grace_ms=_int(env, "EXAMWIRE_ANSWER_GRACE_MS", 2000, low=0, high=60_000),
            max_frame_bytes=_int(env, "EXAMWIRE_MAX_FRAME_BYTES", 65536, low=1024, high=16 * 1024 * 1024),
            max_exam_bytes=_int(env, "EXAMWIRE_MAX_EXAM_BYTES", 8 * 1024 * 1024, low=1024, high=256 * 1024 * 1024),
            batch_size=_int(env, "EXAMWIRE_BATCH_SIZE", 10, low=1, high=100),
            rate_per_s=_int(env, "EXAMWIRE_RATE_PER_S", 20, low=1, high=100_000),
            rate_burst=_int(env, "EXAMWIRE_RATE_BURST", 40, low=1, high=100_000),
            hello_timeout_s=_int(env, "EXAMWIRE_HELLO_TIMEOUT_MS", 10_000, low=100, high=600_000) / 1000,
            sweep_interval_ms=_int(env, "EXAMWIRE_SWEEP_INTERVAL_MS", 250, low=10, high=60_000),
            time_push_interval_s=_int(env, "EXAMWIRE_TIME_PUSH_INTERVAL_MS", 60_000, low=100, high=600_000) / 1000,
            send_queue=_int(env, "EXAMWIRE_SEND_QUEUE", 256, low=4, high=100_000),
            redis_max_connections=_int(env, "EXAMWIRE_REDIS_MAX_CONNECTIONS", 200, low=4, high=10_000),
            redis_sentinels=sentinels,
            redis_sentinel_service=service,
            redis_retry_ms=_int(env, "EXAMWIRE_REDIS_RETRY_MS", 10_000, low=0, high=600_000),
            redis_timeout_ms=redis_timeout_ms,
            redis_min_replicas=min_replicas,
            redis_wait_timeout_ms=wait_timeout_ms,
            sqlite_path=Path(env["EXAMWIRE_SQLITE_PATH"]).expanduser().resolve() if env.get("EXAMWIRE_SQLITE_PATH") else None,
            mongodb_database=env.get("EXAMWIRE_MONGODB_DB") or "examwire",
            mongodb_write_concern=_write_concern(env.get("EXAMWIRE_MONGODB_WRITE_CONCERN") or "majority"),
            store_timeout_ms=_int(env, "EXAMWIRE_STORE_TIMEOUT_MS", 5000, low=50, high=600_000),
            celery_broker_url=env.get("EXAMWIRE_CELERY_BROKER_URL") or None,
            embedded_worker=_bool(env, "EXAMWIRE_EMBEDDED_WORKER", True),
            worker_concurrency=_int(env, "EXAMWIRE_WORKER_CONCURRENCY", 1, low=1, high=64),
            persisted_ttl_s=_int(env, "EXAMWIRE_PERSISTED_TTL_S", 3600, low=1, high=30 * 86400),
            outbox_batch=_int(env, "EXAMWIRE_OUTBOX_BATCH", 100, low=1, high=10_000),
            outbox_retry_ms=_int(env, "EXAMWIRE_OUTBOX_RETRY_MS", 1000, low=10, high=3_600_000),
            outbox_retry_max_ms=_int(env, "EXAMWIRE_OUTBOX_RETRY_MAX_MS", 60_000, low=10, high=86_400_000),
            drain_interval_ms=_int(env, "EXAMWIRE_DRAIN_INTERVAL_MS", 1000, low=50, high=3_600_000),
            worker_sweep_interval_ms=_int(env, "EXAMWIRE_WORKER_SWEEP_INTERVAL_MS", 5000, low=50, high=3_600_000),
            analysis_interval_s=_int(env, "EXAMWIRE_ANALYSIS_INTERVAL_S", 300, low=1, high=86_400),
            presence_interval_ms=_int(env, "EXAMWIRE_PRESENCE_INTERVAL_MS", 5000, low=50, high=10_000),
            proctor_update_ms=_int(env, "EXAMWIRE_PROCTOR_UPDATE_MS", 250, low=0, high=10_000),
            max_watched_exams=_int(env, "EXAMWIRE_MAX_WATCHED_EXAMS", 1000, low=1, high=100_000),
            event_rate_per_s=_int(env, "EXAMWIRE_EVENT_RATE_PER_MIN", 60, low=1, high=60_000) / 60,
            event_burst=_int(env, "EXAMWIRE_EVENT_BURST", 10, low=1, high=10_000),
            backlog=_int(env, "EXAMWIRE_BACKLOG", 4096, low=64, high=65_535),
            max_header_bytes=_int(env, "EXAMWIRE_MAX_HEADER_BYTES", 32768, low=1024, high=1024 * 1024),
            max_pipelined=_int(env, "EXAMWIRE_MAX_PIPELINED", 16, low=0, high=10_000),
            header_timeout_s=float(_int(env, "EXAMWIRE_HEADER_TIMEOUT_S", 10, low=1, high=600)),
            send_timeout_s=float(_int(env, "EXAMWIRE_SEND_TIMEOUT_S", 20, low=1, high=600)),
            shutdown_timeout_s=_int(env, "EXAMWIRE_SHUTDOWN_TIMEOUT_S", 10, low=1, high=600),
            heartbeat_interval_ms=_int(env, "EXAMWIRE_HEARTBEAT_INTERVAL_MS", 5000, low=100, high=60_000),
            worker_stale_s=_int(env, "EXAMWIRE_WORKER_STALE_S", 30, low=1, high=86_400),
            outbox_stale_s=_int(env, "EXAMWIRE_OUTBOX_STALE_S", 60, low=1, high=86_400),
            readyz_fail_degraded=_bool(env, "EXAMWIRE_READYZ_FAIL_DEGRADED", False),
            beat_lock_ttl_s=_int(env, "EXAMWIRE_BEAT_LOCK_TTL_S", 30, low=2, high=3600),
            child_restart_limit=_int(env, "EXAMWIRE_CHILD_RESTART_LIMIT", 5, low=1, high=1000),
            gc_threshold=_gc_threshold(env.get("EXAMWIRE_GC_THRESHOLD")),
            metrics=_bool(env, "EXAMWIRE_METRICS", True),
            metrics_port=_int(env, "EXAMWIRE_METRICS_PORT", 0, low=0, high=65535),
            metrics_host=(env.get("EXAMWIRE_METRICS_HOST") or "127.0.0.1").strip(),
            worker_metrics_port=_int(env, "EXAMWIRE_WORKER_METRICS_PORT", 0, low=0, high=65535),
            metrics_refresh_ms=_int(env, "EXAMWIRE_METRICS_REFRESH_MS", 5000, low=100, high=600_000),
            loop_lag_interval_ms=_int(env, "EXAMWIRE_LOOP_LAG_INTERVAL_MS", 500, low=10, high=60_000),
            created_secrets=tuple(created),
        )

    @property
    def presence_stale_ms(self) -> int:
        """A connection whose node has not beaten for this long is shown disconnected (3 heartbeats)."""
        return 3 * self.presence_interval_ms

    @property
    def broker_url(self) -> str:
        """The Celery broker and result backend: ``celery_broker_url``, else the session Redis (through its sentinels)."""
        if self.celery_broker_url:
            return celery_url(self.celery_broker_url)
        if self.redis_url is None:
            raise SettingsError("no Redis URL to use as the Celery broker")
        if self.redis_sentinels:
            return sentinel_celery_url(self.redis_sentinels, self.redis_url)
        return celery_url(self.redis_url)

    @property
    def broker_options(self) -> dict[str, object]:
        """Celery's transport options of ``broker_url`` (and of the result backend): the sentinels' service name."""
        return {"master_name": self.redis_sentinel_service} if self.broker_url.startswith("sentinel://") else {}

    @property
    def redis_where(self) -> str | None:
        """Where the session Redis is, for logs and status (no password)."""
        if self.redis_sentinels:
            return f"sentinel service {self.redis_sentinel_service!r} at " + ",".join(f"{h}:{p}" for h, p in self.redis_sentinels)
        return redacted_url(self.redis_url)

    @property
    def results_path(self) -> Path:
        """The embedded results store (SQLite), used when ``mongodb_url`` is None."""
        return self.sqlite_path or self.data_dir / "results.sqlite3"

    def with_redis(self, url: str) -> "Settings":
        """A copy with ``redis_url`` filled in (embedded mode, once Redis runs)."""
        from dataclasses import replace

        return replace(self, redis_url=url)


def _gc_threshold(raw: str | None) -> tuple[int, int, int]:
    if not raw:
        return DEFAULT_GC_THRESHOLD
    parts = raw.split(",")
    try:
        values = tuple(int(p.strip()) for p in parts)
    except ValueError:
        values = ()
    if len(values) != 3 or not 100 <= values[0] <= 10_000_000 or not all(1 <= v <= 10_000 for v in values[1:]):
        raise SettingsError("EXAMWIRE_GC_THRESHOLD: three integers 'gen0,gen1,gen2', gen0 in 100..10000000, the others in 1..10000")
    return values  # type: ignore[return-value]


def celery_url(redis_url: str) -> str:
    """A redis-py URL in the form Celery's broker and backend take (``unix://`` -> ``redis+socket://``)."""
    if redis_url.startswith("unix://"):
        return "redis+socket://" + redis_url[len("unix://"):]
    return redis_url


def sentinel_celery_url(sentinels: tuple[tuple[str, int], ...], redis_url: str) -> str:
    """Celery's (kombu's) URL of a Redis behind sentinels: ``sentinel://[:password@]host:port/db``, ``;``-separated.

    The password and database come from ``redis_url``; the service name goes
    in the transport option ``master_name`` (``Settings.broker_options``).
    """
    from urllib.parse import urlsplit

    parts = urlsplit(redis_url)
    auth = ""
    if parts.password is not None:
        auth = f"{parts.username or ''}:{parts.password}@"
    db = parts.path.lstrip("/") or "0"
    return ";".join(f"sentinel://{auth}{f'[{h}]' if ':' in h else h}:{p}/{db}" for h, p in sentinels)


def redacted_url(url: str | None) -> str | None:
    """``url`` without its password (for logs and status output)."""
    if url is None or "@" not in url:
        return url
    scheme, _, rest = url.partition("://")
    return f"{scheme}://***@{rest.rpartition('@')[2]}"

