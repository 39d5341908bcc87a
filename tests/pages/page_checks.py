"""Measuring helpers for the page tests: colours and WCAG contrast, visible text, boxes.

``parse_color``      a computed CSS colour (``rgb()``, ``rgba()``, ``color(srgb …)``) -> RGBA floats.
``contrast``         the WCAG 2 contrast ratio of two colours (alpha composited over ``base``).
``colors_in``        every colour named in a computed ``box-shadow`` / ``filter`` value.
``inset_rings``      the colours of ``inset`` box-shadow rings at least ``min_px`` wide.
``visible_text``     the text a sighted user sees (hidden, collapsed and 1-px clipped text left out).
``STYLE_OF_JS``      the computed style of an element and of its ``::before`` / ``::after``.
"""

from __future__ import annotations

import re
from typing import Any

RGBA = tuple[float, float, float, float]

_NUM = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:e[-+]?\d+)?"
_RGB = re.compile(rf"rgba?\(\s*({_NUM})[,\s]+({_NUM})[,\s]+({_NUM})(?:\s*[,/]\s*({_NUM}%?))?\s*\)", re.I)
_SRGB = re.compile(rf"color\(\s*srgb\s+({_NUM})\s+({_NUM})\s+({_NUM})(?:\s*/\s*({_NUM}%?))?\s*\)", re.I)
_ANY_COLOR = re.compile(r"(?:rgba?|color)\([^()]*\)", re.I)


def _alpha(raw: str | None) -> float:
    if raw is None:
        return 1.0
    return float(raw[:-1]) / 100 if raw.endswith("%") else float(raw)


def parse_color(text: str) -> RGBA:
    text = text.strip()
    if text == "transparent":
        return (0.0, 0.0, 0.0, 0.0)
    m = _RGB.fullmatch(text)
    if m:
        r, g, b = (float(x) / 255 for x in m.groups()[:3])
        return (r, g, b, _alpha(m.group(4)))
    m = _SRGB.fullmatch(text)
    if m:
        r, g, b = (float(x) for x in m.groups()[:3])
        return (r, g, b, _alpha(m.group(4)))
    raise AssertionError(f"unparsed colour {text!r}")


def over(fg: RGBA, bg: RGBA) -> RGBA:
    """``fg`` composited over an opaque ``bg``."""
    a = fg[3]
    return (fg[0] * a + bg[0] * (1 - a), fg[1] * a + bg[1] * (1 - a), fg[2] * a + bg[2] * (1 - a), 1.0)


def luminance(c: RGBA) -> float:
    def lin(v: float) -> float:
        return v / 12.92 if v <= 0.04045 else ((v + 0.055) / 1.055) ** 2.4

    return 0.2126 * lin(c[0]) + 0.7152 * lin(c[1]) + 0.0722 * lin(c[2])


def contrast(a: str | RGBA, b: str | RGBA, base: str | RGBA = (1.0, 1.0, 1.0, 1.0)) -> float:
    """WCAG 2 contrast ratio; translucent colours are composited over ``base`` (``b`` first, then ``a`` over ``b``)."""
    ca = parse_color(a) if isinstance(a, str) else a
    cb = parse_color(b) if isinstance(b, str) else b
    cbase = parse_color(base) if isinstance(base, str) else base
    cb = over(cb, cbase)
    ca = over(ca, cb)
    la, lb = luminance(ca), luminance(cb)
    hi, lo = max(la, lb), min(la, lb)
    return (hi + 0.05) / (lo + 0.05)


def is_transparent(color: str) -> bool:
    return parse_color(color)[3] == 0


def colors_in(value: str | None) -> list[str]:
    if not value or value == "none":
        return []
    return [c for c in _ANY_COLOR.findall(value) if not is_transparent(c)]


def _layers(value: str) -> list[str]:
    """Split a computed multi-layer value on the commas outside parentheses."""
    out, depth, cur = [], 0, ""
    for ch in value:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            out.append(cur.strip())
            cur = ""
        else:
            cur += ch
    if cur.strip():
        out.append(cur.strip())
    return out


def inset_rings(box_shadow: str | None, min_px: float = 2.0) -> list[str]:
    """Colours of the ``inset`` box-shadow layers that draw a ring at least ``min_px`` wide."""
    if not box_shadow or box_shadow == "none":
        return []
    rings = []
    for layer in _layers(box_shadow):
        if "inset" not in layer:
            continue
        colors = _ANY_COLOR.findall(layer)
        lengths = [float(x) for x in re.findall(rf"({_NUM})px", _ANY_COLOR.sub("", layer))]
        # <offset-x> <offset-y> <blur> <spread>
        spread = lengths[3] if len(lengths) >= 4 else 0.0
        if colors and spread >= min_px and not is_transparent(colors[0]):
            rings.append(colors[0])
    return rings


VISIBLE_TEXT_JS = """() => {
  const parts = [];
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  while (walker.nextNode()) {
    const node = walker.currentNode;
    const owner = node.parentElement;
    if (!owner || !node.textContent.trim()) continue;
    if (!owner.checkVisibility({ checkOpacity: true, checkVisibilityCSS: true })) continue;
    const r = owner.getBoundingClientRect();
    if (r.width <= 1 || r.height <= 1) continue;
    parts.push(node.textContent.trim());
  }
  return parts.join('\\n');
}"""


async def visible_text(page: Any) -> str:
    return await page.evaluate(VISIBLE_TEXT_JS)


STYLE_OF_JS = """(el) => {
  const pick = (cs) => ({
    bg: cs.backgroundColor, color: cs.color, opacity: cs.opacity,
    border: [cs.borderTopColor, cs.borderRightColor, cs.borderBottomColor, cs.borderLeftColor],
    borderWidth: [cs.borderTopWidth, cs.borderRightWidth, cs.borderBottomWidth, cs.borderLeftWidth].map(parseFloat),
    shadow: cs.boxShadow, filter: cs.filter, content: cs.content, display: cs.display,
  });
  const style = pick(getComputedStyle(el));
  for (const p of ['before', 'after']) {
    const cs = getComputedStyle(el, '::' + p);
    style[p] = cs.content === 'none' || cs.content === 'normal' || cs.display === 'none' ? null : pick(cs);
  }
  return style;
}"""


def marker_color(pseudo: dict[str, Any]) -> str:
    """The colour a ``::before``/``::after`` marker is drawn in: its background, else a visible border side."""
    if not is_transparent(pseudo["bg"]):
        return pseudo["bg"]
    for color, width in zip(pseudo["border"], pseudo["borderWidth"]):
        if width > 0 and not is_transparent(color):
            return color
    raise AssertionError(f"a marker without a colour: {pseudo}")


def marker_stands_out(pseudo: dict[str, Any], fill: str, base: str) -> tuple[bool, str]:
    """A marker is seen when it contrasts 3:1 with the fill it sits on, or when a halo
    (box-shadow or drop-shadow) contrasts 3:1 with both the marker and the fill."""
    mark = marker_color(pseudo)
    direct = contrast(mark, fill, base)
    if direct >= 3:
        return True, f"marker {mark} on {fill}: {direct:.2f}"
    for halo in colors_in(pseudo["shadow"]) + colors_in(pseudo["filter"]):
        a, b = contrast(mark, halo, base), contrast(halo, fill, base)
        if a >= 3 and b >= 3:
            return True, f"marker {mark} / halo {halo} / fill {fill}: {a:.2f}, {b:.2f}"
    return False, f"marker {mark} on fill {fill}: {direct:.2f} and no halo of 3:1 ({pseudo['shadow']}, {pseudo['filter']})"
