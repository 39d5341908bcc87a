"""The candidate exam page (``GET /exam/{id}``) in a real Chromium against real engine nodes.

Everything the page does goes over its own WebSocket to the engine: these
tests drive the page like a candidate (keyboard, pointer, reloads, a network
cut, a second window) and check the outcome through the engine's HTTP API
(``GET /v1/attempts/{attempt}``), never through the page alone. Waits poll
(Playwright's ``expect``); they do not sleep. Screenshots go to
``test-artifacts/pages/`` (``exam-*.png``).
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

from examwire.client import ProctorClient
from tests.e2e.conftest import make_exam, right, wrong
from tests.pages.exam_support import (
    FrameLog,
    QuestionBook,
    TcpProxy,
    answer_with_mouse,
    fmt_num,
    option_ids,
    shown_value,
    tab_to,
)
from tests.pages.page_checks import visible_text

TOKEN_KEY = "examwire.exam.token:{exam}"
PHONE = {"width": 375, "height": 740}


# ---------------------------------------------------------------- helpers
def exam_url(base: str, exam_id: str, token: str | None = None) -> str:
    return f"{base}/exam/{exam_id}" + (f"#token={token}" if token else "")


async def get_attempt(http_json: Any, base: str, attempt: str, token: str) -> dict[str, Any]:
    status, body = await asyncio.to_thread(http_json, "GET", f"{base}/v1/attempts/{attempt}", token=token)
    assert status == 200, (status, body)
    return body


async def attempt_of(page: Any, expect: Any) -> str:
    await expect(page.locator("#attempt")).to_have_text(re.compile(r"\S+"))
    return (await page.locator("#attempt").text_content() or "").strip()


async def start_exam(page: Any, expect: Any) -> None:
    """Ready view -> Start (pointer) -> the first question is on screen."""
    await expect(page.locator("#view")).to_have_attribute("data-view", "ready", timeout=8000)
    await page.locator("#start").click()
    await expect(page.locator("#view")).to_have_attribute("data-view", "question")
    await expect(page.locator("#answer-fs")).to_be_visible()


async def go_to(page: Any, expect: Any, index: int) -> None:
    await page.locator(f'#navigator button[data-index="{index}"]').click()
    await expect(page.locator(f'#navigator button[data-index="{index}"]')).to_have_attribute("aria-current", "step")
    await expect(page.locator("#q-pos")).to_have_text(str(index + 1))
    await expect(page.locator("#answer-fs")).to_be_visible()


async def expect_saved(page: Any, expect: Any, index: int, timeout: int = 5000) -> None:
    await expect(page.locator("#save-status")).to_have_text("saved", timeout=timeout)
    nav = page.locator(f'#navigator button[data-index="{index}"]')
    await expect(nav).to_have_attribute("data-answered", "true")
    await expect(nav).to_have_attribute("data-saving", "false")


def norm(values: dict[str, Any]) -> dict[str, Any]:
    """Answer values with option lists sorted (the page sends checked options in the order shown)."""
    return {k: sorted(v) if isinstance(v, list) else v for k, v in values.items()}


def score_text(record: dict[str, Any]) -> str:
    return f"{fmt_num(record['score'])} / {fmt_num(record['max_score'])}"


# ---------------------------------------------------------------- (a) keyboard only, start to result
def test_keyboard_only_exam_to_the_result(make_node, put_exam, make_token, http_json, arun, launch_browser,
                                          watch_page, expect, shoot):
    node = make_node()
    exam = make_exam("kb", 5, shuffle_questions=True)
    put_exam(node, exam)
    book = QuestionBook(exam)
    token = make_token("kb-cand", name="Grace Hopper", exams=["kb"])
    # right for single, true_false and text; wrong for multiple and numeric
    plan = {q["id"]: (wrong(q) if q["type"] in ("multiple", "numeric") else right(q)) for q in exam["questions"]}

    async def answer_by_keyboard(page: Any, q: dict[str, Any], value: Any) -> None:
        kind = q["type"]
        if kind in ("single", "true_false"):
            ids = await option_ids(page)
            target = ids.index(value if kind == "single" else ("true" if value else "false"))
            await tab_to(page, "#answer-body input[type=radio]")
            if target == 0:
                await page.keyboard.press("Space")
            for _ in range(target):
                await page.keyboard.press("ArrowDown")
        elif kind == "multiple":
            for oid in value:
                await tab_to(page, f'#answer-body input[type=checkbox][value="{oid}"]')
                await page.keyboard.press("Space")
        elif kind == "numeric":
            await tab_to(page, "#answer-numeric")
            await page.keyboard.type(fmt_num(value))
            await page.keyboard.press("Tab")
        else:
            await tab_to(page, "#answer-text")
            await page.keyboard.type(value)
            await page.keyboard.press("Tab")

    async def body() -> None:
        async with launch_browser() as context:
            page = await context.new_page()
            probe = watch_page(page)
            frames = FrameLog(page)
            await page.goto(exam_url(node.base_url, "kb", token))

            # the token left the address bar for sessionStorage
            await expect(page.locator("#view")).to_have_attribute("data-view", "ready", timeout=8000)
            assert "token" not in page.url and token not in page.url, page.url
            assert await page.evaluate(f"sessionStorage.getItem({TOKEN_KEY.format(exam='kb')!r})") == token
            await expect(page.locator("#exam-title")).to_have_text(exam["title"])
            await expect(page.locator("#fact-total")).to_have_text("5")
            await expect(page.locator("#fact-duration")).to_have_text("10 minutes")
            await expect(page.locator("#timer")).to_have_text("10:00")
            await expect(page.locator("#banner")).to_have_attribute("data-state", "online")
            await shoot(page, "exam-start.png")

            await tab_to(page, "#start")
            await page.keyboard.press("Enter")
            await expect(page.locator("#view")).to_have_attribute("data-view", "question")
            await expect(page.locator("#timer")).to_have_text(re.compile(r"^(10:00|09:[0-5]\d)$"))
            attempt = await attempt_of(page, expect)

            seen: list[str] = []
            flagged = -1
            for index in range(5):
                await expect(page.locator("#q-pos")).to_have_text(str(index + 1))
                await expect(page.locator(f'#navigator button[data-index="{index}"]')).to_have_attribute("aria-current", "step")
                q = await book.shown(page)
                seen.append(q["id"])
                await answer_by_keyboard(page, q, plan[q["id"]])
                await expect_saved(page, expect, index)
                if q["type"] == "multiple":
                    flagged = index
                    await tab_to(page, "#flag")
                    await page.keyboard.press("Space")
                    await expect(page.locator("#flag")).to_have_attribute("aria-pressed", "true")
                    await expect(page.locator(f'#navigator button[data-index="{index}"]')).to_have_attribute("data-flagged", "true")
                if index == 1:
                    await shoot(page, "exam-question.png")
                if index < 4:
                    await tab_to(page, "#next")
                    await page.keyboard.press("Enter")
            assert sorted(seen) == sorted(plan), seen
            await expect(page.locator("#next")).to_be_disabled()

            # back to the first question through the navigator, then forward again with Shift+Tab
            await tab_to(page, '#navigator button[data-index="0"]')
            await page.keyboard.press("Enter")
            await expect(page.locator("#q-pos")).to_have_text("1")
            label = await page.locator('#navigator button[data-index="4"]').get_attribute("aria-label")
            assert label is not None and label.startswith("Question 5, answered"), label
            flagged_label = await page.locator(f'#navigator button[data-index="{flagged}"]').get_attribute("aria-label")
            assert flagged_label == f"Question {flagged + 1}, answered, flagged", flagged_label

            # submit through the confirmation dialog
            await tab_to(page, "#submit")
            await page.keyboard.press("Enter")
            dialog = page.locator("#submit-dialog")
            await expect(dialog).to_be_visible()
            await expect(page.locator("#submit-summary")).to_have_text("You answered 5 of 5 questions.")
            await expect(page.locator("#submit-details")).to_contain_text(f"Flagged for review: {flagged + 1}")
            await shoot(page, "exam-submit-dialog.png", full_page=False)
            await tab_to(page, "#submit-confirm")
            await page.keyboard.press("Enter")

            await expect(page.locator("#view")).to_have_attribute("data-view", "result", timeout=5000)
            record = await get_attempt(http_json, node.base_url, attempt, token)
            assert record["state"] == "submitted", record
            assert record["score"] == 3 and record["max_score"] == 5, record
            await expect(page.locator("#result")).to_contain_text(score_text(record))
            await expect(page.locator("#result")).to_contain_text("60 %")
            await expect(page.locator("#result")).to_contain_text("Passed")
            await expect(page.locator("#banner")).to_have_attribute("data-state", "ended")
            values = {q["id"]: q["value"] for q in record["questions"]}
            assert norm(values) == norm(plan), values
            await shoot(page, "exam-result.png")

            # MessagePack binary frames only, ids strictly increasing, and nothing left pending
            kinds = {kind for _, kind, _ in frames.sent}
            assert kinds == {"binary"}, kinds
            ids = [m["id"] for _, _, m in frames.sent if isinstance(m.get("id"), int)]
            assert ids == sorted(ids) and len(ids) == len(set(ids)), ids
            assert await page.evaluate(f"localStorage.getItem('examwire:pending:{attempt}')") is None
            probe.assert_clean()

    arun(body(), timeout=60)


# ---------------------------------------------------------------- (b) node dies: offline, then node B
def test_connection_cut_answers_kept_offline_and_sent_to_another_node(make_node, put_exam, make_token, http_json, arun,
                                                                     launch_browser, watch_page, expect, shoot):
    node_a, node_b = make_node(), make_node()
    exam = make_exam("cut", 5, shuffle_questions=True)
    put_exam(node_a, exam)
    book = QuestionBook(exam)
    token = make_token("cut-cand", exams=["cut"])

    async def body() -> None:
        proxy = await TcpProxy([("127.0.0.1", node_a.port), ("127.0.0.1", node_b.port)]).start()
        try:
            async with launch_browser() as context:
                page = await context.new_page()
                probe = watch_page(page)
                frames = FrameLog(page)
                await page.goto(exam_url(proxy.base_url, "cut", token))
                await start_exam(page, expect)
                attempt = await attempt_of(page, expect)
                answers: dict[str, Any] = {}

                q = await book.shown(page)
                answers[q["id"]] = right(q)
                await answer_with_mouse(page, q, answers[q["id"]])
                await expect_saved(page, expect, 0)

                # node A goes away (its connections are cut); nothing new gets through for a while
                proxy.block()
                await asyncio.to_thread(node_a.stop)
                await expect(page.locator("#banner")).to_have_attribute("data-state", re.compile("^(offline|reconnecting)$"))
                await expect(page.locator("#banner")).to_be_visible()
                await expect(page.locator("#banner-text")).to_contain_text("offline")

                # the candidate keeps answering: kept on the device, shown as saving
                for index in (1, 2):
                    await go_to(page, expect, index)
                    q = await book.shown(page)
                    answers[q["id"]] = wrong(q) if index == 1 else right(q)
                    await answer_with_mouse(page, q, answers[q["id"]])
                    await expect(page.locator("#save-status")).to_have_text("saving…")
                    nav = page.locator(f'#navigator button[data-index="{index}"]')
                    await expect(nav).to_have_attribute("data-answered", "true")
                    await expect(nav).to_have_attribute("data-saving", "true")
                await expect(page.locator("#save-detail")).to_contain_text("offline")
                kept = await page.evaluate(f"JSON.parse(localStorage.getItem('examwire:pending:{attempt}'))")
                kept_answers = [e["message"] for e in kept if e["message"]["t"] == "answer"]
                last_kept = {m["q"]: m["value"] for m in kept_answers}  # a checkbox list may take two requests
                assert norm(last_kept) == norm({k: v for k, v in answers.items() if k in list(answers)[1:]}), kept
                await shoot(page, "exam-offline.png")

                # the network is back: the page finds node B by itself and sends what it kept
                proxy.unblock()
                await expect(page.locator("#banner")).to_have_attribute("data-state", "online", timeout=15000)
                await expect(page.locator("#banner")).to_be_hidden()
                resumed_on = len(frames.sockets) - 1
                for index in (1, 2):
                    nav = page.locator(f'#navigator button[data-index="{index}"]')
                    await expect(nav).to_have_attribute("data-saving", "false")
                await expect(page.locator("#save-status")).to_have_text("saved")
                assert proxy.connections[-1][1] == ("127.0.0.1", node_b.port), proxy.connections
                assert await page.evaluate(f"JSON.parse(localStorage.getItem('examwire:pending:{attempt}'))") == []

                # the browser says it is offline: banner at once; back online: reconnected at once
                await context.set_offline(True)
                await expect(page.locator("#banner")).to_have_attribute("data-state", re.compile("^(offline|reconnecting)$"))
                await context.set_offline(False)
                await expect(page.locator("#banner")).to_have_attribute("data-state", "online", timeout=5000)

                await page.locator("#submit").click()
                await page.locator("#submit-confirm").click()
                await expect(page.locator("#view")).to_have_attribute("data-view", "result", timeout=5000)

                record = await get_attempt(http_json, node_b.base_url, attempt, token)
                values = {q["id"]: q["value"] for q in record["questions"] if q["value"] is not None}
                assert norm(values) == norm(answers), (values, answers)
                await expect(page.locator("#result")).to_contain_text(score_text(record))

                # every answer was applied exactly once: one fresh ack per id, repeats acked dup
                answer_ids = sorted({m["id"] for m in frames.sent_of("answer")})
                acks = frames.received_of("ack")
                fresh = [a["id"] for a in acks if not a.get("dup")]
                assert all(fresh.count(i) <= 1 for i in answer_ids), acks
                assert all(i in {a["id"] for a in acks} for i in answer_ids), (answer_ids, acks)
                assert not frames.received_of("error"), frames.received_of("error")
                # the resent requests kept their original ids, in order, on the new connection
                resent = [m["id"] for n, _, m in frames.sent if n == resumed_on and m.get("t") == "answer"]
                assert resent == sorted(resent) and set(resent) >= {m["id"] for m in kept_answers}, (resent, kept_answers)
                probe.assert_clean()
        finally:
            await proxy.close()

    arun(body(), timeout=60)


# ---------------------------------------------------------------- (c) reload mid-exam
def test_reload_keeps_order_answers_flags_and_unsent_requests(make_node, put_exam, make_token, http_json, arun,
                                                             launch_browser, watch_page, expect, shoot):
    node = make_node()
    exam = make_exam("rl", 6, shuffle_questions=True)
    put_exam(node, exam)
    book = QuestionBook(exam)
    token = make_token("rl-cand", exams=["rl"])

    async def prompts_by_index(page: Any) -> list[str]:
        out = []
        for index in range(6):
            await go_to(page, expect, index)
            out.append((await page.locator("#prompt").text_content() or "").strip())
        return out

    async def body() -> None:
        async with launch_browser() as context:
            page = await context.new_page()
            probe = watch_page(page)
            frames = FrameLog(page)
            await page.goto(exam_url(node.base_url, "rl", token))
            await start_exam(page, expect)
            attempt = await attempt_of(page, expect)
            before = await prompts_by_index(page)
            assert sorted(before) == sorted(book.by_prompt), before

            answers: dict[int, Any] = {}
            for index in (0, 1, 2, 4):
                await go_to(page, expect, index)
                q = await book.shown(page)
                answers[index] = right(q) if index % 2 == 0 else wrong(q)
                await answer_with_mouse(page, q, answers[index])
                await expect_saved(page, expect, index)
            await go_to(page, expect, 1)
            await page.locator("#flag").click()
            await expect(page.locator('#navigator button[data-index="1"]')).to_have_attribute("data-flagged", "true")
            await go_to(page, expect, 2)

            # a request the page wrote down but never got an ack for (a crash right after sending)
            q3 = book.by_prompt[before[3]]
            answers[3] = right(q3)
            await page.evaluate(
                """([attempt, qid, value]) => {
                    const last = Number(localStorage.getItem(`examwire:last-id:${attempt}`));
                    const id = last + 1;
                    const message = {t: 'answer', id, q: qid, value};
                    const list = JSON.parse(localStorage.getItem(`examwire:pending:${attempt}`) || '[]');
                    list.push({id, message});
                    localStorage.setItem(`examwire:pending:${attempt}`, JSON.stringify(list));
                    localStorage.setItem(`examwire:last-id:${attempt}`, String(id));
                }""",
                [attempt, q3["id"], answers[3]],
            )
            # and a stale copy of a request the server already applied (same id, other value):
            # resent after the reload, it must be acked as a repeat and change nothing
            first = frames.sent_of("answer")[0]
            stale = {**first, "value": wrong(book.by_prompt[before[0]]) if first["value"] != wrong(book.by_prompt[before[0]])
                     else right(book.by_prompt[before[0]])}
            assert first["q"] == book.by_prompt[before[0]]["id"], first
            await page.evaluate(
                """([attempt, message]) => {
                    const list = JSON.parse(localStorage.getItem(`examwire:pending:${attempt}`) || '[]');
                    list.unshift({id: message.id, message});
                    localStorage.setItem(`examwire:pending:${attempt}`, JSON.stringify(list));
                }""",
                [attempt, stale],
            )
            sockets_before = len(frames.sockets)

            await page.reload()
            await expect(page.locator("#view")).to_have_attribute("data-view", "question", timeout=8000)
            assert "token" not in page.url
            # back on the question the candidate was looking at, answers and flag restored
            await expect(page.locator("#q-pos")).to_have_text("3")
            await expect(page.locator('#navigator button[data-index="1"]')).to_have_attribute("data-flagged", "true")
            for index in range(6):
                want = "true" if index in answers else "false"
                await expect(page.locator(f'#navigator button[data-index="{index}"]')).to_have_attribute("data-answered", want)
            # the unsent request was sent after the welcome and acked
            await expect(page.locator('#navigator button[data-index="3"]')).to_have_attribute("data-saving", "false")
            after_reload = [m for n, _, m in frames.received if n >= sockets_before and m.get("t") == "ack"]
            assert {"t": "ack", "id": stale["id"], "dup": True} in after_reload, after_reload
            assert await page.evaluate(f"JSON.parse(localStorage.getItem('examwire:pending:{attempt}'))") == []
            after = await prompts_by_index(page)
            assert after == before, (before, after)
            for index, value in answers.items():
                await go_to(page, expect, index)
                q = await book.shown(page)
                await expect(page.locator("#save-status")).to_have_text("saved")
                got = await shown_value(page, q)
                if q["type"] == "multiple":
                    assert sorted(got) == sorted(value), (index, got, value)
                else:
                    assert got == value, (index, got, value)
            await go_to(page, expect, 1)
            await expect(page.locator("#flag")).to_have_attribute("aria-pressed", "true")

            record = await get_attempt(http_json, node.base_url, attempt, token)
            values = {q["id"]: q["value"] for q in record["questions"] if q["value"] is not None}
            assert norm(values) == norm({book.by_prompt[before[i]]["id"]: v for i, v in answers.items()}), values

            # 200 % zoom of a 1440x900 window: still one column, no horizontal scrolling
            await page.set_viewport_size({"width": 720, "height": 450})
            overflow = await page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
            assert overflow <= 0, f"horizontal scrolling at 720 px: {overflow}px"
            await shoot(page, "exam-zoom200.png", full_page=False)

            # at phone width: no horizontal scrolling, the navigator wraps
            await page.set_viewport_size(PHONE)
            await go_to(page, expect, 0)
            overflow = await page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
            assert overflow <= 0, f"horizontal scrolling at 375 px: {overflow}px"
            await shoot(page, "exam-phone.png")
            probe.assert_clean()

    arun(body(), timeout=60)


# ---------------------------------------------------------------- (d) the time runs out
def test_time_runs_out_and_the_page_shows_the_end_by_itself(make_node, put_exam, make_token, http_json, arun,
                                                           launch_browser, watch_page, expect, shoot):
    node = make_node(EXAMWIRE_ANSWER_GRACE_MS="200")
    exam = make_exam("short", 3, duration_s=3, shuffle_questions=False)
    put_exam(node, exam)
    q0 = exam["questions"][0]
    token = make_token("short-cand", exams=["short"])

    async def body() -> None:
        async with launch_browser() as context:
            page = await context.new_page()
            probe = watch_page(page)
            frames = FrameLog(page)
            await page.goto(exam_url(node.base_url, "short", token))
            await expect(page.locator("#fact-duration")).to_have_text("3 seconds", timeout=8000)
            await start_exam(page, expect)
            attempt = await attempt_of(page, expect)
            await answer_with_mouse(page, q0, right(q0))
            await expect_saved(page, expect, 0)
            await expect(page.locator("#timer-box")).to_have_attribute("data-level", "critical")

            await expect(page.locator("#view")).to_have_attribute("data-view", "result", timeout=8000)
            await expect(page.locator("#result-title")).to_have_text("Time is up")
            await shoot(page, "exam-expired.png")
            record = await get_attempt(http_json, node.base_url, attempt, token)
            assert record["state"] == "expired", record
            assert record["score"] == 1, record
            await expect(page.locator("#result")).to_contain_text(score_text(record))
            await expect(page.locator("#banner")).to_have_attribute("data-state", "ended")
            assert not frames.sent_of("submit"), "the page submitted on its own"
            probe.assert_clean()

    arun(body(), timeout=40)


# ---------------------------------------------------------------- (e) opened elsewhere: 4409
def test_second_window_supersedes_and_the_first_does_not_fight_back(make_node, put_exam, make_token, arun,
                                                                    launch_browser, watch_page, expect, shoot):
    node = make_node()
    exam = make_exam("two", 3, shuffle_questions=False)
    put_exam(node, exam)
    token = make_token("two-cand", exams=["two"])

    async def body() -> None:
        async with launch_browser() as context:
            first = await context.new_page()
            probe = watch_page(first)
            await first.goto(exam_url(node.base_url, "two", token))
            await start_exam(first, expect)

            second = await context.new_page()
            await second.goto(exam_url(node.base_url, "two", token))
            await expect(second.locator("#view")).to_have_attribute("data-view", "question", timeout=8000)
            await expect(first.locator("#banner")).to_have_attribute("data-state", "superseded")
            await expect(first.locator("#banner-text")).to_contain_text("This exam was opened in another window or device")
            await expect(first.locator("#answer-body input").first).to_be_disabled()
            await expect(first.locator("#take-over")).to_be_visible()
            # said once (the banner, with its button), not again above the question
            shown = await visible_text(first)
            assert len(re.findall("another window or device", shown)) == 1, shown
            await shoot(first, "exam-superseded.png")
            sockets = len(probe.websockets)
            await asyncio.sleep(2.5)  # watching for reconnects that must not happen
            assert len(probe.websockets) == sockets, probe.websockets
            await expect(second.locator("#banner")).to_have_attribute("data-state", "online")

            # "Continue here" takes it back, and now the other window steps aside
            await first.locator("#take-over").click()
            await expect(first.locator("#banner")).to_have_attribute("data-state", "online")
            await expect(first.locator("#answer-body input").first).to_be_enabled()
            await expect(second.locator("#banner")).to_have_attribute("data-state", "superseded")
            probe.assert_clean()

    arun(body(), timeout=40)


# ---------------------------------------------------------------- linear exams
def test_linear_exam_goes_forward_only_after_confirmation(make_node, put_exam, make_token, http_json, arun,
                                                          launch_browser, watch_page, expect):
    node = make_node()
    exam = make_exam("lin", 3, navigation="linear", shuffle_questions=False, show_result=False)
    put_exam(node, exam)
    qs = exam["questions"]
    token = make_token("lin-cand", exams=["lin"])

    async def body() -> None:
        async with launch_browser() as context:
            # this page speaks JSON text frames (the fallback encoding), and its clock is an hour fast
            await context.add_init_script("sessionStorage.setItem('examwire.encoding', 'json');"
                                          "const realNow = Date.now; Date.now = () => realNow() + 3600000;")
            page = await context.new_page()
            probe = watch_page(page)
            frames = FrameLog(page)
            await page.goto(exam_url(node.base_url, "lin", token))
            await expect(page.locator("#fact-navigation")).to_have_text("Forward only", timeout=8000)
            await start_exam(page, expect)
            attempt = await attempt_of(page, expect)
            # the countdown follows the server's clock, not the machine's
            await expect(page.locator("#timer")).to_have_text(re.compile(r"^(10:00|09:5\d)$"))
            await expect(page.locator("#prev")).to_be_disabled()
            await answer_with_mouse(page, qs[0], right(qs[0]))
            await expect_saved(page, expect, 0)

            await page.locator("#next").click()
            dialog = page.locator("#next-dialog")
            await expect(dialog).to_be_visible()
            await expect(page.locator("#next-text")).to_contain_text("cannot go back")
            await page.locator("#next-cancel").click()
            await expect(dialog).to_be_hidden()
            await expect(page.locator("#q-pos")).to_have_text("1")

            await page.locator("#next").click()
            await page.locator("#next-confirm").click()
            await expect(page.locator("#q-pos")).to_have_text("2")
            first = page.locator('#navigator button[data-index="0"]')
            await expect(first).to_be_disabled()
            await expect(first).to_have_attribute("data-closed", "true")
            await expect(page.locator("#prev")).to_be_disabled()
            record = await get_attempt(http_json, node.base_url, attempt, token)
            assert {q["id"]: q["value"] for q in record["questions"]}[qs[0]["id"]] == right(qs[0])
            assert {kind for _, kind, _ in frames.sent} == {"text"}
            assert {kind for _, kind, _ in frames.received} == {"text"}  # answered in the hello's encoding
            assert [m["index"] for m in frames.sent_of("goto")] == [1]

            # an exam that does not show results: the end says "submitted", no score
            await page.locator("#submit").click()
            await expect(page.locator("#submit-details")).to_contain_text("Unanswered questions: 2, 3")
            await page.locator("#submit-confirm").click()
            await expect(page.locator("#view")).to_have_attribute("data-view", "result")
            await expect(page.locator("#result")).to_have_attribute("data-state", "submitted")
            await expect(page.locator("#result")).to_have_text("Your answers were submitted.")
            probe.assert_clean()

    arun(body(), timeout=40)


# ---------------------------------------------------------------- proctor pause, message, resume
def test_proctor_pause_notice_and_resume_reach_the_page(make_node, put_exam, make_token, arun, launch_browser,
                                                        watch_page, expect, shoot):
    node = make_node()
    exam = make_exam("pp", 3, shuffle_questions=False, duration_s=62)
    put_exam(node, exam)
    qs = exam["questions"]
    token = make_token("pp-cand", exams=["pp"])

    async def body() -> None:
        proctor = ProctorClient(f"{node.ws_url}/v1/exams/pp/proctor", make_token("pp-proc", "proctor", name="Pat"))
        async with launch_browser() as context:
            page = await context.new_page()
            probe = watch_page(page)
            frames = FrameLog(page)
            await page.goto(exam_url(node.base_url, "pp", token))
            await start_exam(page, expect)
            attempt = await attempt_of(page, expect)
            # one minute left: a visible warning and an assertive announcement
            await expect(page.locator("#timer-warning")).to_be_visible(timeout=5000)
            await expect(page.locator("#timer-warning-text")).to_contain_text("1 minute left")
            await expect(page.locator("#alert")).to_have_text("1 minute left.")
            await expect(page.locator("#timer-box")).to_have_attribute("data-level", "critical")
            await proctor.connect()
            await proctor.hello()
            try:
                ack = await proctor.request("pause", attempt=attempt)
                assert ack["t"] == "ack", ack
                await expect(page.locator("#block")).to_contain_text("Your proctor has paused the exam")
                await expect(page.locator("#answer-body input").first).to_be_disabled()
                await expect(page.locator("#timer-box")).to_have_attribute("data-level", "paused")
                frozen = await page.locator("#timer").text_content()
                await shoot(page, "exam-paused.png")

                ack = await proctor.request("message", attempt=attempt, text="Please stay in your seat.")
                assert ack["t"] == "ack", ack
                notice = page.locator("#notice .notice")
                await expect(notice).to_contain_text("Please stay in your seat.")
                # the page names the role, never the sender: a name claim may be absent (the server then signs "Proctor")
                await expect(notice.locator(".notice__from")).to_have_text("Message from your proctor")
                await asyncio.sleep(1.2)
                assert await page.locator("#timer").text_content() == frozen  # the clock stands still

                ack = await proctor.request("resume", attempt=attempt)
                assert ack["t"] == "ack", ack
                await expect(page.locator("#block")).to_be_hidden()
                await expect(page.locator("#answer-body input").first).to_be_enabled()
                await answer_with_mouse(page, qs[0], right(qs[0]))
                await expect_saved(page, expect, 0)
                await notice.get_by_role("button", name=re.compile("Dismiss")).click()
                await expect(notice).to_have_count(0)

                # window focus changes and copy/paste are reported as events
                await page.evaluate("window.dispatchEvent(new Event('blur')); document.dispatchEvent(new Event('copy'))")
                for _ in range(50):
                    if {"blur", "copy"} <= {m["kind"] for m in frames.sent_of("event")}:
                        break
                    await asyncio.sleep(0.05)
                assert {"blur", "copy"} <= {m["kind"] for m in frames.sent_of("event")}, frames.sent_of("event")

                ack = await proctor.request("terminate", attempt=attempt, reason="Phone on the desk")
                assert ack["t"] == "ack", ack
                await expect(page.locator("#view")).to_have_attribute("data-view", "result")
                await expect(page.locator("#result-title")).to_have_text("Exam ended")
                await expect(page.locator("#result-reason")).to_contain_text("Phone on the desk")
                probe.assert_clean()
            finally:
                await proctor.close()

    arun(body(), timeout=40)


# ---------------------------------------------------------------- landing page and pasted tokens
def test_landing_form_and_pasted_token_never_put_the_token_in_the_url(make_node, put_exam, make_token, arun,
                                                                     launch_browser, watch_page, expect, shoot):
    node = make_node()
    exam = make_exam("paste", 2, shuffle_questions=False)
    put_exam(node, exam)
    token = make_token("paste-cand", exams=["paste"])
    expired = make_token("paste-cand", exams=["paste"], ttl=-60)

    async def body() -> None:
        async with launch_browser() as context:
            page = await context.new_page()
            probe = watch_page(page)
            requests: list[str] = []
            page.on("request", lambda r: requests.append(r.url))

            # landing page: exam id + token -> /exam/<id>, token in sessionStorage only
            await page.goto(f"{node.base_url}/")
            await expect(page.get_by_role("link", name="Open the proctor dashboard")).to_have_attribute("href", "/proctor")
            await shoot(page, "landing.png")
            await page.locator("#connect").click()
            await expect(page.locator("#open-error")).to_be_visible()
            await page.locator("#exam-id").fill("paste")
            await page.locator("#token").fill(token)
            await page.locator("#connect").click()
            await expect(page.locator("#view")).to_have_attribute("data-view", "ready", timeout=8000)
            assert page.url == f"{node.base_url}/exam/paste", page.url

            # a page of its own with no token: the paste form; an expired token is refused, not retried
            other = await context.new_page()
            other_probe = watch_page(other)
            other.on("request", lambda r: requests.append(r.url))
            await other.goto(exam_url(node.base_url, "paste"))
            await expect(other.locator("#view")).to_have_attribute("data-view", "token")
            await other.locator("#token").fill(expired)
            await other.locator("#connect").click()
            await expect(other.locator("#token-error")).to_contain_text("refused", timeout=5000)
            await expect(other.locator("#view")).to_have_attribute("data-view", "token")
            sockets = len(other_probe.websockets)
            await asyncio.sleep(1.5)
            assert len(other_probe.websockets) == sockets, other_probe.websockets
            await other.locator("#token").fill(token)
            await other.locator("#connect").click()
            await expect(other.locator("#view")).to_have_attribute("data-view", "ready", timeout=8000)
            assert await other.evaluate("sessionStorage.getItem('examwire.exam.token:paste')") == token

            await page.set_viewport_size(PHONE)
            await page.goto(f"{node.base_url}/")
            overflow = await page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
            assert overflow <= 0, f"horizontal scrolling at 375 px: {overflow}px"
            await shoot(page, "landing-phone.png")

            assert not [u for u in requests if token in u or expired in u], "a token went into a URL"
            probe.assert_clean()
            other_probe.assert_clean()

    arun(body(), timeout=40)
