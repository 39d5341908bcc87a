"""A worker's heartbeat thread and Celery's forks.

The worker process starts its heartbeat thread in a bootstep and then forks
the embedded beat and the pool's children (and forks again whenever a child
is replaced). A child forked while that thread was importing a module (the
IDNA codec, which ``getaddrinfo`` loads the first time it resolves a name)
inherits the module's import lock held by a thread that does not exist in the
child, and hangs on its first ``getaddrinfo``: beat never scheduled a drain
(seen in CI behind Redis Sentinel). ``Heartbeat.start`` therefore beats once
on the caller's thread before the thread starts.

Real parts: a redis-server on a private TCP port, reached by the name
``localhost``; a fresh interpreter that has not resolved a name yet.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

from storage import keys
from tests.conftest import REPO_ROOT, require_tool
from testkit import clean_env
from testkit.redis_topology import RedisProcess, resp

CHILD = textwrap.dedent(
    """
    import os, sys
    from storage import health, keys
    assert "encodings.idna" not in sys.modules, "the codec was loaded before the heartbeat"
    beater = health.Heartbeat(health.sync_client(sys.argv[1]), keys.WORKERS, "w1", 30.0)
    beater.start()
    # what Celery does next: fork. The child resolves a name on its first connection.
    loaded = "encodings.idna" in sys.modules
    pid = os.fork()
    if pid == 0:
        import signal, socket
        signal.alarm(5)  # a child stuck on an inherited import lock dies of SIGALRM
        socket.getaddrinfo("localhost", 1)
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    print(loaded, os.waitstatus_to_exitcode(status))
    """
)


def test_the_first_heartbeat_is_written_before_the_thread_starts_so_a_fork_never_inherits_an_import(tmp_path):
    require_tool("redis-server", "apt-get install redis-server; .ci/run does")
    redis = RedisProcess(tmp_path).start()
    try:
        for _ in range(5):  # the race, when there is one, is lost more often than not; five rounds make it certain
            resp(redis.port, "DEL", keys.WORKERS)
            out = subprocess.run([sys.executable, "-c", CHILD, f"redis://localhost:{redis.port}/0"], cwd=REPO_ROOT,
                                 env=clean_env(), capture_output=True, text=True, timeout=60)  # fmt: skip
            assert out.returncode == 0, out.stderr
            loaded, child_exit = out.stdout.split()
            # start() returned with the heartbeat written and the codec loaded: the thread has nothing left to import
            assert loaded == "True" and child_exit == "0", out.stdout
            assert resp(redis.port, "ZRANGE", keys.WORKERS, 0, -1) == ["w1"]
    finally:
        redis.kill()
