"""Requests a live session refuses, candidate and proctor side, on one real node (docs/protocol.md, errors).

Each refusal is an ``error`` (or a close code before the session opens) and
leaves the attempt as it was.
"""

from __future__ import annotations

from tests.e2e.client import ConnectionClosedByServer, ExamClient, attempt_url


async def _closed_at_hello(client: ExamClient) -> tuple[int | None, str | None]:
    await client.connect()
    try:
        await client.hello()
    except ConnectionClosedByServer:
        pass
    return await client.wait_closed(5)


def test_an_exam_path_that_is_not_an_exam_id_is_no_exam_for_both_sides(make_node, make_token, arun):
    node = make_node()
    bad = "a%7Bb%7D"  # "a{b}": never an exam id (it would break the Redis hash tag)

    async def go():
        candidate = ExamClient(attempt_url(node.ws_url, bad), make_token("ann"))
        proctor = ExamClient(f"{node.ws_url}/v1/exams/{bad}/proctor", make_token("pro", "proctor"))
        return await _closed_at_hello(candidate), await _closed_at_hello(proctor)

    (c_code, _), (p_code, _) = arun(go())
    assert c_code == 4404 and p_code == 4404


def test_a_candidate_session_refuses_a_second_hello_and_a_fetch_past_the_end(make_node, put_exam, make_token, kit, arun):
    node = make_node()
    put_exam(node, kit.make_exam("refuse-c", 3))

    async def go():
        c = ExamClient(attempt_url(node.ws_url, "refuse-c"), make_token("ann", exams=["refuse-c"]))
        await c.connect()
        await c.hello()
        assert (await c.start())["t"] == "ack"
        mark = c.mark()
        await c.send_raw({"t": "hello", "v": 1, "token": c.token})
        again = await c.wait_for("error", since=mark)
        past = await c.fetch(3, 2)
        within = await c.fetch(2, 1)
        answer = await c.answer("x01", "c")
        await c.close()
        return again, past, within, answer

    again, past, within, answer = arun(go())
    assert again["code"] == "bad_request" and again["message"] == "already authenticated", again
    assert past["t"] == "error" and past["code"] == "bad_request" and "below 3" in past["message"], past
    assert within["t"] == "ack", within
    assert answer["t"] == "ack", answer  # the session goes on after each refusal


def test_a_proctor_session_refuses_a_second_hello_and_actions_on_attempts_it_cannot_act_on(make_node, put_exam, make_token, kit, arun):
    node = make_node()
    put_exam(node, kit.make_exam("refuse-p", 2))
    put_exam(node, kit.make_exam("elsewhere", 2))
    staff = make_token("pro", "proctor", exams=["refuse-p"])

    async def go():
        ended = ExamClient(attempt_url(node.ws_url, "refuse-p"), make_token("done", exams=["refuse-p"]))
        await ended.connect()
        ended_id = (await ended.hello())["attempt"]
        await ended.start()
        await ended.submit()
        await ended.close()
        foreign = ExamClient(attempt_url(node.ws_url, "elsewhere"), make_token("far", exams=["elsewhere"]))
        await foreign.connect()
        foreign_id = (await foreign.hello())["attempt"]
        await foreign.close()

        p = ExamClient(f"{node.ws_url}/v1/exams/refuse-p/proctor", staff)
        await p.connect()
        await p.hello()
        mark = p.mark()
        await p.send_raw({"t": "hello", "v": 1, "token": staff})
        again = await p.wait_for("error", since=mark)
        replies = {
            "message to an ended attempt": await p.request("message", attempt=ended_id, text="hello?"),
            "message to another exam's attempt": await p.request("message", attempt=foreign_id, text="hello?"),
            "message to nobody": await p.request("message", attempt="0" * 32, text="hello?"),
            "extend another exam's attempt": await p.request("extend", attempt=foreign_id, seconds=60),
            "terminate an ended attempt": await p.request("terminate", attempt=ended_id, reason="late"),
        }
        pong = await p.ping()
        await p.close()
        return again, replies, pong

    again, replies, pong = arun(go())
    assert again["code"] == "bad_request" and again["message"] == "already authenticated", again
    codes = {what: (r["t"], r.get("code")) for what, r in replies.items()}
    assert codes == {
        "message to an ended attempt": ("error", "not_active"),
        "message to another exam's attempt": ("error", "not_found"),
        "message to nobody": ("error", "not_found"),
        "extend another exam's attempt": ("error", "not_found"),
        "terminate an ended attempt": ("error", "not_active"),
    }, codes
    assert pong["t"] == "pong"
