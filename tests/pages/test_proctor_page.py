"""The live proctor dashboard (``GET /proctor``) in a real Chromium against real engine nodes.

Two nodes A and B share one Redis: the page is served by (and connected to)
node A, candidates (``ExamClient``) work on node B, so every row change the
page shows has crossed nodes. Playwright's async API keeps the page and the
candidates in one event loop; waits poll (``expect``), they do not sleep.

Screenshots go to ``test-artifacts/pages/``.
"""

from __future__ import annotations

import asyncio
import re
import sys
from pathlib import Path
from typing import Any

import testkit
from tests.pages.page_checks import contrast
from examwire.client import ExamClient, attempt_url
from tests.e2e.conftest import make_exam, right

EXAM_ID = "pg1"
TOKEN_KEY = "examwire.proctor.token"
NO_RECONNECT_WATCH_S = 3.0


# ---------------------------------------------------------------- helpers
def page_url(node: Any, fragment: str = "") -> str:
    return f"{node.base_url}/proctor" + (f"#{fragment}" if fragment else "")


def candidate(node: Any, token: str, exam_id: str = EXAM_ID) -> ExamClient:
    return ExamClient(attempt_url(node.ws_url, exam_id), token)


def row_of(page: Any, attempt: str) -> Any:
    return page.locator(f'tr[data-attempt="{attempt}"]')


def cell(row: Any, col: str) -> Any:
    return row.locator(f'[data-col="{col}"]')


def seconds_of(text: str) -> int:
    """``mm:ss`` or ``h:mm:ss`` -> seconds."""
    parts = [int(p) for p in text.strip().split(":")]
    assert len(parts) in (2, 3), text
    total = 0
    for p in parts:
        total = total * 60 + p
    return total


def answered_re(n: int, total: int = 6) -> re.Pattern[str]:
    return re.compile(rf"^\s*{n}\s*/\s*{total}\s*$")


def setup_exam(make_node: Any, put_exam: Any) -> tuple[Any, Any, dict[str, Any]]:
    """Nodes A and B on one Redis, exam ``pg1`` (6 questions, fixed order, 10 minutes) loaded."""
    node_a, node_b = make_node(), make_node()
    exam = make_exam(EXAM_ID, 6, shuffle_questions=False)
    put_exam(node_a, exam)
    return node_a, node_b, exam


async def open_live(page: Any, node: Any, proctor_token: str, expect: Any, exam_id: str = EXAM_ID) -> None:
    """Load the dashboard with the token in the fragment and wait until the table is live."""
    await page.goto(page_url(node, f"token={proctor_token}&exam={exam_id}"))
    await expect(page.locator("#conn-status")).to_have_attribute("data-state", "live", timeout=5000)


async def join(node: Any, token: str, *, start: bool = False) -> tuple[ExamClient, dict[str, Any]]:
    """A candidate connected (and, with ``start``, started: the first batch received).

    ``welcome["deadline"]`` is set to the start ``ack``'s deadline when started.
    """
    client = candidate(node, token)
    await client.connect()
    welcome = await client.hello()
    if start:
        ack = await client.start()
        assert ack["t"] == "ack" and isinstance(ack.get("deadline"), int), ack
        welcome = {**welcome, "deadline": ack["deadline"]}
        await client.wait_for("batch", 5)
    return client, welcome


async def stays_refused(page: Any, probe: Any, seconds: float = NO_RECONNECT_WATCH_S) -> None:
    """The status stays ``error`` and the page opens no further WebSocket for ``seconds``."""
    sockets = len(probe.websockets)
    end = asyncio.get_running_loop().time() + seconds
    while asyncio.get_running_loop().time() < end:
        state = await page.locator("#conn-status").get_attribute("data-state")
        assert state == "error", f"status left 'error' for {state!r}: the page retries a refused token"
        await asyncio.sleep(0.2)
    assert len(probe.websockets) == sockets, f"the page kept reconnecting: {probe.websockets}"


# ---------------------------------------------------------------- (a) live rows across nodes
def test_live_row_follows_candidate_on_other_node(make_node, put_exam, make_token, arun, launch_browser,
                                                  watch_page, expect, shoot):
    node_a, node_b, exam = setup_exam(make_node, put_exam)
    proctor = make_token("proc-1", "proctor", name="Pat Proctor", exams=[EXAM_ID])
    questions = exam["questions"]

    async def body() -> None:
        async with launch_browser() as context:
            page = await context.new_page()
            probe = watch_page(page)
            await open_live(page, node_a, proctor, expect)

            # the token left the address bar but survives a reload (sessionStorage)
            assert "token" not in page.url and proctor not in page.url, page.url
            assert await page.evaluate(f"sessionStorage.getItem({TOKEN_KEY!r})") == proctor
            await page.reload()
            await expect(page.locator("#conn-status")).to_have_attribute("data-state", "live", timeout=5000)
            await expect(page.locator("#exam-title")).to_have_text(exam["title"])
            await expect(page.locator("#exam")).to_have_value(EXAM_ID)
            assert "token" not in page.url

            client, welcome = await join(node_b, make_token("cand-1", name="Ada Lovelace"))
            row = row_of(page, welcome["attempt"])
            await expect(row).to_be_visible(timeout=2000)
            await expect(cell(row, "name")).to_contain_text("Ada Lovelace")
            await expect(cell(row, "name")).to_contain_text("cand-1")
            await expect(cell(row, "connected")).to_have_text(re.compile(r"\byes\b"))
            await expect(cell(row, "answered")).to_have_text(answered_re(0))
            await expect(cell(row, "state")).to_contain_text("not started")
            await expect(page.locator("#count-total")).to_have_text("1")
            await expect(page.locator("#count-connected")).to_have_text("1")

            ack = await client.start()
            assert ack["t"] == "ack", ack
            await expect(cell(row, "state")).to_contain_text("active", timeout=1000)
            await expect(cell(row, "left")).to_have_text(re.compile(r"^\s*(10:00|09:[0-5]\d)\s*$"))
            await expect(page.locator("#count-active")).to_have_text("1")
            await client.wait_for("batch", 5)

            for n, q in enumerate(questions[:2], start=1):
                ack = await client.answer(q["id"], right(q))
                assert ack["t"] == "ack", ack
                await expect(cell(row, "answered")).to_have_text(answered_re(n), timeout=1000)

            await client.flag(questions[2]["id"])
            await client.goto(2)
            await expect(cell(row, "flagged")).to_have_text("1")
            await expect(cell(row, "question")).to_have_text("3")
            await shoot(page, "proctor-live.png")

            await client.abort()
            await expect(cell(row, "connected")).to_have_text(re.compile(r"\bno\b"), timeout=5000)
            await expect(page.locator("#count-connected")).to_have_text("0")

            # sign out forgets the token: the sign-in form comes back, also after a reload
            await page.locator("#sign-out").click()
            await expect(page.locator("#signin")).to_be_visible()
            await expect(page.locator("#live")).to_be_hidden()
            assert await page.evaluate(f"sessionStorage.getItem({TOKEN_KEY!r})") is None
            await page.reload()
            await expect(page.locator("#signin")).to_be_visible()
            await expect(page.locator("#token")).to_be_empty()
            probe.assert_clean()

    arun(body(), timeout=90)


# ---------------------------------------------------------------- (b) extend from the row
def test_extend_from_row_moves_the_candidates_deadline(make_node, put_exam, make_token, arun, launch_browser,
                                                       watch_page, expect, shoot):
    node_a, node_b, _ = setup_exam(make_node, put_exam)
    proctor = make_token("proc-1", "proctor", exams=[EXAM_ID])

    async def body() -> None:
        async with launch_browser() as context:
            page = await context.new_page()
            probe = watch_page(page)
            await open_live(page, node_a, proctor, expect)

            client = candidate(node_b, make_token("cand-2", name="Grace Hopper"))
            await client.connect()
            welcome = await client.hello()
            ack = await client.start()
            assert ack["t"] == "ack" and isinstance(ack.get("deadline"), int), ack
            deadline0 = ack["deadline"]

            row = row_of(page, welcome["attempt"])
            left = cell(row, "left")
            await expect(cell(row, "state")).to_contain_text("active")
            await expect(left).to_have_text(re.compile(r"^\s*(10:00|09:[0-5]\d)\s*$"))
            before = seconds_of(await left.inner_text())

            mark = client.mark()
            await row.locator('[data-action="extend"]').click()
            dialog = page.locator("#extend-dialog")
            await expect(dialog).to_be_visible()
            await expect(page.locator("#extend-minutes")).to_have_value("5")
            await expect(page.locator("#extend-minutes")).to_be_focused()
            await page.locator("#extend-minutes").fill("10")
            await page.locator("#extend-confirm").click()
            await expect(dialog).to_be_hidden()

            push = await client.wait_for("time", 3, since=mark, pred=lambda m: m.get("deadline") != deadline0)
            assert push["deadline"] - deadline0 == 600_000, (push, deadline0)

            await expect(page.locator("#status")).to_contain_text("Extended Grace Hopper by 10 min")
            await expect(left).to_have_text(re.compile(r"^\s*(20:00|19:[0-5]\d)\s*$"))
            after = seconds_of(await left.inner_text())
            assert after >= before + 590, (before, after)
            # focus went back to the button that opened the dialog
            await expect(row.locator('[data-action="extend"]')).to_be_focused()
            await shoot(page, "proctor-after-extend.png")
            probe.assert_clean()
            await client.close()

    arun(body(), timeout=60)


# ---------------------------------------------------------------- pause, resume, message, terminate, feed
def test_row_actions_and_event_feed(make_node, put_exam, make_token, arun, launch_browser, watch_page, expect, shoot):
    node_a, node_b, _ = setup_exam(make_node, put_exam)
    proctor = make_token("proc-1", "proctor")
    hostile = '<img src=x id=pwned onerror="document.title=1">Eve & <b>co</b>'

    async def body() -> None:
        async with launch_browser() as context:
            page = await context.new_page()
            probe = watch_page(page)
            await open_live(page, node_a, proctor, expect)

            client, welcome = await join(node_b, make_token("cand-3", name=hostile), start=True)
            row = row_of(page, welcome["attempt"])
            await expect(cell(row, "state")).to_contain_text("active")
            # untrusted text is text, never markup
            await expect(cell(row, "name")).to_contain_text(hostile)
            assert await page.locator("#pwned").count() == 0
            assert await row.locator("b").count() == 0

            # a candidate event: counted, highlighted, and listed newest first in the feed
            detail = {"away_ms": 4200, "html": "<img src=x id=pwned2>", "long": "x" * 300}
            ack = await client.event("blur", detail)
            assert ack["t"] == "ack", ack
            await expect(cell(row, "events")).to_have_text("1")
            await expect(row).to_have_class(re.compile(r"\bflash\b"))
            first = page.locator("#feed li").first
            await expect(first).to_contain_text("blur")
            await expect(first).to_contain_text(hostile)
            await expect(first.locator(".feed__detail")).to_contain_text('"away_ms":4200')
            detail_text = await first.locator(".feed__detail").inner_text()
            assert len(detail_text) <= 120 and detail_text.endswith("…"), detail_text
            assert await page.locator("#pwned2").count() == 0
            await expect(first.locator("time")).to_have_text(re.compile(r"^\d\d:\d\d:\d\d$"))
            await client.event("copy", None)
            await expect(page.locator("#feed li").first).to_contain_text("copy")
            await expect(page.locator("#feed li")).to_have_count(2)
            await expect(cell(row, "events")).to_have_text("2")

            # pause: the candidate is told, the row switches its button to Resume
            mark = client.mark()
            await expect(row.locator('[data-action="resume"]')).to_be_hidden()
            await row.locator('[data-action="pause"]').click()
            await client.wait_for("state", 3, since=mark, pred=lambda m: m.get("state") == "paused")
            await expect(cell(row, "state")).to_contain_text("paused")
            await expect(row.locator('[data-action="pause"]')).to_be_hidden()
            await expect(row.locator('[data-action="resume"]')).to_be_enabled()
            await expect(page.locator("#status")).to_contain_text("Paused")
            await expect(page.locator("#count-paused")).to_have_text("1")
            frozen = await cell(row, "left").inner_text()
            await shoot(page, "proctor-paused.png")

            mark = client.mark()
            await row.locator('[data-action="resume"]').click()
            await client.wait_for("state", 3, since=mark, pred=lambda m: m.get("state") == "active")
            await expect(cell(row, "state")).to_contain_text("active")
            await expect(page.locator("#status")).to_contain_text("Resumed")
            assert seconds_of(frozen) > 0

            # message
            mark = client.mark()
            await row.locator('[data-action="message"]').click()
            await expect(page.locator("#message-dialog")).to_be_visible()
            await page.locator("#message-text").fill("Please keep your face in view of the camera.")
            await page.locator("#message-confirm").click()
            notice = await client.wait_for("notice", 3, since=mark)
            assert notice["text"] == "Please keep your face in view of the camera.", notice
            await expect(page.locator("#status")).to_contain_text("Message delivered")

            # terminate needs a reason; Cancel sends nothing
            await row.locator('[data-action="terminate"]').click()
            await expect(page.locator("#terminate-dialog")).to_be_visible()
            await page.locator("#terminate-dialog [data-close]").click()
            await expect(page.locator("#terminate-dialog")).to_be_hidden()
            await expect(cell(row, "state")).to_contain_text("active")

            mark = client.mark()
            await row.locator('[data-action="terminate"]').click()
            await page.locator("#terminate-confirm").click()  # empty reason: refused by the page
            await expect(page.locator("#terminate-error")).to_be_visible()
            await page.locator("#terminate-reason").fill("Phone on the desk")
            await page.locator("#terminate-confirm").click()
            state = await client.wait_for("state", 3, since=mark, pred=lambda m: m.get("state") == "terminated")
            assert state["state"] == "terminated"
            await expect(cell(row, "state")).to_contain_text("terminated")
            await expect(cell(row, "left")).to_have_text("—")
            for action in ("extend", "pause", "message", "terminate"):
                await expect(row.locator(f'[data-action="{action}"]')).to_be_disabled()
            await expect(page.locator("#count-finished")).to_have_text("1")
            await shoot(page, "proctor-actions.png")
            probe.assert_clean()
            await client.close()

    arun(body(), timeout=90)


# ---------------------------------------------------------------- bulk actions, filter, sort, small screens
def test_bulk_actions_filter_and_sort(make_node, put_exam, make_token, arun, launch_browser, watch_page, expect, shoot):
    node_a, node_b, _ = setup_exam(make_node, put_exam)
    proctor = make_token("proc-1", "admin")

    async def body() -> None:
        async with launch_browser() as context:
            page = await context.new_page()
            probe = watch_page(page)
            await open_live(page, node_a, proctor, expect)

            c1, w1 = await join(node_b, make_token("u-zed", name="Zed Shaw"), start=True)
            c2, w2 = await join(node_a, make_token("u-amy", name="Amy Adams"), start=True)
            c3, w3 = await join(node_b, make_token("u-bob", name="Bob Ross"))  # connected, not started
            for w in (w1, w2, w3):
                await expect(row_of(page, w["attempt"])).to_be_visible()
            await expect(page.locator("#count-active")).to_have_text("2")
            await expect(page.locator("#count-ready")).to_have_text("1")

            # sorted by name by default; a header click sorts and sets aria-sort
            rows = page.locator("#rows tr")
            await expect(rows).to_have_count(3)
            names = [n.strip() for n in await page.locator("#rows .cand-name").all_inner_texts()]
            assert names == ["Amy Adams", "Bob Ross", "Zed Shaw"], names
            th_name = page.locator('th[data-sort="name"]')
            await expect(th_name).to_have_attribute("aria-sort", "ascending")
            await th_name.locator("button").click()
            await expect(th_name).to_have_attribute("aria-sort", "descending")
            await expect(page.locator("#rows tr").first).to_have_attribute("data-attempt", w1["attempt"])
            th_state = page.locator('th[data-sort="state"]')
            await th_state.locator("button").click()
            await expect(th_state).to_have_attribute("aria-sort", "ascending")
            await expect(th_name).to_have_attribute("aria-sort", "none")
            await expect(page.locator("#rows tr").last).to_have_attribute("data-attempt", w3["attempt"])

            # filters
            await page.locator("#filter-text").fill("bob")
            await expect(rows).to_have_count(1)
            await expect(rows.first).to_have_attribute("data-attempt", w3["attempt"])
            await page.locator("#filter-text").fill("")
            await page.locator("#filter-state").select_option("active")
            await expect(rows).to_have_count(2)
            await page.locator("#filter-state").select_option("all")
            await expect(rows).to_have_count(3)

            # extend everyone by 3 minutes: both started candidates get +180 s
            d1, d2 = w1["deadline"], w2["deadline"]
            m1, m2 = c1.mark(), c2.mark()
            await page.locator("#extend-all").click()
            await expect(page.locator("#extend-dialog")).to_be_visible()
            await expect(page.locator("#extend-title")).to_contain_text("everyone")
            await page.locator("#extend-minutes").fill("3")
            await page.locator("#extend-confirm").click()
            t1 = await c1.wait_for("time", 3, since=m1, pred=lambda m: m.get("deadline") != d1)
            t2 = await c2.wait_for("time", 3, since=m2, pred=lambda m: m.get("deadline") != d2)
            assert (t1["deadline"] - d1, t2["deadline"] - d2) == (180_000, 180_000)
            await expect(page.locator("#status")).to_contain_text("Added 3 min to")

            # pause everyone (after a confirmation), then resume everyone
            m1, m2 = c1.mark(), c2.mark()
            await page.locator("#pause-all").click()
            await expect(page.locator("#confirm-dialog")).to_be_visible()
            await expect(page.locator("#confirm-text")).to_contain_text("2 candidates active")
            await page.locator("#confirm-ok").click()
            await c1.wait_for("state", 3, since=m1, pred=lambda m: m.get("state") == "paused")
            await c2.wait_for("state", 3, since=m2, pred=lambda m: m.get("state") == "paused")
            await expect(page.locator("#count-paused")).to_have_text("2")
            await expect(page.locator("#status")).to_contain_text("Paused")
            await shoot(page, "proctor-bulk-paused.png")

            m1, m2 = c1.mark(), c2.mark()
            await page.locator("#resume-all").click()
            await page.locator("#confirm-ok").click()
            await c1.wait_for("state", 3, since=m1, pred=lambda m: m.get("state") == "active")
            await c2.wait_for("state", 3, since=m2, pred=lambda m: m.get("state") == "active")
            await expect(page.locator("#count-active")).to_have_text("2")

            # phone width and 200 % zoom (a 720x450 CSS-pixel viewport): the page itself
            # never scrolls sideways, the table scrolls inside its container
            for name, size in (("proctor-phone.png", {"width": 390, "height": 844}),
                               ("proctor-zoom200.png", {"width": 720, "height": 450})):
                await page.set_viewport_size(size)
                await expect(row_of(page, w1["attempt"])).to_be_attached()
                overflow = await page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
                assert overflow <= 0, f"{name}: the page scrolls sideways by {overflow}px"
                await shoot(page, name)
            probe.assert_clean()
            for c in (c1, c2, c3):
                await c.close()

    arun(body(), timeout=90)


# ---------------------------------------------------------------- (c) refusals are final
def test_pasted_candidate_token_is_refused_without_retrying(make_node, put_exam, make_token, arun, launch_browser,
                                                           watch_page, expect, shoot):
    node_a, _, _ = setup_exam(make_node, put_exam)
    cand_token = make_token("cand-9", "candidate", name="Not A Proctor")

    async def body() -> None:
        async with launch_browser() as context:
            page = await context.new_page()
            probe = watch_page(page)
            await page.goto(page_url(node_a))
            await expect(page.locator("#signin")).to_be_visible()
            await expect(page.locator("#live")).to_be_hidden()
            await expect(page.locator('label[for="token"]')).to_be_visible()

            await page.locator("#token").fill(cand_token)
            await page.locator("#connect").click()
            status = page.locator("#conn-status")
            await expect(status).to_have_attribute("data-state", "error")
            await expect(status).to_contain_text(re.compile(r"403|not allowed", re.IGNORECASE))
            await expect(page.locator("#signin-error")).to_be_visible()
            await expect(page.locator("#signin-error")).to_contain_text(re.compile(r"403|not allowed", re.IGNORECASE))
            await stays_refused(page, probe)
            assert len(probe.websockets) <= 1, probe.websockets
            assert await page.evaluate(f"sessionStorage.getItem({TOKEN_KEY!r})") is None
            assert "token" not in page.url
            await shoot(page, "proctor-refused.png")
            probe.assert_clean()

    arun(body(), timeout=60)


def test_websocket_refusals_4403_and_4404_are_final(make_node, put_exam, make_token, arun, launch_browser,
                                                    watch_page, expect, shoot):
    node_a, _, _ = setup_exam(make_node, put_exam)

    async def body() -> None:
        async with launch_browser() as context:
            # a proctor of another exam, linked straight to pg1: the server refuses with 4403
            page = await context.new_page()
            probe = watch_page(page)
            other = make_token("proc-2", "proctor", exams=["another-exam"])
            await page.goto(page_url(node_a, f"token={other}&exam={EXAM_ID}"))
            status = page.locator("#conn-status")
            await expect(status).to_have_attribute("data-state", "error", timeout=5000)
            await expect(status).to_contain_text(re.compile(r"4403|403|not allowed", re.IGNORECASE))
            await stays_refused(page, probe)
            assert len(probe.websockets) <= 1, probe.websockets
            probe.assert_clean()
            await page.close()

            # a valid proctor token and an exam that does not exist: 4404, no retries
            page = await context.new_page()
            probe = watch_page(page)
            await page.goto(page_url(node_a, f"token={make_token('proc-3', 'proctor')}&exam=no-such-exam"))
            status = page.locator("#conn-status")
            await expect(status).to_have_attribute("data-state", "error", timeout=5000)
            await expect(status).to_contain_text(re.compile(r"4404|no such exam", re.IGNORECASE))
            await expect(page.locator("#fatal")).to_be_visible()
            await stays_refused(page, probe)
            assert len(probe.websockets) == 1, probe.websockets
            await shoot(page, "proctor-4404.png")
            probe.assert_clean()

    arun(body(), timeout=60)


# ---------------------------------------------------------------- (c) reconnect
def test_reconnects_with_a_fresh_snapshot_after_the_node_restarts(make_node, put_exam, make_token, arun, launch_browser,
                                                                  watch_page, expect, shoot, redis_url, secrets,
                                                                  tmp_path):
    node_a, node_b, exam = setup_exam(make_node, put_exam)
    proctor = make_token("proc-1", "proctor", exams=[EXAM_ID])
    replacement: list[testkit.Node] = []

    def restart_a() -> None:
        """A new engine process on node A's port (the page's origin), same Redis and secrets."""
        data_dir = tmp_path / "node-a2"
        data_dir.mkdir()
        argv = [sys.executable, "-m", "examwire", "serve", "--host", "127.0.0.1", "--port", str(node_a.port),
                "--data-dir", str(data_dir)]
        env = testkit.node_env(EXAMWIRE_REDIS_URL=redis_url, EXAMWIRE_JWT_SECRET=secrets.jwt_secret,
                               EXAMWIRE_SECRET=secrets.secret)
        node = testkit.Node(argv, env, port=node_a.port, data_dir=data_dir, cwd=Path(__file__).resolve().parents[2])
        replacement.append(node)
        node.wait_ready()

    async def body() -> None:
        async with launch_browser() as context:
            page = await context.new_page()
            probe = watch_page(page)
            await open_live(page, node_a, proctor, expect)
            client, welcome = await join(node_b, make_token("cand-4", name="Alan Turing"), start=True)
            row = row_of(page, welcome["attempt"])
            await expect(cell(row, "answered")).to_have_text(answered_re(0))

            await asyncio.to_thread(node_a.stop)
            status = page.locator("#conn-status")
            await expect(status).to_have_attribute("data-state", "reconnecting", timeout=5000)
            await expect(status).to_contain_text("Reconnecting")
            # the table says it may be out of date without fading its text below 4.5:1
            await expect(page.locator("#live")).to_have_class(re.compile(r"\bis-stale\b"))
            faded = await row.locator(".cand-user").evaluate("""(e) => {
              let alpha = 1;
              for (let n = e; n; n = n.parentElement) alpha *= Number(getComputedStyle(n).opacity);
              return {alpha, color: getComputedStyle(e).color,
                      bg: getComputedStyle(e.closest('.panel')).backgroundColor};
            }""")
            r, g, b = (int(x) for x in re.findall(r"\d+", faded["color"])[:3])
            a = faded["alpha"]
            shown = f"rgb({r * a + 255 * (1 - a)}, {g * a + 255 * (1 - a)}, {b * a + 255 * (1 - a)})"
            assert contrast(shown, faded["bg"]) >= 4.5, f"stale text at {contrast(shown, faded['bg']):.2f}:1 ({faded})"
            await shoot(page, "proctor-reconnecting.png")

            # the candidate keeps working on node B meanwhile
            q = exam["questions"][0]
            ack = await client.answer(q["id"], right(q))
            assert ack["t"] == "ack", ack

            await asyncio.to_thread(restart_a)
            # backoff is capped at 15 s (full jitter): the page comes back by itself
            await expect(status).to_have_attribute("data-state", "live", timeout=25_000)
            await expect(cell(row_of(page, welcome["attempt"]), "answered")).to_have_text(answered_re(1))
            await expect(page.locator("#count-total")).to_have_text("1")
            assert len(probe.websockets) >= 2, probe.websockets
            probe.assert_clean()
            await client.close()

    try:
        arun(body(), timeout=90)
    finally:
        for node in replacement:
            node.stop()
