"""The candidate page when the server lost acknowledged answers (docs/protocol.md, "Loss is detected, never silent").

Real Chromium, a real engine node, a real Redis that is wiped mid-exam (what a
restart without persistence leaves). The page keeps what the server
acknowledged until the attempt is final, says ``hello`` with the highest id
acknowledged and its newest ticket, sees ``welcome.lost``, tells the
candidate, and sends the answers and the flag again (fresh ids): the
server's attempt has them all, with its original deadline. After the end
the page keeps nothing.
"""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

import redis

from tests.e2e.conftest import make_exam, right, wrong
from tests.pages.exam_support import FrameLog, QuestionBook, answer_with_mouse
from tests.pages.test_exam_page import attempt_of, exam_url, expect_saved, get_attempt, go_to, norm, start_exam


def test_the_page_sends_again_what_the_server_lost(make_node, put_exam, make_token, http_json, arun, launch_browser,
                                                  watch_page, expect, shoot, redis_url):
    node = make_node()
    exam = make_exam("pl", 4, shuffle_questions=True)
    put_exam(node, exam)
    book = QuestionBook(exam)
    token = make_token("pl-cand", exams=["pl"])

    async def body() -> None:
        async with launch_browser() as context:
            page = await context.new_page()
            probe = watch_page(page)
            frames = FrameLog(page)
            await page.goto(exam_url(node.base_url, "pl", token))
            await start_exam(page, expect)
            attempt = await attempt_of(page, expect)
            deadline = frames.received_of("ack")[0]["deadline"]

            answers: dict[str, Any] = {}
            for index in (0, 1, 2):
                await go_to(page, expect, index)
                q = await book.shown(page)
                answers[q["id"]] = right(q) if index != 1 else wrong(q)
                await answer_with_mouse(page, q, answers[q["id"]])
                await expect_saved(page, expect, index)
            await go_to(page, expect, 1)
            flagged = (await book.shown(page))["id"]
            await page.locator("#flag").click()
            await expect(page.locator('#navigator button[data-index="1"]')).to_have_attribute("data-flagged", "true")
            await expect(page.locator('#navigator button[data-index="1"]')).to_have_attribute("data-saving", "false")

            # what the server acknowledged is kept on the device, with the newest ticket
            async def kept() -> Any:
                return await page.evaluate(f"JSON.parse(localStorage.getItem('examwire:saved:{attempt}'))")

            async def settled() -> bool:
                k = await kept()
                return bool(k) and k["acked"] == max(a["id"] for a in frames.received_of("ack")) and flagged in k["flags"]

            for _ in range(50):
                if await settled():
                    break
                await asyncio.sleep(0.05)
            before = await kept()
            assert norm(before["answers"]) == norm(answers) and before["flags"] == [flagged], before
            assert before["acked"] >= 5 and isinstance(before["ticket"], str) and before["restoring"] is False, before

            # Redis loses everything; the connection drops and comes back
            await asyncio.to_thread(lambda: redis.Redis.from_url(redis_url).flushall())
            sockets_before = len(frames.sockets)
            await context.set_offline(True)
            await expect(page.locator("#banner")).to_have_attribute("data-state", re.compile("^(offline|reconnecting)$"))
            await context.set_offline(False)

            # the page says hello with its evidence; the server says it lost the attempt; the page sends it again
            for _ in range(200):
                if any(m.get("t") == "welcome" for n, _, m in frames.received if n >= sockets_before):
                    break
                await asyncio.sleep(0.05)
            hello = [m for n, _, m in frames.sent if n >= sockets_before and m.get("t") == "hello"][0]
            assert hello["acked"] == before["acked"] and hello["ticket"] == before["ticket"], hello
            welcome = [m for n, _, m in frames.received if n >= sockets_before and m.get("t") == "welcome"][0]
            assert welcome.get("lost") is True and welcome["answers"] == {} and welcome["state"] == "active", welcome
            assert welcome["deadline"] == deadline, (welcome, deadline)  # not restarted with the full time
            await expect(page.locator("#alert")).to_contain_text("lost your latest answers")
            for index in (0, 1, 2):
                await expect(page.locator(f'#navigator button[data-index="{index}"]')).to_have_attribute("data-saving", "false", timeout=8000)
            await expect(page.locator("#banner")).to_be_hidden()
            await expect(page.locator("#announce")).to_contain_text("back on the exam server")
            await expect(page.locator('#navigator button[data-index="1"]')).to_have_attribute("data-flagged", "true")

            resent = [m for n, _, m in frames.sent if n >= sockets_before and m.get("t") in ("answer", "flag")]
            assert sorted(m["q"] for m in resent if m["t"] == "answer") == sorted(answers), resent
            assert [m["q"] for m in resent if m["t"] == "flag"] == [flagged], resent
            assert all(m["id"] > before["acked"] for m in resent), (resent, before["acked"])
            record = await get_attempt(http_json, node.base_url, attempt, token)
            values = {x["id"]: x["value"] for x in record["questions"] if x["value"] is not None}
            assert norm(values) == norm(answers), (values, answers)
            assert record["deadline"] == deadline, record
            lines = [json.loads(x) for x in node.log_text().splitlines() if '"attempt_lost"' in x]
            assert [(x["level"], x["attempt"], x["clock"]) for x in lines] == [("error", attempt, "ticket")], lines
            after = await kept()
            assert after["restoring"] is False and norm(after["answers"]) == norm(answers), after
            await shoot(page, "exam-restored.png")

            # the end: nothing is kept any more
            await page.locator("#submit").click()
            await page.locator("#submit-confirm").click()
            await expect(page.locator("#view")).to_have_attribute("data-view", "result", timeout=5000)
            assert await kept() is None
            assert await page.evaluate("Object.keys(localStorage).filter((k) => k.startsWith('examwire:attempt:'))") == []
            probe.assert_clean()

    arun(body(), timeout=90)
