"""The ``examwire`` command: serve, import, token."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import sys
import time
from importlib import resources
from pathlib import Path
from typing import Any, Iterator

import jwt

from engine import ExamInvalid, parse_exam

from .settings import Settings, SettingsError

DEMO_EXAM = "demo-exam.json"


def mint_token(
    settings: Settings, *, sub: str, role: str, exams: list[str] | None = None, name: str | None = None, ttl: int = 3600
) -> str:
    """An HS256 token signed with the configured secret."""
    if settings.jwt_secret is None:
        raise SettingsError("tokens can only be minted with EXAMWIRE_JWT_SECRET (HS256 mode)")
    now = int(time.time())
    claims: dict[str, Any] = {"sub": sub, "role": role, "aud": settings.jwt_audience, "iat": now, "exp": now + ttl}
    if settings.jwt_issuer:
        claims["iss"] = settings.jwt_issuer
    if exams:
        claims["exams"] = exams
    if name:
        claims["name"] = name
    return jwt.encode(claims, settings.jwt_secret, algorithm=settings.jwt_algorithms[0])


def demo_exam() -> dict[str, Any]:
    return json.loads(resources.files("examwire").joinpath("data", DEMO_EXAM).read_text())


@contextlib.contextmanager
def session_redis(settings: Settings) -> Iterator[str]:
    """The session Redis URL: the configured one, the running embedded one, or a temporary embedded one."""
    if settings.redis_url:
        yield settings.redis_url
        return
    import redis as redis_sync

    from .redis_server import EmbeddedRedis

    sock = settings.data_dir / "redis.sock"
    if sock.exists():
        try:
            redis_sync.Redis(unix_socket_path=str(sock), socket_timeout=2).ping()
        except redis_sync.RedisError:
            pass
        else:
            yield f"unix://{sock}"
            return
    with EmbeddedRedis(settings.data_dir) as url:
        yield url


async def _store_exam(url: str, doc: Any) -> tuple[int, bool, str]:
    from storage.exams import ExamCache, RedisExams
    from storage.scripts import Scripts

    from .app import connect_redis

    redis = connect_redis(url, max_connections=4)
    try:
        cache = ExamCache(RedisExams(redis, Scripts.register(redis)))
        exam, created = await cache.put(doc)
        return exam.version, created, exam.id
    finally:
        await redis.aclose()


class JsonLines(logging.Formatter):
    """One JSON object per line: structured events pass through; other records are wrapped."""

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        if message.startswith("{") and not record.exc_info:
            return message
        out: dict[str, Any] = {"event": "log", "level": record.levelname.lower(), "logger": record.name, "message": message}
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out)


def _configure_logging() -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonLines())
    root = logging.getLogger("examwire")
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    root.propagate = False


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from .app import create_app
    from .redis_server import EmbeddedRedis

    settings = Settings.from_env(data_dir=args.data_dir)
    _configure_logging()
    embedded = None
    if settings.redis_url is None:
        embedded = EmbeddedRedis(settings.data_dir)
        settings = settings.with_redis(embedded.start())
        print(f"examwire: embedded Redis on {settings.redis_url} (data in {settings.data_dir})", file=sys.stderr)
    try:
        if args.demo:
            doc = demo_exam()
            version, _, exam_id = asyncio.run(_store_exam(settings.redis_url, doc))  # type: ignore[arg-type]
            base = f"http://{_display_host(args.host)}:{args.port}"
            cand = mint_token(settings, sub="demo-candidate", role="candidate", exams=[exam_id], name="Demo Candidate", ttl=86400)
            proc = mint_token(settings, sub="demo-proctor", role="proctor", exams=[exam_id], name="Demo Proctor", ttl=86400)
            print(f"examwire: demo exam {exam_id!r} (version {version}) loaded", file=sys.stderr)
            print(f"candidate WebSocket: ws{base[4:]}/v1/exams/{exam_id}/attempt", file=sys.stderr)
            print(f"candidate token: {cand}", file=sys.stderr)
            print(f"proctor token:   {proc}", file=sys.stderr)
            sys.stderr.flush()
        config = uvicorn.Config(
            create_app(settings),
            host=args.host,
            port=args.port,
            loop="uvloop",
            ws="websockets-sansio",
            ws_per_message_deflate=False,
            ws_max_size=settings.max_frame_bytes,
            lifespan="on",
            log_level="warning",
            access_log=False,
            timeout_graceful_shutdown=5,
        )
        uvicorn.Server(config).run()
    finally:
        if embedded is not None:
            embedded.stop()
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    settings = Settings.from_env(data_dir=args.data_dir)
    try:
        doc = json.loads(Path(args.file).read_text())
    except (OSError, ValueError) as exc:
        print(f"examwire: cannot read {args.file}: {exc}", file=sys.stderr)
        return 2
    try:
        parse_exam(doc)
    except ExamInvalid as exc:
        print(f"examwire: {args.file} is not a valid exam ({len(exc.problems)} problem(s)):", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return 1
    with session_redis(settings) as url:
        version, created, exam_id = asyncio.run(_store_exam(url, doc))
    state = "stored as version" if created else "unchanged, still version"
    print(f"exam {exam_id!r} {state} {version}")
    return 0


def cmd_token(args: argparse.Namespace) -> int:
    settings = Settings.from_env(data_dir=args.data_dir)
    print(mint_token(settings, sub=args.sub, role=args.role, exams=args.exam or None, name=args.name, ttl=args.ttl))
    return 0


def _display_host(host: str) -> str:
    return "127.0.0.1" if host in ("0.0.0.0", "::", "") else host


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="examwire", description="Real-time WebSocket exam engine.")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run an engine node (embedded Redis unless EXAMWIRE_REDIS_URL is set)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--data-dir", default=None, help="default: $EXAMWIRE_DATA_DIR or ~/.local/share/examwire")
    serve.add_argument("--demo", action="store_true", help="load the bundled demo exam and print tokens")
    serve.set_defaults(func=cmd_serve)

    imp = sub.add_parser("import", help="load or replace an exam from a JSON file")
    imp.add_argument("file")
    imp.add_argument("--data-dir", default=None)
    imp.set_defaults(func=cmd_import)

    tok = sub.add_parser("token", help="print an HS256 token signed with the configured secret")
    tok.add_argument("--sub", required=True)
    tok.add_argument("--role", required=True, choices=["candidate", "proctor", "admin"])
    tok.add_argument("--exam", action="append", help="limit the token to this exam (repeatable)")
    tok.add_argument("--name", default=None)
    tok.add_argument("--ttl", type=int, default=3600, help="seconds (default 3600)")
    tok.add_argument("--data-dir", default=None)
    tok.set_defaults(func=cmd_token)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except SettingsError as exc:
        print(f"examwire: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
