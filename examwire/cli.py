"""The ``examwire`` command: serve, import, token, worker, beat, export, status, outbox."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import faulthandler
import gc
import json
import logging
import os
import signal
import socket
import sys
import threading
import time
from importlib import resources
from pathlib import Path
from typing import Any, Iterator

import jwt

from engine import ExamInvalid, parse_exam
from engine.ids import EXAM_ID_RULE, is_exam_id

from . import logs
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


async def _store_exam(settings: Settings, doc: Any) -> tuple[int, bool, str]:
    """Put an exam into the results store (the authority) and the Redis cache."""
    from services.core import build_core

    core = build_core(settings)
    try:
        await core.results.open()
        exam, created = await core.exams.put(doc)
        return exam.version, created, exam.id
    finally:
        await core.aclose()


def tune_gc(threshold: tuple[int, int, int]) -> None:
    """Set the cyclic collector's thresholds and move everything alive now out of its reach.

    A node allocates many short-lived containers per message (frames,
    futures, dicts); with CPython's default thresholds (700, 10, 10) the
    collector runs about once per few hundred answers and, with thousands of
    sessions held, its scans cost the node a fifth of its CPU under load
    (docs/performance.md). Almost all of that garbage is freed by
    reference counting; cycles are collected a little later. ``gc.freeze``
    puts the imported modules and the app itself in the permanent
    generation, so full collections do not walk them.
    """
    gc.collect()
    gc.set_threshold(*threshold)
    gc.freeze()


class ServeError(Exception):
    """``examwire serve`` cannot start; the message says why, in one line."""


def listen_socket(host: str, port: int) -> socket.socket:
    """The listening socket, bound before anything else starts, so that a busy port is one clear error."""
    try:
        infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise ServeError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        sock.bind(address)
    except OSError as exc:
        sock.close()
        why = "the port is already in use" if exc.errno == errno.EADDRINUSE else exc.strerror
        raise ServeError(f"cannot listen on {host}:{port}: {why}") from None
    sock.set_inheritable(True)
    return sock


class NodeServer:
    """uvicorn's server with two additions: a callback once it listens, and a shutdown watchdog.

    The watchdog is armed by the first SIGTERM or SIGINT. uvicorn bounds the
    graceful part (``shutdown_timeout_s``); if the node, children included, has
    still not finished its shutdown ``WATCHDOG_GRACE_S`` later, it logs every
    thread's stack, kills the children and exits with status 1: a node always
    stops.
    """

    WATCHDOG_GRACE_S = 10.0

    def __init__(self, config: Any, settings: Settings, on_listening: Any, on_forced: Any) -> None:
        import uvicorn

        outer = self

        class Server(uvicorn.Server):
            async def startup(self, sockets: list[socket.socket] | None = None) -> None:
                await super().startup(sockets)
                if self.started and not self.should_exit:
                    on_listening()

            def handle_exit(self, sig: int, frame: Any) -> None:
                outer.arm()
                super().handle_exit(sig, frame)

        self.server = Server(config)
        self._budget = settings.shutdown_timeout_s + self.WATCHDOG_GRACE_S
        self._on_forced = on_forced
        self._done = threading.Event()
        self._armed = False
        self._decided = threading.Lock()  # finished() and the watchdog agree on who ends the process

    def run(self, sock: socket.socket) -> None:
        self.server.run(sockets=[sock])

    def finished(self) -> None:
        """The node, children included, has stopped: the watchdog stands down.

        If it is forcing the exit already (its kill of the children is what let
        this thread get here), it holds ``_decided`` until ``os._exit(1)``: the
        exit is its to make, not this thread's with the signal's status.
        """
        with self._decided:
            self._done.set()

    def arm(self) -> None:
        if self._armed:
            return
        self._armed = True
        threading.Thread(target=self._watch, name="shutdown-watchdog", daemon=True).start()

    def _watch(self) -> None:
        if self._done.wait(self._budget):
            return
        with self._decided:  # held until the process ends
            if self._done.is_set():  # finished just now
                return
            log = logging.getLogger("examwire")
            log.error(json.dumps({"event": "shutdown_forced", "after_s": self._budget, "message": "the node did not stop in time; stacks follow"}))
            faulthandler.dump_traceback(file=sys.stderr, all_threads=True)
            try:
                self._on_forced()
            finally:
                os._exit(1)


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from .app import create_app
    from .protocols import node_protocols
    from .redis_server import EmbeddedRedis
    from .supervisor import RedisChild, Supervisor, worker_child

    try:  # first: a busy port is one clear error, before anything is created or started
        sock = listen_socket(args.host, args.port)
    except ServeError as exc:
        print(f"examwire: {exc}", file=sys.stderr)
        return 1
    try:
        settings = Settings.from_env(data_dir=args.data_dir)
    except SettingsError:
        sock.close()
        raise
    logs.configure()
    # stdout: what a person reads (where it runs, the demo's links); stderr: the JSON log lines
    if settings.created_secrets:
        print(f"examwire: new data dir {settings.data_dir}: generated its secrets ({', '.join(settings.created_secrets)})", flush=True)
    # uvicorn re-raises the SIGTERM it caught once it has shut down; exit through the
    # `finally` below so the embedded worker and Redis stop with the engine
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    supervisor: Supervisor | None = None
    server: NodeServer | None = None
    try:
        if settings.redis_url is None:
            embedded = EmbeddedRedis(settings.data_dir)
            settings = settings.with_redis(embedded.url)
            children: list[Any] = [RedisChild(embedded)]
            if settings.embedded_worker:
                children.append(worker_child(settings))
            supervisor = Supervisor(children, restart_limit=settings.child_restart_limit)
            supervisor.start()
            print(f"examwire: embedded Redis on {settings.redis_url} (data in {settings.data_dir})", flush=True)
            if settings.embedded_worker:
                store = settings.mongodb_url and "MongoDB" or f"SQLite {settings.results_path}"
                print(f"examwire: Celery worker with beat started; results go to {store}", flush=True)
        links = _demo_links(settings, args) if args.demo else []

        def listening() -> None:
            for line in links:
                print(line)
            print(f"examwire: listening on http://{_display_host(args.host)}:{args.port}", flush=True)

        def forced() -> None:
            if supervisor is not None:
                supervisor.close(timeout=5)
                for pid in supervisor.pids():
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.killpg(pid, signal.SIGKILL)

        # uvicorn's httptools and websockets-sansio protocols, with limits on request heads,
        # control frames and peers that do not read (examwire/protocols.py)
        http_protocol, ws_protocol = node_protocols(settings)
        config = uvicorn.Config(
            create_app(settings, children=supervisor),
            loop="uvloop",
            http=http_protocol,
            ws=ws_protocol,
            ws_per_message_deflate=False,
            ws_max_size=settings.max_frame_bytes,
            backlog=settings.backlog,
            lifespan="on",
            log_level="warning",
            access_log=False,
            log_config=None,  # uvicorn's records go through our JSON lines (examwire.logs)
            timeout_graceful_shutdown=settings.shutdown_timeout_s,
        )
        tune_gc(settings.gc_threshold)
        server = NodeServer(config, settings, listening, forced)
        server.run(sock)
    finally:
        sock.close()
        if supervisor is not None:
            supervisor.close()
        if server is not None:
            server.finished()
    return 0


def _demo_links(settings: Settings, args: argparse.Namespace) -> list[str]:
    """Load the demo exam; the lines that tell how to take it and watch it (printed once the node listens)."""
    doc = demo_exam()
    version, _, exam_id = asyncio.run(_store_exam(settings, doc))
    base = f"http://{_display_host(args.host)}:{args.port}"
    # a fresh candidate per start: a link printed by an earlier start may lead to an attempt already submitted
    who = f"demo-candidate-{os.urandom(3).hex()}"
    ttl = min(86400, settings.max_token_lifetime_s)
    cand = mint_token(settings, sub=who, role="candidate", exams=[exam_id], name="Demo Candidate", ttl=ttl)
    proc = mint_token(settings, sub="demo-proctor", role="proctor", exams=[exam_id], name="Demo Proctor", ttl=ttl)
    return [
        f"examwire: demo exam {exam_id!r} (version {version}) loaded",
        f"candidate WebSocket: ws{base[4:]}/v1/exams/{exam_id}/attempt",
        f"candidate token: {cand}",
        f"proctor token:   {proc}",
        f"take the exam: {base}/exam/{exam_id}#token={cand}",
        f"proctor dashboard: {base}/proctor#token={proc}&exam={exam_id}",
    ]


def cmd_import(args: argparse.Namespace) -> int:
    settings = Settings.from_env(data_dir=args.data_dir)
    try:
        doc = json.loads(sys.stdin.read() if args.file == "-" else Path(args.file).read_text())
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
        version, created, exam_id = asyncio.run(_store_exam(settings.with_redis(url), doc))
    state = "stored as version" if created else "unchanged, still version"
    print(f"exam {exam_id!r} {state} {version}")
    return 0


def cmd_token(args: argparse.Namespace) -> int:
    from handlers.auth import NAME_MAX, SUB_MAX, valid_text

    problems = []
    if not args.sub.strip():
        problems.append("--sub must not be empty")
    elif len(args.sub) > SUB_MAX or not valid_text(args.sub):
        problems.append(f"--sub must be at most {SUB_MAX} characters of text (no control characters)")
    if args.name is not None and (len(args.name) > NAME_MAX or not valid_text(args.name)):
        problems.append(f"--name must be at most {NAME_MAX} characters of text (no control characters)")
    if args.ttl <= 0:
        problems.append(f"--ttl must be a positive number of seconds, got {args.ttl}")
    problems += [f"--exam {e!r} is not an exam id ({EXAM_ID_RULE})" for e in args.exam or [] if not is_exam_id(e)]
    if problems:
        for problem in problems:
            print(f"examwire: {problem}", file=sys.stderr)
        return 2
    settings = Settings.from_env(data_dir=args.data_dir)
    if args.ttl > settings.max_token_lifetime_s:
        # every engine would refuse a token that lives longer
        print(f"examwire: --ttl {args.ttl} is over EXAMWIRE_MAX_TOKEN_LIFETIME_S ({settings.max_token_lifetime_s} s)", file=sys.stderr)
        return 2
    if settings.created_secrets:
        # a token signed with fresh secrets is refused by every engine, which uses its own data dir's
        print(
            f"examwire: warning: {settings.data_dir} had no secrets, so new ones were created "
            f"({', '.join(settings.created_secrets)}); an engine using another data dir will refuse this token: "
            "point --data-dir (or EXAMWIRE_DATA_DIR) at the engine's",
            file=sys.stderr,
        )
    print(mint_token(settings, sub=args.sub, role=args.role, exams=args.exam or None, name=args.name, ttl=args.ttl))
    return 0


def _worker_settings(args: argparse.Namespace) -> Settings:
    """Settings of a worker or beat: the configured Redis, else the running embedded one."""
    settings = _status_settings(args)
    sock = settings.data_dir / "redis.sock"
    if settings.redis_url == f"unix://{sock}" and not sock.exists():
        raise SettingsError(f"set EXAMWIRE_REDIS_URL, or start `examwire serve` first (no Redis at {sock})")
    return settings


@contextlib.contextmanager
def worker_metrics(settings: Settings) -> Iterator[Any]:
    """A worker's ``WorkerMetrics`` and their exporter on ``EXAMWIRE_WORKER_METRICS_PORT`` (None: off or port 0).

    Multiprocess mode (see ``services.metrics``): the pool's children write
    their values to files in a directory made empty for this run, and the
    exporter, a thread of this main process, sums them on every scrape.
    ``prometheus_client`` chooses how it keeps values when it is first
    imported, from ``PROMETHEUS_MULTIPROC_DIR``: so the directory is put in
    this process's environment (which the forked children share) before
    anything imports it, and removed when the worker stops. A port that cannot
    be bound is logged (``metrics_listen_failed``) and the worker runs on
    without its exporter: persisting results matters more.
    """
    if not (settings.metrics and settings.worker_metrics_port):
        yield None
        return
    import shutil
    import tempfile

    if "prometheus_client" in sys.modules:
        raise RuntimeError("prometheus_client was imported before the worker's multiprocess directory was set")
    path = tempfile.mkdtemp(prefix="examwire-worker-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = path
    try:
        from services.metrics import WorkerMetrics, start_worker_exporter

        metrics = WorkerMetrics()
        server = None
        try:
            server = start_worker_exporter(settings.metrics_host, settings.worker_metrics_port, path)
        except OSError as exc:
            logging.getLogger("examwire").error(json.dumps({
                "event": "metrics_listen_failed", "host": settings.metrics_host, "port": settings.worker_metrics_port,
                "error": exc.strerror or str(exc)}))  # fmt: skip
        try:
            yield metrics
        finally:
            if server is not None:
                server.shutdown()
                server.server_close()
    finally:
        shutil.rmtree(path, ignore_errors=True)


def cmd_worker(args: argparse.Namespace) -> int:
    settings = _worker_settings(args)
    logs.configure()
    with worker_metrics(settings) as metrics:
        from tasks.app import create_celery  # after worker_metrics: it imports prometheus_client

        return _run_worker(args, settings, create_celery(settings, metrics=metrics))


def _run_worker(args: argparse.Namespace, settings: Settings, app: Any) -> int:
    argv = [
        "--quiet",  # no banner: the process writes JSON log lines only
        "worker",
        "--loglevel", args.loglevel,
        "--concurrency", str(args.concurrency or settings.worker_concurrency),
        "--pool", args.pool,
        "--hostname", f"examwire-{settings.node_id}@{socket.gethostname()}",
        "--without-gossip", "--without-mingle",
    ]  # fmt: skip
    if args.beat:
        argv += ["--beat", "--schedule", str(settings.data_dir / "celerybeat-schedule")]
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    app.worker_main(argv)
    return 0


def cmd_beat(args: argparse.Namespace) -> int:
    from tasks.app import create_celery

    settings = _worker_settings(args)
    logs.configure()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    app = create_celery(settings)
    app.start(["--quiet", "beat", "--loglevel", args.loglevel, "--schedule", str(settings.data_dir / "celerybeat-schedule")])
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from services import reports
    from services.core import build_core

    settings = Settings.from_env(data_dir=args.data_dir)

    async def run(url: str) -> str:
        core = build_core(settings.with_redis(url))
        try:
            await core.results.open()
            return await reports.export(core, args.exam, Path(args.out_dir) if args.out_dir else None)
        finally:
            await core.aclose()

    if not is_exam_id(args.exam):
        print(f"examwire: {args.exam!r} is not an exam id ({EXAM_ID_RULE})", file=sys.stderr)
        return 2
    try:
        with session_redis(settings) as url:
            path = asyncio.run(run(url))
    except reports.UnknownExam as exc:
        print(f"examwire: {exc}", file=sys.stderr)
        return 1
    print(path)
    return 0


def _status_settings(args: argparse.Namespace) -> Settings:
    """The configured Redis, else the embedded one's socket (which may not answer: that is a finding)."""
    settings = Settings.from_env(data_dir=args.data_dir)
    if settings.redis_url is None:
        settings = settings.with_redis(f"unix://{settings.data_dir / 'redis.sock'}")
    return settings


def cmd_status(args: argparse.Namespace) -> int:
    from . import status

    return status.main(_status_settings(args), as_json=args.json, role=args.local)


def cmd_outbox(args: argparse.Namespace) -> int:
    from redis.exceptions import RedisError

    from storage import outbox
    from storage.scripts import Scripts

    from services.core import redis_for

    settings = _status_settings(args)

    async def run() -> Any:
        redis = redis_for(settings, max_connections=4)
        try:
            if args.action == "dead":
                return await outbox.dead_letters(redis, args.limit)
            return await outbox.requeue_dead(Scripts.register(redis), args.limit)
        finally:
            await redis.aclose()

    try:
        done = asyncio.run(run())
    except (RedisError, OSError) as exc:
        print(f"examwire: Redis unreachable at {settings.redis_where}: {type(exc).__name__}", file=sys.stderr)
        return 2
    if args.action == "dead":
        if args.json:
            print(json.dumps(done, indent=2))
        else:
            for row in done:
                print(f"{row['id']}  attempt {row['attempt']}  {row['reason']}")
            print(f"{len(done)} dead-lettered entr{'y' if len(done) == 1 else 'ies'}" + (" shown" if len(done) == args.limit else ""))
        return 0
    print(f"requeued {done} dead-lettered entr{'y' if done == 1 else 'ies'}; the next drain persists them")
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
    imp.add_argument("file", help="the exam's JSON file, or - for standard input")
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

    wrk = sub.add_parser("worker", help="run a Celery worker: persist results, sweep deadlines, analyse, export")
    wrk.add_argument("--beat", action="store_true", help="also run the beat scheduler in this process (one per deployment)")
    wrk.add_argument("--concurrency", type=int, default=None, help="worker processes (default: $EXAMWIRE_WORKER_CONCURRENCY or 1)")
    wrk.add_argument("--pool", default="prefork", choices=["prefork", "solo", "threads"])
    wrk.add_argument("--loglevel", default="WARNING")
    wrk.add_argument("--data-dir", default=None)
    wrk.set_defaults(func=cmd_worker)

    beat = sub.add_parser("beat", help="run the Celery beat scheduler (exactly one per deployment)")
    beat.add_argument("--loglevel", default="WARNING")
    beat.add_argument("--data-dir", default=None)
    beat.set_defaults(func=cmd_beat)

    exp = sub.add_parser("export", help="write an exam's persisted results as CSV; prints the file path")
    exp.add_argument("exam")
    exp.add_argument("--out-dir", default=None, help="default: <data dir>/exports")
    exp.add_argument("--data-dir", default=None)
    exp.set_defaults(func=cmd_export)

    st = sub.add_parser("status", help="the deployment's health; exit 0 ok, 1 degraded, 2 Redis unreachable")
    st.add_argument("--json", action="store_true", help="one JSON object instead of text")
    st.add_argument("--local", choices=["worker", "beat"], default=None,
                    help="check only this host's worker (answers a ping) or beat (fresh heartbeat): container health checks")  # fmt: skip
    st.add_argument("--data-dir", default=None)
    st.set_defaults(func=cmd_status)

    box = sub.add_parser("outbox", help="the results outbox's dead letters: list them, or requeue them after a fix")
    box.add_argument("action", choices=["dead", "retry-dead"])
    box.add_argument("--limit", type=int, default=1000, help="at most this many entries (default 1000)")
    box.add_argument("--json", action="store_true")
    box.add_argument("--data-dir", default=None)
    box.set_defaults(func=cmd_outbox)
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
