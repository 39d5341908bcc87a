"""Deploy smoke: the compose topology, run as processes from a production install, used through nginx.

What runs (``tests/deploy/topology.py``; commands and environments come from
compose.yaml, the Dockerfile and deploy/nginx.conf themselves, only addresses
and ``${…}`` values substituted): redis-server with compose's AOF command line,
MongoDB (``EXAMWIRE_TEST_MONGODB_URL`` or an nx-27017 stand-in), two engine
nodes (the image's ``CMD``), nginx with the shipped config in front of them,
two ``examwire worker --concurrency 2`` and one ``examwire beat``; every
Examwire process from the ``pip install .`` venv.

Clients only ever talk to nginx. The phases:

1. an admin loads an exam; a candidate finishes it over the WebSocket while a
   proctor (also through nginx) sees its progress live and its final state;
2. the result reaches MongoDB and the CSV (HTTP through nginx, and
   ``examwire export``);
3. the node holding a candidate mid-exam is SIGKILLed, with one answer in
   flight; the candidate resumes through nginx, which meets the dead node and
   passes the upgrade on to the other one, with every acknowledged answer, and
   finishes;
4. 150 attempts end at once; a worker (its whole process group) is SIGKILLed
   while it holds outbox entries it has read and not acknowledged; every
   result reaches MongoDB exactly once and the outbox ends empty. Then
   compose's health checks, ``examwire status`` and ``/readyz`` say the rest of
   the deployment is healthy, and a `docker compose stop` (SIGTERM) ends each
   remaining process inside its ``stop_grace_period``.

Phase timings are printed (``pytest -s``): ``[deploy smoke] timings (s): …``.
Three consecutive runs on this machine (2 vCPUs, shared with other test runs;
nx-27017 as MongoDB; the production venv built by the fixture, ~13 s, is not
in these figures; pytest's wall time per run was 26-29 s with it), seconds:

    phase                                                 run 1   run 2   run 3
    topology start (all up, compose health checks pass)   3.74    5.01    4.50
    exam finish (phase 1: load, take, watch live)         1.05    1.07    1.05
    result in MongoDB + CSV + export (phase 2)            0.34    0.37    0.43
    failover resume (SIGKILL of the node -> welcome)      0.01    0.01    0.01
    failover phase (3, to the submit)                     0.03    0.04    0.04
    wave of 150 started through nginx                     0.59    0.62    0.69
    drain after worker kill (kill -> all stored, empty)   0.37    0.36    0.28
    drain after worker kill (submit -> same)              0.45    0.51    0.39
    health checks + status after the kills                2.73    2.79    2.73
    stop (SIGTERM) beat / worker / engine      0.11/1.82/0.21  0.12/2.37/0.27  0.11/2.03/0.17
    total                                                 11.62   13.70   12.68
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import csv
import http.client
import io
import json
import secrets
import signal
import socket
import subprocess
import threading
import time
import urllib.request
from typing import Any

import pytest
from websockets.exceptions import InvalidStatus

from storage import keys
from examwire.client import ExamClient, ProctorClient
from testkit import SAMPLE_EXAM, SAMPLE_MAX_SCORE, SAMPLE_RIGHT_ANSWERS, http_json, wait_until
from tests.conftest import require_tool

from . import topology
from .topology import json_events

EXAM_ID = "smoke"
WAVE = 150  # attempts ending at once in phase 4


def _timed(timings: dict[str, float], name: str, since: float) -> float:
    timings[name] = round(time.monotonic() - since, 2)
    return time.monotonic()


def _arun(coro: Any, timeout: float) -> Any:
    async def guarded() -> Any:
        return await asyncio.wait_for(coro, timeout)

    return asyncio.run(guarded())


def _http_text(url: str, token: str, timeout: float = 10) -> tuple[int, str]:
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        return resp.status, resp.read().decode()


def _holder(topo: topology.Topology, attempt: str, after: dict[str, int]) -> str | None:
    """The engine node whose log has a `connect` of ``attempt`` beyond the first ``after[node]`` ones."""
    found = None
    for name, proc in topo.nodes.items():
        events = [e for e in json_events(proc.log_path, "connect") if e.get("attempt") == attempt]
        if len(events) > after.get(name, 0):
            found = name
    return found


def _connects(topo: topology.Topology, attempt: str) -> dict[str, int]:
    return {n: sum(e.get("attempt") == attempt for e in json_events(p.log_path, "connect")) for n, p in topo.nodes.items()}


def _value(doc: dict[str, Any], qid: str) -> Any:
    return next((q.get("value") for q in doc.get("questions") or [] if q.get("id") == qid), None)


def _outbox(topo: topology.Topology) -> dict[str, int]:
    r = topo.redis()
    try:
        length = r.xlen(keys.OUTBOX)
        pending = r.xpending(keys.OUTBOX, keys.OUTBOX_GROUP)["pending"] if length or r.exists(keys.OUTBOX) else 0
        return {"length": length, "pending": int(pending), "dead": r.xlen(keys.OUTBOX_DEAD)}
    finally:
        r.close()


class PinnedClient(ExamClient):
    """An ``ExamClient`` whose next connection may use a given, already connected socket."""

    next_sock: socket.socket | None = None

    async def connect(self, url: str | None = None, **options: Any) -> None:
        sock, self.next_sock = self.next_sock, None
        if sock is not None:
            options["sock"] = sock
        await super().connect(url, **options)


def _socket_after(topo: topology.Topology, node: str) -> socket.socket:
    """A keep-alive connection to nginx whose last request was answered by ``node`` (its socket)."""
    want = json_events(topo.nodes[node].log_path, "node_started")[0]["node"]
    conn = http.client.HTTPConnection("127.0.0.1", topo.nginx_port, timeout=10)
    for _ in range(6):
        conn.request("GET", "/readyz")
        resp = conn.getresponse()
        body = json.loads(resp.read())
        assert resp.status == 200 and not resp.will_close, (resp.status, body)
        if body["node"] == want:
            sock, conn.sock = conn.sock, None
            return sock
    raise AssertionError(f"nginx never sent /readyz to {node} ({want}) over one keep-alive connection")


def _refused_upgrades(topo: topology.Topology, node: str) -> int:
    """nginx's `connect() failed` lines for exam sockets it tried to open to ``node``."""
    port = topo.node_ports[node]
    text = topo.nginx.log_path.read_text(errors="replace")
    return sum(
        "connect() failed" in line and f"/v1/exams/{EXAM_ID}/attempt" in line and f"127.0.0.1:{port}/" in line
        for line in text.splitlines()
    )


@pytest.mark.timeout(300)
def test_deploy_smoke(prod_venv, prod_env, spawn, tmp_path) -> None:
    require_tool("nginx", "apt-get install nginx; .ci/run does", path=topology.NGINX_PATH)
    t_all = time.monotonic()
    timings: dict[str, float] = {}
    topo = topology.start(
        prod_venv=prod_venv, prod_env=prod_env, spawn=spawn, tmp=tmp_path,
        jwt_secret=secrets.token_urlsafe(48), secret=secrets.token_urlsafe(48),
    )  # fmt: skip
    mark = _timed(timings, "topology start", t_all)
    print(f"\n[deploy smoke] topology up: {topo.timings}; argv: {topo.argv}")
    try:
        _phases(topo, timings, mark, tmp_path, prod_venv, prod_env)
    except BaseException:
        print(topo.logs())
        raise
    finally:
        timings["total"] = round(time.monotonic() - t_all, 2)
        print(f"[deploy smoke] timings (s): {timings}")
        if not topo.on_stand_in:  # a database of our own on the given server
            with topo.mongo() as client:
                client.drop_database(topo.mongo_db)


def _phases(topo: topology.Topology, timings: dict[str, float], mark: float, tmp_path, prod_venv, prod_env) -> None:
    mongo = topo.mongo()
    results = mongo[topo.mongo_db]["results"]
    origin = {"Origin": topo.origin}
    attempt_url = f"{topo.ws_url}/v1/exams/{EXAM_ID}/attempt"
    proctor_url = f"{topo.ws_url}/v1/exams/{EXAM_ID}/proctor"
    admin = topo.token("smoke-admin", "admin")
    proctor = topo.token("smoke-proctor", "proctor", exams=[EXAM_ID], name="Smoke Proctor")
    exam = {**SAMPLE_EXAM, "id": EXAM_ID}

    status, ready = http_json("GET", f"{topo.base_url}/readyz")  # through nginx: a node, Redis, the store, the workers
    assert status == 200 and ready["store"] is True and ready["persistence"] == "ok", ready

    # ------------------------------------------------ 1. load, finish, watch live
    status, body = http_json("PUT", f"{topo.base_url}/v1/exams/{EXAM_ID}", token=admin, body=exam)
    assert status == 200 and body["version"] == 1, (status, body)
    # a browser page of another origin may not open exam sockets through the proxy
    foreign = ExamClient(attempt_url, topo.token("intruder", exams=[EXAM_ID]), headers={"Origin": "http://evil.example"})
    with pytest.raises(InvalidStatus) as refused:
        _arun(foreign.connect(), 15)
    assert refused.value.response.status_code == 403
    # the pages a browser loads come through the proxy too, with their types and policy
    for path, kind in ((f"/exam/{EXAM_ID}", "text/html"), ("/proctor", "text/html"), ("/static/exam/main.js", "text/javascript")):
        with urllib.request.urlopen(f"{topo.base_url}{path}", timeout=10) as page:
            assert page.status == 200 and page.headers["Content-Type"].startswith(kind), (path, page.headers)
            assert "connect-src 'self'" in page.headers["Content-Security-Policy"], (path, page.headers)

    async def finish_watched() -> tuple[str, dict[str, Any], list[dict[str, Any]]]:
        p = ProctorClient(proctor_url, proctor, headers=origin, reply_timeout=10)
        await p.connect()
        pw = await p.hello()
        assert pw["exam"]["id"] == EXAM_ID and pw["exam"]["total"] == len(exam["questions"]), pw
        snapshot = await p.wait_for("snapshot", 10)
        assert snapshot["attempts"] == [], snapshot

        c = ExamClient(attempt_url, topo.token("cand-ada", exams=[EXAM_ID], name="Ada Lovelace"), headers=origin, reply_timeout=10)
        await c.connect()
        welcome = await c.hello()
        aid = welcome["attempt"]

        def on(**want: Any):
            return lambda m: m.get("attempt") == aid and all(m.get(k) == v for k, v in want.items())

        row = await p.wait_for("update", 5, pred=on(connected=True))
        assert (row["user"], row["name"], row["state"], row["answered"]) == ("cand-ada", "Ada Lovelace", "ready", 0), row
        assert (await c.start())["t"] == "ack"
        await p.wait_for("update", 5, pred=on(state="active"))
        for n, (qid, value) in enumerate(SAMPLE_RIGHT_ANSWERS.items(), 1):
            assert (await c.answer(qid, value))["t"] == "ack"
            if n == 1:  # live: the first answer shows before the candidate goes on
                await p.wait_for("update", 5, pred=lambda m: m.get("attempt") == aid and m.get("answered", 0) >= 1)
        await p.wait_for("update", 5, pred=on(answered=len(SAMPLE_RIGHT_ANSWERS)))
        assert (await c.submit())["t"] == "ack"
        result = await c.wait_for("result", 10)
        assert result["score"] == SAMPLE_MAX_SCORE and result["passed"] is True, result
        final = await p.wait_for("update", 5, pred=lambda m: m.get("attempt") == aid and m.get("state") == "submitted")
        updates = [m for m in p.pushes if m.get("t") == "update" and m.get("attempt") == aid]
        await c.close()
        await p.close()
        return aid, final, updates

    aid1, final_row, updates = _arun(finish_watched(), 60)
    assert final_row["score"] == SAMPLE_MAX_SCORE, final_row
    mark = _timed(timings, "exam finish (phase 1)", mark)
    answered_seen = sorted({u["answered"] for u in updates if "answered" in u})
    assert answered_seen[0] < len(SAMPLE_RIGHT_ANSWERS) and answered_seen[-1] == len(SAMPLE_RIGHT_ANSWERS), answered_seen

    # ------------------------------------------------ 2. the result in MongoDB and in the CSV
    doc = wait_until(lambda: results.find_one({"attempt": aid1}), 20, lambda: "the result in MongoDB\n" + topo.logs())
    assert (doc["exam"], doc["user"], doc["state"], doc["score"], doc["passed"]) == (EXAM_ID, "cand-ada", "submitted", SAMPLE_MAX_SCORE, True), doc
    assert {q["id"]: q["value"] for q in doc["questions"]} == SAMPLE_RIGHT_ANSWERS, doc["questions"]

    status, text = _http_text(f"{topo.base_url}/v1/exams/{EXAM_ID}/results?format=csv", proctor)
    table = list(csv.DictReader(io.StringIO(text)))
    assert status == 200 and [(r["attempt"], r["user"], r["state"]) for r in table] == [(aid1, "cand-ada", "submitted")], text
    assert float(table[0]["score"]) == SAMPLE_MAX_SCORE, table
    assert sum(float(table[0][f"q:{qid}"]) for qid in SAMPLE_RIGHT_ANSWERS) == SAMPLE_MAX_SCORE, table

    # `examwire export` from the production venv, as `docker compose exec worker examwire export …` runs it
    export_env = prod_env(**topo.env["worker"], EXAMWIRE_DATA_DIR=str(tmp_path / "export-data"))
    exported = subprocess.run([str(prod_venv.bin / "examwire"), "export", EXAM_ID, "--out-dir", str(tmp_path / "exports")],
                              env=export_env, cwd=tmp_path, capture_output=True, text=True, timeout=60)  # fmt: skip
    assert exported.returncode == 0, exported.stderr
    with open(exported.stdout.strip(), newline="") as fh:
        assert [r["attempt"] for r in csv.DictReader(fh)] == [aid1]
    mark = _timed(timings, "result in MongoDB + CSV + export (phase 2)", mark)

    # ------------------------------------------------ 3. SIGKILL the node holding a candidate; resume through nginx
    answers = list(SAMPLE_RIGHT_ANSWERS.items())
    killed: dict[str, Any] = {}

    async def failover() -> tuple[str, dict[str, Any], float]:
        c = PinnedClient(attempt_url, topo.token("cand-grace", exams=[EXAM_ID], name="Grace Hopper"), headers=origin, reply_timeout=10)
        await c.connect()
        aid = (await c.hello())["attempt"]
        holder = await asyncio.to_thread(wait_until, lambda: _holder(topo, aid, {}), 5, "the node's connect event")
        survivor = next(n for n in topo.nodes if n != holder)
        assert (await c.start())["t"] == "ack"
        for qid, value in answers[:3]:
            assert (await c.answer(qid, value))["t"] == "ack"
        acked = {qid: value for qid, value in answers[:3]}
        before = _connects(topo, aid)
        # The resume must meet the dead node in nginx and be passed on (proxy_next_upstream):
        # nginx balances round robin per worker process, so the resume goes over a keep-alive
        # connection (one nginx worker) whose last request went to the survivor: that worker's
        # next pick is the node about to die. No other request goes through nginx until then.
        sock = await asyncio.to_thread(_socket_after, topo, survivor)
        refused_before = _refused_upgrades(topo, holder)
        # one more answer in flight (sent, no ack yet) when the node dies
        in_flight = await c.send_request("answer", q=answers[3][0], value=answers[3][1])
        topo.nodes[holder].kill()  # SIGKILL, no goodbye to anyone
        killed["name"] = holder
        t_kill = time.monotonic()
        await asyncio.wait_for(c.closed.wait(), 10)

        in_flight_at_kill = in_flight in c.pending  # (its ack may have beaten the SIGKILL, rarely)
        killed["in_flight_at_kill"] = in_flight_at_kill
        c.next_sock = sock
        welcome, replies = await c.resume(attempt_url)  # the same URL, through nginx
        resumed_in = time.monotonic() - t_kill
        assert welcome["state"] == "active", welcome
        for qid, value in acked.items():  # every acknowledged answer survived the node
            assert welcome["answers"].get(qid) == value, (qid, welcome["answers"])
        assert welcome["last_id"] >= 1 + len(acked), welcome
        if in_flight_at_kill:  # resent with its id: applied now, or acknowledged as a duplicate if it had been
            assert [(r["t"], r["id"]) for r in replies] == [("ack", in_flight)], replies
        else:
            assert replies == [] and c.replies[in_flight]["t"] == "ack", (replies, c.replies.get(in_flight))
        now_on = await asyncio.to_thread(wait_until, lambda: _holder(topo, aid, before), 5, "the resumed connect event")
        assert now_on == survivor, (holder, now_on)
        # nginx did try the dead node for this very upgrade, and passed it on
        assert _refused_upgrades(topo, holder) == refused_before + 1, topo.nginx.log()

        status, body = await asyncio.to_thread(http_json, "GET", f"{topo.base_url}/v1/attempts/{aid}", token=c.token)
        assert status == 200 and body["state"] == "active", body
        saved = {q["id"]: q["value"] for q in body["questions"]}
        assert saved == {**acked, answers[3][0]: answers[3][1]}, saved

        for qid, value in answers[4:]:
            assert (await c.answer(qid, value))["t"] == "ack"
        assert (await c.submit())["t"] == "ack"
        result = await c.wait_for("result", 10)
        assert result["score"] == SAMPLE_MAX_SCORE, result
        await c.close()
        return aid, body, resumed_in

    aid2, _, resumed_in = _arun(failover(), 60)
    print(f"[deploy smoke] node kill: {killed}")
    timings["failover resume (kill -> welcome)"] = round(resumed_in, 2)
    mark = _timed(timings, "failover phase", mark)
    survivor = next(n for n in topo.nodes if n != killed["name"])
    assert topo.nodes[survivor].alive(), topo.nodes[survivor].log()

    # ------------------------------------------------ 4. 150 attempts end at once; SIGKILL a worker mid-drain
    r = topo.redis()
    kill_note: dict[str, Any] = {}

    stop = threading.Event()

    def kill_mid_drain(wave_ids: list[str], before: int) -> None:
        """Once some but not all of the wave are in MongoDB, SIGKILL a worker holding outbox entries it has not acknowledged.

        Polled tightly (the stand-in writes a batch in a few ms): Redis first, then the store's
        document count (the ``count`` command, cheap; the collection holds this exam only).
        """
        while not stop.is_set():
            holders = [c for c in r.xinfo_consumers(keys.OUTBOX, keys.OUTBOX_GROUP) if int(c["pending"]) > 0] if r.exists(keys.OUTBOX) else []
            stored = results.estimated_document_count() - before
            if stored >= WAVE:
                kill_note["missed"] = True
                return
            if not (holders and 0 < stored < WAVE):
                time.sleep(0.002)
                continue
            pids = topology.worker_pids(topo)
            for consumer in holders:
                worker = pids.get(int(consumer["name"].rsplit(":", 1)[1]))
                if worker is None:
                    continue
                # Freeze the worker (its whole group) for the moment it takes to see what it holds,
                # so that the SIGKILL lands while it holds entries it has read and not acknowledged
                # (it may have acked them since XINFO CONSUMERS); if it holds none now, let it go on.
                # The pause lets Redis run whatever the worker had already sent (an XACK in flight);
                # it is far below the 300 ms after which live workers claim a consumer's entries.
                worker.signal(signal.SIGSTOP)
                try:
                    time.sleep(0.03)
                    held = r.xpending_range(keys.OUTBOX, keys.OUTBOX_GROUP, min="-", max="+", count=1000, consumername=consumer["name"])
                    if held:
                        worker.kill()  # SIGKILL of the worker's process group: its parent and pool processes
                finally:
                    worker.signal(signal.SIGCONT)  # (a no-op on the dead)
                if not held:
                    continue
                kill_note.update(worker=worker.name, consumer=consumer["name"], stored_before=stored, at=time.monotonic())
                ids = [h["message_id"] for h in held]
                still = r.xpending_range(keys.OUTBOX, keys.OUTBOX_GROUP, min="-", max="+", count=1000, consumername=consumer["name"])
                attempts = [e[0][1]["attempt"] for e in (r.xrange(keys.OUTBOX, i, i) for i in ids) if e]
                kill_note["held"] = len(held)  # read by the dead worker, never acknowledged
                kill_note["held_after_kill"] = len([h for h in still if h["message_id"] in ids])
                kill_note["held_not_yet_written"] = len(attempts) - results.count_documents({"attempt": {"$in": attempts}})
                return
            time.sleep(0.002)

    async def wave() -> tuple[list[str], float, threading.Thread]:
        sem = asyncio.Semaphore(50)

        async def one(i: int) -> ExamClient:
            async with sem:
                c = ExamClient(attempt_url, topo.token(f"wave-{i:03d}", exams=[EXAM_ID]), headers=origin, reply_timeout=20)
                await c.connect()
                await c.hello()
                assert (await c.start())["t"] == "ack"
                assert (await c.answer("q1", SAMPLE_RIGHT_ANSWERS["q1"]))["t"] == "ack"
                return c

        clients = list(await asyncio.gather(*(one(i) for i in range(WAVE))))
        ids = [c.welcome["attempt"] for c in clients]
        assert len(set(ids)) == WAVE
        _timed(timings, f"wave of {WAVE} started", mark)
        killer = threading.Thread(target=kill_mid_drain, args=(ids, before), daemon=True)
        killer.start()
        t_submit = time.monotonic()
        acks = await asyncio.gather(*(c.submit() for c in clients))  # all at once
        assert all(a["t"] == "ack" for a in acks), [a for a in acks if a["t"] != "ack"][:3]
        await asyncio.gather(*(c.close() for c in clients))
        return ids, t_submit, killer

    # the failed-over attempt is stored too; then the collection holds the 2 attempts of phases 1 and 3
    doc2 = wait_until(lambda: results.find_one({"attempt": aid2}), 20, "the failed-over attempt in MongoDB")
    assert (doc2["state"], doc2["score"], {q["id"]: q["value"] for q in doc2["questions"]}) == ("submitted", SAMPLE_MAX_SCORE, SAMPLE_RIGHT_ANSWERS)
    before = results.estimated_document_count()
    assert before == 2, before
    wave_ids, t_submit, killer = _arun(wave(), 120)
    killer.join(30)
    stop.set()
    print(f"[deploy smoke] worker kill: {kill_note}")
    assert "worker" in kill_note, f"no worker was caught mid-drain: {kill_note}"
    # the dead worker died holding entries it had read and not acknowledged: either not yet
    # written (others must claim and write them) or written (they are written again, stored once)
    assert kill_note["held"] > 0 and kill_note["held_after_kill"] == kill_note["held"], kill_note

    everyone = set(wave_ids) | {aid1, aid2}

    def all_stored() -> bool:
        return len({d["attempt"] for d in results.find({"exam": EXAM_ID}, {"attempt": 1, "_id": 0})}) >= len(everyone)

    wait_until(all_stored, 60, lambda: f"all {len(everyone)} results in MongoDB; outbox {_outbox(topo)}\n{topo.logs()}", every=0.02)
    wait_until(lambda: _outbox(topo) == {"length": 0, "pending": 0, "dead": 0}, 20, lambda: f"an empty outbox: {_outbox(topo)}", every=0.02)
    timings["drain after worker kill (kill -> all stored, outbox empty)"] = round(time.monotonic() - kill_note["at"], 2)
    timings["drain after worker kill (submit -> all stored, outbox empty)"] = round(time.monotonic() - t_submit, 2)
    time.sleep(0.5)  # a late duplicate write would show now
    counts = collections.Counter(d["attempt"] for d in results.find({"exam": EXAM_ID}, {"attempt": 1, "_id": 0}))
    doubled = {a: n for a, n in counts.items() if n > 1}
    assert not doubled, f"results stored more than once: {doubled}"
    assert set(counts) == everyone, f"missing: {everyone - set(counts)}; unexpected: {set(counts) - everyone}"
    wave_docs = [d for d in results.find({"exam": EXAM_ID}) if d["user"].startswith("wave-")]
    states = collections.Counter((d["state"], d["score"], _value(d, "q1")) for d in wave_docs)
    assert states == {("submitted", 1, SAMPLE_RIGHT_ANSWERS["q1"]): WAVE}, states
    assert _outbox(topo) == {"length": 0, "pending": 0, "dead": 0}
    mark = _timed(timings, "drain phase", mark)

    # the rest of the deployment lived through it all, and says so
    alive = [topo.nodes[survivor], topo.nginx, topo.beat, *[w for w in topo.workers if w.name != kill_note["worker"]]]
    assert all(p.alive() for p in alive), [p for p in alive if not p.alive()]
    for p in alive:
        assert "Traceback" not in p.log_path.read_text(errors="replace"), p.log(120)
    with concurrent.futures.ThreadPoolExecutor(2) as pool:  # each waits out Celery ping timeouts: side by side
        checking, reporting = pool.submit(topology.healthchecks, topo), pool.submit(topology.status, topo)
        checks, (code, report) = checking.result(), reporting.result()
    # compose's health checks, of the processes still running
    assert set(checks) == {survivor, *(w.name for w in topo.workers if w.alive()), "beat"}, checks
    assert all(code == 0 for code, _ in checks.values()), checks
    print(f"[deploy smoke] examwire status after the kills: {code} {json.dumps(report)}")
    assert code == 0 and report["status"] == "ok" and not report["problems"], report
    assert report["redis"]["aof"] is True and report["results_store"] == {"kind": "MongoDB", "reachable": True, "error": None}, report
    assert (report["outbox"], report["pending"], report["dead_letters"]) == (0, 0, 0), report
    assert len(report["workers"]["answered_ping"]) == 1 and report["beat"]["holder"], report  # the survivor; the one beat
    status, ready = http_json("GET", f"{topo.base_url}/readyz")
    assert status == 200 and ready["persistence"] == "ok" and ready["store"] is True, ready
    mark = _timed(timings, "health checks + status after the kills", mark)

    # `docker compose stop`: SIGTERM, each inside its service's stop_grace_period (not SIGKILLed);
    # the beat gives its lock up, so a restarted beat schedules at once
    for proc in [topo.beat, *(w for w in topo.workers if w.alive()), topo.nodes[survivor]]:
        grace = topology.stop_grace_s(topo, proc.name)
        t0 = time.monotonic()
        code = proc.stop(grace)
        took = time.monotonic() - t0
        timings[f"stop {proc.name}"] = round(took, 2)
        assert code is not None and code >= 0 and took < grace, f"{proc.name}: exit {code} after {took:.1f} s (grace {grace} s)\n{proc.log()}"
    assert not r.exists(keys.BEAT_LOCK), "the stopped beat kept its lock"
    r.close()
    mongo.close()
