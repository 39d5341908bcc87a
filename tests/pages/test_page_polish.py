"""The pages' nits, measured in a real Chromium against real engine nodes.

Numbers read the way a person reads them, the question navigator never shows
half a row, its states and legend meet WCAG AA contrast, a refusal is
explained once, a proctor without a ``name`` claim is not shown as an opaque
id, and the proctor table reflows on a phone with its actions on screen.
Everything is measured from the rendered page (``getComputedStyle``, element
boxes), never from the CSS source. Screenshots: ``test-artifacts/pages/polish-*.png``.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

from examwire.client import ExamClient, ProctorClient, attempt_url
from tests.e2e.conftest import make_exam, right
from tests.pages.exam_support import TcpProxy, answer_with_mouse, tab_to
from tests.pages.page_checks import (
    STYLE_OF_JS,
    contrast,
    inset_rings,
    marker_stands_out,
    parse_color,
    visible_text,
)

PHONE = {"width": 375, "height": 800}
ZOOM_200 = {"width": 720, "height": 450}  # a 1440x900 window at 200 % zoom, in CSS pixels
DESKTOP = {"width": 1440, "height": 900}


def exam_url(base: str, exam_id: str, token: str | None = None) -> str:
    return f"{base}/exam/{exam_id}" + (f"#token={token}" if token else "")


def proctor_url(base: str, token: str, exam_id: str) -> str:
    return f"{base}/proctor#token={token}&exam={exam_id}"


async def start_exam(page: Any, expect: Any) -> None:
    await expect(page.locator("#view")).to_have_attribute("data-view", "ready", timeout=8000)
    await page.locator("#start").click()
    await expect(page.locator("#view")).to_have_attribute("data-view", "question")
    await expect(page.locator("#answer-fs")).to_be_visible()


async def go_to(page: Any, expect: Any, index: int) -> None:
    await page.locator(f'#navigator button[data-index="{index}"]').click()
    await expect(page.locator("#q-pos")).to_have_text(str(index + 1))


# ================================================================ scores and points
def rounding_exam(exam_id: str) -> dict[str, Any]:
    """Points 2 (partial, three right options: thirds), 2.5 and 1/3: max 4.8333…"""
    opts = [{"id": o, "text": f"option {o}"} for o in "abcde"]
    return {
        "id": exam_id, "title": "Rounding", "duration_s": 600, "navigation": "free",
        "shuffle_questions": False, "shuffle_options": False, "show_result": True, "pass_percent": 50,
        "questions": [
            {"id": "r1", "type": "multiple", "prompt": "Thirds", "points": 2, "scoring": "partial",
             "options": opts, "answer": ["a", "b", "c"]},
            {"id": "r2", "type": "single", "prompt": "Two and a half", "points": 2.5, "options": opts, "answer": "a"},
            {"id": "r3", "type": "true_false", "prompt": "A third", "points": 1 / 3, "answer": True},
        ],
    }


def test_scores_and_points_read_like_a_person(make_node, put_exam, make_token, http_json, arun, launch_browser,
                                              watch_page, expect, shoot):
    node = make_node()
    exam = rounding_exam("rnd")
    put_exam(node, exam)
    token = make_token("rnd-cand", name="Ada Lovelace", exams=["rnd"])
    proctor = make_token("rnd-proc", "proctor", name="Pat Proctor", exams=["rnd"])

    async def body() -> None:
        async with launch_browser() as context:
            page = await context.new_page()
            probe = watch_page(page)
            await page.goto(exam_url(node.base_url, "rnd", token))
            await start_exam(page, expect)
            dash = await context.new_page()
            dash_probe = watch_page(dash)
            await dash.goto(proctor_url(node.base_url, proctor, "rnd"))
            await expect(dash.locator("#conn-status")).to_have_attribute("data-state", "live", timeout=5000)

            # points of a question: "2 points", "2.5 points", "0.33 points" (never 0.3333)
            await expect(page.locator("#q-meta")).to_have_text("2 points")
            await answer_with_mouse(page, exam["questions"][0], ["a"])  # one third of 2 points
            await expect(page.locator("#save-status")).to_have_text("saved")
            await go_to(page, expect, 1)
            await expect(page.locator("#q-meta")).to_have_text("2.5 points")
            await answer_with_mouse(page, exam["questions"][1], "a")
            await expect(page.locator("#save-status")).to_have_text("saved")
            await go_to(page, expect, 2)
            await expect(page.locator("#q-meta")).to_have_text("0.33 points")

            await page.locator("#submit").click()
            await page.locator("#submit-confirm").click()
            await expect(page.locator("#view")).to_have_attribute("data-view", "result", timeout=5000)
            attempt = (await page.locator("#attempt").text_content() or "").strip()
            status, record = await asyncio.to_thread(http_json, "GET", f"{node.base_url}/v1/attempts/{attempt}", token=token)
            assert status == 200, record
            assert abs(record["score"] - 19 / 6) < 1e-3 and abs(record["max_score"] - 29 / 6) < 1e-3, record

            # the result: at most two decimals, trailing zeros dropped; percent with one
            await expect(page.locator("#score")).to_have_text("3.17 / 4.83")
            await expect(page.locator("#percent")).to_have_text("65.5 %")
            await shoot(page, "polish-result-rounded.png")

            # the proctor's row of the finished attempt: the score the same way, then the percent
            row = dash.locator(f'tr[data-attempt="{attempt}"]')
            await expect(row.locator(".state-extra")).to_have_text("3.17 points · 65.5 %", timeout=5000)
            # a number and its unit are never wrapped apart (the State column is narrow)
            lines = await row.locator(".state-extra").evaluate("""(e) => {
              const text = e.firstChild.textContent;
              const out = {};
              for (const unit of ['points', '%']) {
                const m = text.match(unit === '%' ? /[0-9.]+\\s%/ : /[0-9.]+\\spoints/);
                const range = document.createRange();
                range.setStart(e.firstChild, m.index);
                range.setEnd(e.firstChild, m.index + m[0].length);
                out[unit] = new Set([...range.getClientRects()].map(r => Math.round(r.top))).size;
              }
              return out;
            }""")
            assert lines == {"points": 1, "%": 1}, f"a number wrapped apart from its unit: {lines}"
            text = await visible_text(dash)
            assert not re.search(r"\d\.\d{3,}", text), f"a long decimal on the dashboard: {text!r}"
            await shoot(dash, "polish-proctor-score.png")
            probe.assert_clean()
            dash_probe.assert_clean()

    arun(body(), timeout=60)


# ================================================================ the navigator never shows half a row
NAV_GEOMETRY_JS = """() => {
  const nav = document.getElementById('navigator');
  const r = nav.getBoundingClientRect();
  const top = r.top + nav.clientTop;
  const bottom = top + nav.clientHeight;      // the scrollport: the padding box, scrollbar excluded
  const left = r.left + nav.clientLeft;
  const right = left + nav.clientWidth;
  const cut = [];
  let shown = 0;
  for (const b of nav.querySelectorAll('button')) {
    const c = b.getBoundingClientRect();
    if (c.bottom <= top + 0.5 || c.top >= bottom - 0.5) continue;   // scrolled out of view
    if (c.top < top - 0.5 || c.bottom > bottom + 0.5 || c.left < left - 0.5 || c.right > right + 0.5) {
      cut.push({index: Number(b.dataset.index), top: c.top - top, bottom: c.bottom - top, port: bottom - top});
    } else {
      shown++;
    }
  }
  return {cut, shown, scrollTop: nav.scrollTop, scrollHeight: nav.scrollHeight, clientHeight: nav.clientHeight,
          top, bottom, left, right};
}"""

RING_JS = """(b) => {
  const nav = document.getElementById('navigator');
  const r = nav.getBoundingClientRect();
  const cs = getComputedStyle(b);
  const reach = (cs.outlineStyle === 'none' ? 0 : parseFloat(cs.outlineWidth)) + parseFloat(cs.outlineOffset);
  const c = b.getBoundingClientRect();
  const port = {top: r.top + nav.clientTop, left: r.left + nav.clientLeft};
  port.bottom = port.top + nav.clientHeight;
  port.right = port.left + nav.clientWidth;
  return {reach, focusVisible: b.matches(':focus-visible'),
          top: c.top - reach - port.top, left: c.left - reach - port.left,
          right: port.right - (c.right + reach), bottom: port.bottom - (c.bottom + reach)};
}"""


async def settle_scroll(page: Any) -> None:
    """Wait until the navigator's scroll position stops changing (smooth scrolling and snapping)."""
    last = None
    for _ in range(60):
        now = await page.evaluate("document.getElementById('navigator').scrollTop")
        if now == last:
            return
        last = now
        await asyncio.sleep(0.1)


async def assert_whole_rows(page: Any, where: str, *, must_scroll: bool) -> dict[str, Any]:
    await settle_scroll(page)
    box = await page.locator("#navigator").bounding_box()
    assert box is not None and box["height"] > 0, where
    g = await page.evaluate(NAV_GEOMETRY_JS)
    assert g["shown"] >= 2, (where, g)
    assert not g["cut"], f"{where}: cells cut by the navigator's edge: {g['cut'][:6]} (scrollTop {g['scrollTop']})"
    if must_scroll:
        assert g["scrollHeight"] > g["clientHeight"] + 1, f"{where}: the navigator does not scroll, nothing measured: {g}"
    return g


def test_navigator_never_shows_half_a_row(make_node, put_exam, make_token, arun, launch_browser, watch_page,
                                          expect, shoot):
    node = make_node()
    put_exam(node, make_exam("grid", 150, shuffle_questions=False))
    token = make_token("grid-cand", exams=["grid"])

    async def body() -> None:
        async with launch_browser() as context:
            page = await context.new_page()
            probe = watch_page(page)
            await page.goto(exam_url(node.base_url, "grid", token))
            await start_exam(page, expect)
            await expect(page.locator("#navigator button")).to_have_count(150)
            last = page.locator('#navigator button[data-index="149"]')
            await expect(last).to_have_attribute("aria-label", re.compile("not answered"))

            for name, size, scrolls in (("desktop", DESKTOP, True), ("zoom200", ZOOM_200, True), ("phone", PHONE, False)):
                await page.set_viewport_size(size)
                await page.evaluate("document.getElementById('navigator').scrollTop = 0")
                await assert_whole_rows(page, f"{name}, top", must_scroll=scrolls)
                await shoot(page, f"polish-navigator-{name}.png", full_page=False)
                if not scrolls:
                    overflow = await page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
                    assert overflow <= 0, f"{name}: the page scrolls sideways by {overflow}px"
                    continue
                # a wheel turn of an arbitrary distance, the far end, and a cell focused out of view
                await page.locator("#navigator").scroll_into_view_if_needed()
                nav_box = await page.locator("#navigator").bounding_box()
                await page.mouse.move(nav_box["x"] + nav_box["width"] / 2, nav_box["y"] + nav_box["height"] / 2)
                await page.mouse.wheel(0, 100)
                g = await assert_whole_rows(page, f"{name}, after a wheel turn", must_scroll=True)
                assert g["scrollTop"] > 0, g
                await page.evaluate("(n => n.scrollTop = n.scrollHeight)(document.getElementById('navigator'))")
                await assert_whole_rows(page, f"{name}, bottom", must_scroll=True)
                await page.evaluate("document.getElementById('navigator').scrollTop = 0; document.activeElement.blur()")
                await page.locator('#navigator button[data-index="100"]').focus()
                await assert_whole_rows(page, f"{name}, a cell focused out of view", must_scroll=True)
                focused = await page.locator('#navigator button[data-index="100"]').evaluate("""(b) => {
                  const nav = document.getElementById('navigator');
                  const port = nav.getBoundingClientRect(), c = b.getBoundingClientRect();
                  return {top: c.top - port.top, bottom: port.top + nav.clientHeight - c.bottom, scrollTop: nav.scrollTop};
                }""")
                assert focused["top"] >= 0 and focused["bottom"] >= 0, f"{name}: the focused cell is out of view: {focused}"
                await shoot(page, f"polish-navigator-{name}-scrolled.png", full_page=False)

            # moving on with Next past the last visible row brings the current cell into view
            await page.set_viewport_size(DESKTOP)
            await page.evaluate("document.getElementById('navigator').scrollTop = 0")
            g = await assert_whole_rows(page, "desktop, before Next", must_scroll=True)
            last_shown = g["shown"] - 1
            await go_to(page, expect, last_shown)
            for n in range(1, 4):
                await page.locator("#next").click()
                await expect(page.locator("#q-pos")).to_have_text(str(last_shown + n + 1))
            current = await page.locator('#navigator button[aria-current="step"]').evaluate("""(b) => {
              const nav = document.getElementById('navigator');
              const port = nav.getBoundingClientRect(), c = b.getBoundingClientRect();
              return {index: Number(b.dataset.index), top: c.top - port.top, bottom: port.top + nav.clientHeight - c.bottom};
            }""")
            assert current["index"] == last_shown + 3 and current["top"] >= 0 and current["bottom"] >= 0, (
                f"the current question's cell is out of the navigator's view: {current}")
            await assert_whole_rows(page, "desktop, after Next", must_scroll=True)

            # the keyboard focus ring of the first and last cell of the top row is not clipped
            await page.evaluate("document.getElementById('navigator').scrollTop = 0")
            cols = await page.evaluate("""() => {
              const bs = [...document.querySelectorAll('#navigator button')];
              const top = bs[0].getBoundingClientRect().top;
              return bs.filter(b => Math.abs(b.getBoundingClientRect().top - top) < 1).length;
            }""")
            for index in (0, cols - 1):
                await tab_to(page, f'#navigator button[data-index="{index}"]')
                ring = await page.locator(f'#navigator button[data-index="{index}"]').evaluate(RING_JS)
                assert ring["focusVisible"] and ring["reach"] > 0, ring
                clipped = {k: v for k, v in ring.items() if k in ("top", "left", "right", "bottom") and v < -0.5}
                assert not clipped, f"the focus ring of cell {index + 1} is clipped by the navigator: {ring}"
            await shoot(page, "polish-navigator-focus.png", full_page=False)
            probe.assert_clean()

    arun(body(), timeout=90)


# ================================================================ navigator states and legend: WCAG AA contrast
STATES_JS = """([selector, combos]) => {
  const b = document.querySelector(selector);
  const keep = {};
  const attrs = ['data-answered', 'data-flagged', 'data-saving', 'data-error', 'aria-current'];
  for (const a of attrs) keep[a] = b.getAttribute(a);
  const out = [];
  const pick = %s;
  for (const c of combos) {
    b.dataset.answered = String(c.answered);
    b.dataset.flagged = String(c.flagged);
    b.dataset.saving = String(c.saving);
    b.dataset.error = String(c.error);
    if (c.current) b.setAttribute('aria-current', 'step'); else b.removeAttribute('aria-current');
    out.push({combo: c, style: pick(b)});
  }
  for (const a of attrs) { if (keep[a] === null) b.removeAttribute(a); else b.setAttribute(a, keep[a]); }
  return out;
}""" % STYLE_OF_JS

LEGEND_JS = """() => [...document.querySelectorAll('.nav-legend li')].map(li => ({
  label: li.textContent.trim(),
  text: getComputedStyle(li).color,
  swatch: (%s)(li.querySelector('.swatch')),
}))""" % STYLE_OF_JS


def state_name(c: dict[str, bool]) -> str:
    on = [k for k in ("answered", "flagged", "current", "saving", "error") if c[k]]
    return "+".join(on) or "unanswered"


def check_cell_states(states: list[dict[str, Any]], reference: list[dict[str, Any]], card: str, scheme: str) -> list[str]:
    """Every WCAG AA failure among the navigator cell ``states`` (an empty list when all pass);
    ``reference`` holds every combination, for the answered / unanswered comparison."""
    bad: list[str] = []
    by = {tuple(sorted(s["combo"].items())): s["style"] for s in reference}

    def style(**c: bool) -> dict[str, Any]:
        return by[tuple(sorted(c.items()))]

    for s in states:
        c, st = s["combo"], s["style"]
        name = f"{scheme} {state_name(c)}"
        fill = st["bg"]
        # the number: text contrast 4.5:1 against the cell's own fill
        ratio = contrast(st["color"], fill, card)
        if ratio < 4.5:
            bad.append(f"{name}: number {st['color']} on {fill} is {ratio:.2f}:1 (< 4.5)")
        # the cell itself: its edge or its fill 3:1 against the card around it
        edge = max(contrast(st["border"][0], card, card), contrast(fill, card, card))
        if edge < 3:
            bad.append(f"{name}: cell boundary {st['border'][0]} / fill {fill} on card {card} is {edge:.2f}:1 (< 3)")
        # current: an inset ring of 2 px or more, 3:1 against the fill; none when not current
        rings = inset_rings(st["shadow"])
        if c["current"]:
            best = max((contrast(r, fill, card) for r in rings), default=0.0)
            if best < 3:
                bad.append(f"{name}: the current-question ring ({st['shadow']}) on {fill} is {best:.2f}:1 (< 3)")
        elif rings:
            bad.append(f"{name}: a ring like the current question's ({st['shadow']})")
        # flagged: a marker (::after) that stands out; saving: a dot (::before) that stands out
        for flag, pseudo in (("flagged", "after"), ("saving", "before")):
            mark = st[pseudo]
            if c[flag]:
                if mark is None:
                    bad.append(f"{name}: no {flag} marker")
                    continue
                ok, why = marker_stands_out(mark, fill, card)
                if not ok:
                    bad.append(f"{name}: the {flag} marker does not stand out: {why}")
            elif mark is not None:
                bad.append(f"{name}: a {flag} marker on a cell that is not {flag}")
        # answered vs unanswered (same other states, not in error): fills 3:1 apart
        if c["answered"] and not c["error"]:
            other = style(**{**c, "answered": False})
            ratio = contrast(fill, other["bg"], card)
            if ratio < 3:
                bad.append(f"{name}: answered fill {fill} vs unanswered {other['bg']} is {ratio:.2f}:1 (< 3)")
    return bad


def check_legend(legend: list[dict[str, Any]], states: list[dict[str, Any]], card: str, scheme: str) -> list[str]:
    bad: list[str] = []
    cell = {state_name(s["combo"]): s["style"] for s in states}
    items = {item["label"]: item for item in legend}
    for label in ("Not answered", "Answered", "Flagged", "Current"):
        if label not in items:
            bad.append(f"{scheme}: no legend entry {label!r} (entries: {list(items)})")
    for item in legend:
        ratio = contrast(item["text"], card, card)
        if ratio < 4.5:
            bad.append(f"{scheme} legend {item['label']!r}: text {item['text']} is {ratio:.2f}:1 (< 4.5)")
    if bad:
        return bad
    answered, unanswered = items["Answered"]["swatch"], items["Not answered"]["swatch"]
    # each swatch looks like the cell it explains
    for label, key in (("Answered", "answered"), ("Not answered", "unanswered")):
        sw, c = items[label]["swatch"], cell[key]
        if parse_color(sw["bg"]) != parse_color(c["bg"]):
            bad.append(f"{scheme} legend {label!r}: swatch fill {sw['bg']} is not the cell's {c['bg']}")
    ratio = contrast(answered["bg"], unanswered["bg"], card)
    if ratio < 3:
        bad.append(f"{scheme} legend: Answered {answered['bg']} vs Not answered {unanswered['bg']} is {ratio:.2f}:1 (< 3)")
    for label, sw in (("Answered", answered), ("Not answered", unanswered)):
        edge = max(contrast(sw["border"][0], card, card), contrast(sw["bg"], card, card))
        if edge < 3:
            bad.append(f"{scheme} legend {label!r}: swatch {sw['border'][0]} / {sw['bg']} on {card} is {edge:.2f}:1 (< 3)")
    flagged = items["Flagged"]["swatch"]
    if flagged["after"] is None:
        bad.append(f"{scheme} legend 'Flagged': the swatch has no marker like the cells'")
    else:
        ok, why = marker_stands_out(flagged["after"], flagged["bg"], card)
        if not ok:
            bad.append(f"{scheme} legend 'Flagged': {why}")
    current = items["Current"]["swatch"]
    best = max((contrast(r, current["bg"], card) for r in inset_rings(current["shadow"])), default=0.0)
    if best < 3:
        bad.append(f"{scheme} legend 'Current': ring ({current['shadow']}) on {current['bg']} is {best:.2f}:1 (< 3)")
    return bad


def all_combos() -> list[dict[str, bool]]:
    out = []
    for n in range(32):
        c = {"answered": bool(n & 1), "flagged": bool(n & 2), "current": bool(n & 4),
             "saving": bool(n & 8), "error": bool(n & 16)}
        if not (c["saving"] and c["error"]):  # a question is saving or refused, never both
            out.append(c)
    return out


def test_navigator_states_and_legend_meet_wcag_aa(make_node, put_exam, make_token, arun, launch_browser, watch_page,
                                                  expect, shoot):
    node = make_node()
    exam = make_exam("ctr", 8, shuffle_questions=False)
    put_exam(node, exam)
    qs = exam["questions"]
    token = make_token("ctr-cand", exams=["ctr"])

    async def body() -> None:
        async with launch_browser() as context:
            page = await context.new_page()
            probe = watch_page(page)
            await page.goto(exam_url(node.base_url, "ctr", token))
            await start_exam(page, expect)
            # real states, made by the candidate: answered, flagged, answered+flagged, current, saving
            await answer_with_mouse(page, qs[0], right(qs[0]))
            await expect(page.locator("#save-status")).to_have_text("saved")
            await go_to(page, expect, 1)
            await page.locator("#flag").click()
            await go_to(page, expect, 2)
            await answer_with_mouse(page, qs[2], right(qs[2]))
            await page.locator("#flag").click()
            await expect(page.locator("#save-status")).to_have_text("saved")
            await go_to(page, expect, 3)
            await context.set_offline(True)
            await go_to(page, expect, 4)
            await answer_with_mouse(page, qs[4], right(qs[4]))
            nav = page.locator("#navigator button")
            await expect(nav.nth(4)).to_have_attribute("data-saving", "true")
            await expect(nav.nth(0)).to_have_attribute("data-answered", "true")
            await expect(nav.nth(1)).to_have_attribute("data-flagged", "true")
            await expect(nav.nth(4)).to_have_attribute("aria-current", "step")
            await page.mouse.move(0, 0)  # no cell under the pointer (hover is not a state measured here)
            await shoot(page, "polish-navigator-states.png", full_page=False)

            failures: list[str] = []
            for scheme in ("light", "dark"):
                await page.emulate_media(color_scheme=scheme)
                card = await page.locator(".nav-card").evaluate("e => getComputedStyle(e).backgroundColor")
                real = []
                for i in range(8):
                    b = nav.nth(i)
                    combo = {
                        "answered": await b.get_attribute("data-answered") == "true",
                        "flagged": await b.get_attribute("data-flagged") == "true",
                        "current": await b.get_attribute("aria-current") == "step",
                        "saving": await b.get_attribute("data-saving") == "true",
                        "error": await b.get_attribute("data-error") == "true",
                    }
                    real.append({"combo": combo, "style": await b.evaluate(STYLE_OF_JS)})
                # every combination, on the last cell (attributes set and restored in one synchronous step)
                synthetic = await page.evaluate(STATES_JS, ['#navigator button[data-index="7"]', all_combos()])
                failures += check_cell_states(synthetic, synthetic, card, scheme)
                failures += [f"(as rendered) {f}" for f in check_cell_states(real, synthetic, card, scheme)]
                legend = await page.evaluate(LEGEND_JS)
                failures += check_legend(legend, synthetic, card, scheme)
                await shoot(page, f"polish-navigator-states-{scheme}.png", full_page=False)
            await context.set_offline(False)
            assert not failures, "WCAG AA contrast failures:\n  " + "\n  ".join(dict.fromkeys(failures))
            probe.assert_clean()

    arun(body(), timeout=60)


# ================================================================ a refusal is explained once
def count(text: str, phrase: str) -> int:
    return len(re.findall(re.escape(phrase), text, re.IGNORECASE))


def test_refusals_are_explained_once(make_node, put_exam, make_token, arun, launch_browser, watch_page, expect, shoot):
    node = make_node()
    other = make_node(EXAMWIRE_JWT_SECRET="a-different-secret-so-tokens-are-refused-0123456789")
    put_exam(node, make_exam("once", 2, shuffle_questions=False))
    cand = make_token("once-cand")  # no exams claim: any exam id reaches the exam lookup
    proctor = make_token("once-proc", "proctor")

    async def body() -> None:
        proxy = await TcpProxy([("127.0.0.1", node.port)]).start()
        try:
            async with launch_browser() as context:
                # the candidate page, unknown exam (4404)
                page = await context.new_page()
                probe = watch_page(page)
                await page.goto(exam_url(node.base_url, "no-such-exam", cand))
                await expect(page.locator("#view")).to_have_attribute("data-view", "problem", timeout=5000)
                await expect(page.locator("#problem-title")).to_be_focused()
                text = await visible_text(page)
                assert count(text, "no such exam") == 1, text
                assert count(text, "There is no exam with this id") == 1, text
                await shoot(page, "polish-exam-4404.png")

                # a token for other exams (4403)
                await page.goto(exam_url(node.base_url, "once", make_token("once-cand", exams=["elsewhere"])))
                await expect(page.locator("#view")).to_have_attribute("data-view", "problem", timeout=5000)
                text = await visible_text(page)
                assert count(text, "may not be used for this exam") == 1, text

                # an address that names no exam
                await page.goto(f"{node.base_url}/exam/not%20an%20id")
                await expect(page.locator("#view")).to_have_attribute("data-view", "problem")
                text = await visible_text(page)
                assert count(text, "does not name an exam") == 1, text
                probe.assert_clean()

                # refused on a reconnect after a welcome (4401): said in the token form, not also in a banner
                page = await context.new_page()
                probe = watch_page(page)
                await page.goto(exam_url(proxy.base_url, "once", cand))
                await expect(page.locator("#view")).to_have_attribute("data-view", "ready", timeout=8000)
                proxy.backends = [("127.0.0.1", other.port)]  # the same exam behind a node that refuses the token
                await context.set_offline(True)
                await expect(page.locator("#banner")).to_be_visible()
                await context.set_offline(False)
                await expect(page.locator("#view")).to_have_attribute("data-view", "token", timeout=8000)
                await expect(page.locator("#token-error")).to_contain_text("refused")
                text = await visible_text(page)
                assert count(text, "Your access token was refused") == 1, text
                await shoot(page, "polish-exam-4401-after-welcome.png")
                probe.assert_clean()

                # the dashboard, unknown exam (4404) and a token for other exams (4403)
                dash = await context.new_page()
                dash_probe = watch_page(dash)
                await dash.goto(proctor_url(node.base_url, proctor, "no-such-exam"))
                await expect(dash.locator("#conn-status")).to_have_attribute("data-state", "error", timeout=5000)
                await expect(dash.locator("#conn-status")).to_contain_text("4404")
                await expect(dash.locator("#fatal")).to_be_visible()
                text = await visible_text(dash)
                assert count(text, "no such exam") == 1, text
                await shoot(dash, "polish-proctor-4404.png")
                await dash.close()
                dash = await context.new_page()  # (a new fragment alone would not reload the page)
                dash_probe = watch_page(dash)
                await dash.goto(proctor_url(node.base_url, make_token("p2", "proctor", exams=["elsewhere"]), "once"))
                await expect(dash.locator("#conn-status")).to_have_attribute("data-state", "error", timeout=5000)
                await expect(dash.locator("#fatal")).to_be_visible()
                text = await visible_text(dash)
                assert count(text, "may not proctor this exam") == 1, text
                assert count(text, "not allowed") <= 1, text
                dash_probe.assert_clean()
        finally:
            await proxy.close()

    arun(body(), timeout=60)


# ================================================================ a proctor token without a name
def test_proctor_without_a_name_claim_is_not_shown_as_an_opaque_id(make_node, put_exam, make_token, arun,
                                                                   launch_browser, watch_page, expect, shoot):
    node = make_node()
    put_exam(node, make_exam("anon", 3, shuffle_questions=False))
    cand = make_token("anon-cand", name="Grace Hopper", exams=["anon"])
    nameless = make_token("P1", "proctor", exams=["anon"])  # no `name` claim

    async def body() -> None:
        proctor = ProctorClient(f"{node.ws_url}/v1/exams/anon/proctor", nameless)
        async with launch_browser() as context:
            page = await context.new_page()
            probe = watch_page(page)
            await page.goto(exam_url(node.base_url, "anon", cand))
            await start_exam(page, expect)
            attempt = (await page.locator("#attempt").text_content() or "").strip()
            await proctor.connect()
            await proctor.hello()
            try:
                ack = await proctor.request("message", attempt=attempt, text="Five minutes to go.")
                assert ack["t"] == "ack", ack
                notice = page.locator("#notice .notice")
                await expect(notice).to_contain_text("Five minutes to go.")
                await expect(notice.locator(".notice__from")).to_have_text("Message from your proctor")
                shown = await notice.inner_text()
                assert "P1" not in shown, shown
                dismiss = notice.get_by_role("button")
                await expect(dismiss).to_have_attribute("aria-label", "Dismiss the message from your proctor")
                await shoot(page, "polish-notice-nameless.png", full_page=False)
            finally:
                await proctor.close()

            # the dashboard of that proctor: the id is labelled as an id, never shown as a name
            dash = await context.new_page()
            dash_probe = watch_page(dash)
            await dash.goto(proctor_url(node.base_url, nameless, "anon"))
            await expect(dash.locator("#conn-status")).to_have_attribute("data-state", "live", timeout=5000)
            await expect(dash.locator("#who")).to_have_text("User P1 · proctor")
            # a proctor with a name is shown by name
            await shoot(dash, "polish-proctor-nameless.png", full_page=False)
            dash_probe.assert_clean()
            await dash.close()
            named = make_token("P2", "proctor", name="Pat Proctor", exams=["anon"])
            dash = await context.new_page()
            dash_probe = watch_page(dash)
            await dash.goto(proctor_url(node.base_url, named, "anon"))
            await expect(dash.locator("#who")).to_have_text("Pat Proctor · proctor")
            probe.assert_clean()
            dash_probe.assert_clean()

    arun(body(), timeout=60)


# ================================================================ the proctor table on a phone
ROWS_FIT_JS = """() => {
  const vw = window.innerWidth;
  const rows = [...document.querySelectorAll('#rows tr')].map(tr => {
    const buttons = [...tr.querySelectorAll('button[data-action]')].filter(b => b.checkVisibility());
    return {
      attempt: tr.dataset.attempt,
      row: (r => ({left: r.left, right: r.right}))(tr.getBoundingClientRect()),
      buttons: buttons.map(b => {
        const r = b.getBoundingClientRect();
        return {action: b.dataset.action, left: r.left, right: r.right, width: r.width};
      }),
    };
  });
  const wrap = document.querySelector('.table-wrap');
  return {vw, page: document.documentElement.scrollWidth, wrap: wrap.scrollWidth - wrap.clientWidth, rows};
}"""

async def ax_roles(page: Any) -> dict[str, int]:
    """Role counts of Chromium's own accessibility tree (over CDP), which follows the CSS display."""
    cdp = await page.context.new_cdp_session(page)
    try:
        tree = await cdp.send("Accessibility.getFullAXTree")
    finally:
        await cdp.detach()
    roles: dict[str, int] = {}
    for node in tree["nodes"]:
        if node.get("ignored"):
            continue
        role = (node.get("role") or {}).get("value")
        if role:
            roles[role] = roles.get(role, 0) + 1
    return roles


def test_proctor_table_reflows_on_a_phone_with_actions_on_screen(make_node, put_exam, make_token, arun,
                                                                 launch_browser, watch_page, expect, shoot):
    node = make_node()
    put_exam(node, make_exam("cards", 6, shuffle_questions=False))
    proctor = make_token("proc-cards", "proctor", name="Pat Proctor", exams=["cards"])

    async def body() -> None:
        clients = []
        try:
            names = ["Maximiliana Wolfeschlegelsteinhausenbergerdorff", "Bob Ross", "Zed Shaw"]
            for i, name in enumerate(names):
                c = ExamClient(attempt_url(node.ws_url, "cards"), make_token(f"cards-{i}", name=name, exams=["cards"]))
                await c.connect()
                await c.hello()
                if i < 2:
                    await c.start()
                clients.append(c)
            async with launch_browser(viewport=PHONE) as context:
                page = await context.new_page()
                probe = watch_page(page)
                await page.goto(proctor_url(node.base_url, proctor, "cards"))
                await expect(page.locator("#conn-status")).to_have_attribute("data-state", "live", timeout=5000)
                await expect(page.locator("#rows tr")).to_have_count(3)
                await expect(page.locator("#count-active")).to_have_text("2")

                for name, size in (("phone", PHONE), ("zoom200", ZOOM_200), ("narrow-desktop", {"width": 1024, "height": 768})):
                    await page.set_viewport_size(size)
                    await page.evaluate("window.scrollTo(0, 0)")
                    fit = await page.evaluate(ROWS_FIT_JS)
                    assert fit["page"] <= fit["vw"], f"{name}: the page scrolls sideways ({fit['page']} > {fit['vw']})"
                    wrap_box = await page.locator(".table-wrap").bounding_box()
                    assert wrap_box is not None
                    right_edge = min(fit["vw"], wrap_box["x"] + wrap_box["width"])
                    for row in fit["rows"]:
                        assert row["buttons"], row
                        for b in row["buttons"]:
                            assert b["width"] > 0 and b["left"] >= -0.5 and b["right"] <= right_edge + 0.5, (
                                f"{name}: the {b['action']} button of {row['attempt']} is off screen: {b} "
                                f"(visible up to {right_edge})")
                    if name != "narrow-desktop":
                        assert fit["wrap"] <= 0, f"{name}: the table scrolls sideways inside its box by {fit['wrap']}px"
                    await shoot(page, f"polish-proctor-{name}.png")

                # on the phone: labelled values, the sort controls and the actions work from the keyboard
                await page.set_viewport_size(PHONE)
                row = page.locator("#rows tr").filter(has_text="Bob Ross")
                label = await row.locator('[data-col="left"]').evaluate("td => getComputedStyle(td, '::before').content")
                assert "Time left" in label, label
                sort_state = page.locator('th[data-sort="state"] button')
                await expect(sort_state).to_be_visible()
                await tab_to(page, 'th[data-sort="state"] button')
                await page.keyboard.press("Enter")
                await expect(page.locator('th[data-sort="state"]')).to_have_attribute("aria-sort", "ascending")
                await tab_to(page, f'tr[data-attempt="{await row.get_attribute("data-attempt")}"] button[data-action="pause"]')
                mark = clients[1].mark()
                await page.keyboard.press("Enter")
                await clients[1].wait_for("state", 3, since=mark, pred=lambda m: m.get("state") == "paused")
                await expect(row.locator('[data-col="state"]')).to_contain_text("paused")
                await shoot(page, "polish-proctor-phone-paused.png")

                # screen readers still get a table: rows, column headers and cells
                roles = await ax_roles(page)
                assert roles.get("table", 0) >= 1 and roles.get("row", 0) >= 4, roles
                assert roles.get("columnheader", 0) >= 8 and roles.get("cell", 0) >= 27, roles
                probe.assert_clean()
        finally:
            for c in clients:
                await c.close()

    arun(body(), timeout=90)
