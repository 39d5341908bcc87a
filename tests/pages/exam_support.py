"""Helpers for the candidate exam page tests (``test_exam_page.py``).

``TcpProxy``      a tiny asyncio TCP proxy: each new connection goes to the first
                  backend that accepts; when a backend dies its connections are
                  cut. ``block()`` makes it refuse new connections (accept and close
                  at once) until ``unblock()``: a deterministic "network down" window.
``FrameLog``      every WebSocket frame a page sends or receives, decoded
                  (MessagePack for binary frames, JSON for text frames).
``tab_to``        press Tab (or Shift+Tab) until the focused element matches a selector.
``QuestionBook``  the exam definition by prompt: which question a page is showing.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import msgpack


# ---------------------------------------------------------------- TCP proxy
class TcpProxy:
    """``127.0.0.1:<port>`` forwarding to ``backends`` (``(host, port)``), first that accepts."""

    def __init__(self, backends: list[tuple[str, int]]):
        self.backends = list(backends)
        self.blocked = False
        self.port = 0
        self.connections: list[tuple[int, tuple[str, int]]] = []  # (serial, backend) per forwarded connection
        self._server: asyncio.base_events.Server | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self._serial = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> TcpProxy:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def block(self) -> None:
        self.blocked = True

    def unblock(self) -> None:
        self.blocked = False

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for w in list(self._writers):
            w.close()
        for t in list(self._tasks):
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._writers.add(writer)
        try:
            if self.blocked:
                return
            for backend in self.backends:
                try:
                    b_reader, b_writer = await asyncio.open_connection(*backend)
                except OSError:
                    continue
                break
            else:
                return
            self._serial += 1
            self.connections.append((self._serial, backend))
            self._writers.add(b_writer)
            try:
                await _pipe_both(reader, writer, b_reader, b_writer)
            finally:
                self._writers.discard(b_writer)
                b_writer.close()
        finally:
            self._writers.discard(writer)
            writer.close()
            self._tasks.discard(task)


async def _pipe_both(r1: asyncio.StreamReader, w1: asyncio.StreamWriter, r2: asyncio.StreamReader, w2: asyncio.StreamWriter) -> None:
    """Copy both ways until either side closes (then both are closed: a cut, not a half-close)."""

    async def copy(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        try:
            while data := await src.read(65536):
                dst.write(data)
                await dst.drain()
        except (ConnectionError, OSError):
            pass

    tasks = [asyncio.create_task(copy(r1, w2)), asyncio.create_task(copy(r2, w1))]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


# ---------------------------------------------------------------- WebSocket frames
def decode_frame(payload: str | bytes) -> Any:
    if isinstance(payload, (bytes, bytearray)):
        return msgpack.unpackb(payload, raw=False, strict_map_key=False)
    return json.loads(payload)


class FrameLog:
    """Frames of every WebSocket a page opens: ``sent`` / ``received`` lists of
    ``(socket number, kind, message)`` with kind ``"binary"`` or ``"text"``."""

    def __init__(self, page: Any):
        self.sockets: list[str] = []
        self.sent: list[tuple[int, str, Any]] = []
        self.received: list[tuple[int, str, Any]] = []
        page.on("websocket", self._on_socket)

    def _on_socket(self, ws: Any) -> None:
        n = len(self.sockets)
        self.sockets.append(ws.url)
        ws.on("framesent", lambda payload: self._add(self.sent, n, payload))
        ws.on("framereceived", lambda payload: self._add(self.received, n, payload))

    @staticmethod
    def _add(into: list[tuple[int, str, Any]], n: int, payload: str | bytes) -> None:
        kind = "binary" if isinstance(payload, (bytes, bytearray)) else "text"
        try:
            msg = decode_frame(payload)
        except Exception:  # noqa: BLE001 - recorded as undecodable
            msg = {"t": "?undecodable", "raw": repr(payload)[:200]}
        into.append((n, kind, msg))

    def sent_of(self, t: str) -> list[dict[str, Any]]:
        return [m for _, _, m in self.sent if isinstance(m, dict) and m.get("t") == t]

    def received_of(self, t: str) -> list[dict[str, Any]]:
        return [m for _, _, m in self.received if isinstance(m, dict) and m.get("t") == t]


# ---------------------------------------------------------------- keyboard
async def focused_matches(page: Any, selector: str) -> bool:
    return await page.evaluate("(sel) => !!document.activeElement && document.activeElement.matches(sel)", selector)


async def tab_to(page: Any, selector: str, *, backwards: bool = False, max_steps: int = 80) -> None:
    """Press Tab (Shift+Tab with ``backwards``) until the focused element matches ``selector``."""
    key = "Shift+Tab" if backwards else "Tab"
    for _ in range(max_steps):
        if await focused_matches(page, selector):
            return
        await page.keyboard.press(key)
    focused = await page.evaluate("() => document.activeElement && document.activeElement.outerHTML.slice(0, 200)")
    raise AssertionError(f"{selector!r} not reached with {key} in {max_steps} presses (focus on {focused})")


# ---------------------------------------------------------------- the exam definition
class QuestionBook:
    """The questions of an exam definition by prompt (prompts are unique in the test exams)."""

    def __init__(self, exam: dict[str, Any]):
        self.exam = exam
        self.by_prompt = {q["prompt"]: q for q in exam["questions"]}
        assert len(self.by_prompt) == len(exam["questions"]), "prompts must be unique"

    async def shown(self, page: Any, timeout: float = 5.0) -> dict[str, Any]:
        """The definition of the question the page shows now (waits while it is still loading)."""
        end = asyncio.get_running_loop().time() + timeout
        while True:
            text = (await page.locator("#prompt").text_content() or "").strip()
            if text in self.by_prompt:
                return self.by_prompt[text]
            if asyncio.get_running_loop().time() > end:
                raise AssertionError(f"the page shows an unknown prompt: {text!r}")
            await asyncio.sleep(0.05)


async def option_ids(page: Any) -> list[str]:
    """The option ids of the current question in the order the page shows them."""
    return await page.eval_on_selector_all("#answer-body input", "els => els.map(e => e.value)")


async def answer_with_mouse(page: Any, q: dict[str, Any], value: Any) -> None:
    """Answer the question on screen with ordinary pointer and typing actions."""
    kind = q["type"]
    body = page.locator("#answer-body")
    if kind == "single":
        await body.locator(f'input[type=radio][value="{value}"]').check()
    elif kind == "multiple":
        for box in await body.locator("input[type=checkbox]").all():
            want = await box.get_attribute("value") in value
            if await box.is_checked() != want:
                await box.set_checked(want)
    elif kind == "true_false":
        await body.locator(f'input[type=radio][value="{"true" if value else "false"}"]').check()
    elif kind == "numeric":
        await page.locator("#answer-numeric").fill(fmt_num(value))
        await page.locator("#answer-numeric").blur()
    elif kind == "text":
        await page.locator("#answer-text").fill(value)
        await page.locator("#answer-text").blur()
    else:  # pragma: no cover
        raise AssertionError(kind)


async def shown_value(page: Any, q: dict[str, Any]) -> Any:
    """The value the inputs of the question on screen hold (None when empty)."""
    kind = q["type"]
    if kind in ("single", "true_false"):
        checked = await page.eval_on_selector_all("#answer-body input:checked", "els => els.map(e => e.value)")
        if not checked:
            return None
        return checked[0] if kind == "single" else checked[0] == "true"
    if kind == "multiple":
        return await page.eval_on_selector_all("#answer-body input:checked", "els => els.map(e => e.value)")
    if kind == "numeric":
        raw = await page.locator("#answer-numeric").input_value()
        return None if raw == "" else float(raw)
    raw = await page.locator("#answer-text").input_value()
    return raw or None


def fmt_num(n: Any) -> str:
    """Numbers as the page shows them (integers without a decimal point)."""
    if isinstance(n, float) and n.is_integer():
        n = int(n)
    return str(n)
