"""Outbox drain throughput into each results store: ``python -m loadtests.drain_bench [N]``.

Fills the outbox with N final records through ``commit.lua`` (a private
redis-server), then times one ``Outbox.drain`` into SQLite and into MongoDB
(``EXAMWIRE_TEST_MONGODB_URL`` when set, else an ``nx-27017`` stand-in), in
one run, and writes the figures to ``drain-bench.txt``.
"""

import asyncio, sys, time, tempfile, subprocess, socket, os
import engine
from services.core import connect_redis
from examwire.redis_server import EmbeddedRedis
from storage.attempts import RedisAttempts, attempt_id
from storage.outbox import Outbox
from storage.scripts import Scripts
from storage.sqlite_results import SqliteResults
from storage.mongo_results import MongoResults
from testkit import SAMPLE_EXAM, SAMPLE_RIGHT_ANSWERS

N = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
EXAM = engine.parse_exam(SAMPLE_EXAM, version=1)


async def fill(url):
    r = connect_redis(url, max_connections=16)
    att = RedisAttempts(r, Scripts.register(r))
    for i in range(N):
        aid = attempt_id(b"s" * 32, EXAM.id, f"u{i}")
        await att.create(
            engine.new_attempt(
                id=aid, exam=EXAM, user=f"u{i}", name="x", seed="00" * 16, now=1
            )
        )
        snap = await att.load(aid)
        a = engine.apply(snap.attempt, EXAM, engine.Start(1), now=2, grace_ms=0).attempt
        for j, (q, v) in enumerate(SAMPLE_RIGHT_ANSWERS.items()):
            a = engine.apply(
                a, EXAM, engine.Answer(2 + j, q, v), now=3, grace_ms=0
            ).attempt
        out = engine.apply(a, EXAM, engine.Submit(50), now=4, grace_ms=0)
        await att.commit(snap, out.attempt, result=out.attempt.result.to_wire())
    await r.aclose()


async def drain(url, store):
    r = connect_redis(url, max_connections=16)
    s = Scripts.register(r)
    await store.open()
    box = Outbox(r, s, store, consumer="bench")
    t0 = time.perf_counter()
    st = await box.drain(budget_s=600)
    dt = time.perf_counter() - t0
    await store.close()
    await r.aclose()
    return st.written, dt


d = tempfile.mkdtemp()
srv = EmbeddedRedis(d, appendonly=False)
url = srv.start()
s = socket.socket()
s.bind(("127.0.0.1", 0))
port = s.getsockname()[1]
s.close()
mongo_url = os.environ.get("EXAMWIRE_TEST_MONGODB_URL")
nx = (
    None
    if mongo_url
    else subprocess.Popen(
        [
            "nx-27017",
            "--data-dir",
            d + "/nx",
            "-p",
            str(port),
            "--log-file",
            d + "/nx.log",
            "--pid-file",
            d + "/nx.pid",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
)
mongo_url = mongo_url or f"mongodb://127.0.0.1:{port}/?directConnection=true"
time.sleep(1.5)
try:
    lines = []
    for name, make in [
        ("sqlite", lambda: SqliteResults(d + "/r.db")),
        (
            "mongodb" if nx is None else "mongodb (nx-27017 stand-in)",
            lambda: MongoResults(mongo_url, database=f"bench{os.getpid()}"),
        ),
    ]:
        import redis

        redis.Redis.from_url(url).flushall()
        t0 = time.perf_counter()
        asyncio.run(fill(url))
        fill_s = time.perf_counter() - t0
        w, dt = asyncio.run(drain(url, make()))
        lines.append(
            f"{name}: {w} records drained in {dt:.2f} s = {w / dt:.0f} records/s (filled by {N / fill_s:.0f} attempts/s created, answered and submitted one after another)"
        )
    text = (
        f"outbox drain, N={N}, {time.strftime('%Y-%m-%d %H:%M')}\n"
        + "\n".join(lines)
        + "\n"
    )
    print(text, end="")
    with open("drain-bench.txt", "a") as fh:
        fh.write(text)
finally:
    if nx is not None:
        nx.terminate()
    srv.stop()
