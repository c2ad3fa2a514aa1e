"""Small plots drawn on the server as SVG: no JavaScript, no plotting library, nothing to download, and the page's
Content-Security-Policy stays strict. Every text is escaped."""

from __future__ import annotations

import math
from html import escape

from markupsafe import Markup


def _fmt(v: float) -> str:
    if v == 0:
        return "0"
    if abs(v) >= 100:
        return f"{v:,.0f}"
    if abs(v) >= 1:
        return f"{v:.1f}".rstrip("0").rstrip(".")
    return f"{v:.3f}".rstrip("0").rstrip(".")


def nice_max(v: float) -> float:
    if v <= 0:
        return 1.0
    e = 10 ** math.floor(math.log10(v))
    for m in (1, 2, 2.5, 5, 10):
        if v <= m * e:
            return m * e
    return 10 * e


def line_chart(
    series: dict[str, list[tuple[str, float | None]]],
    width: int = 640,
    height: int = 180,
    y_label: str = "",
    y_max: float | None = None,
    percent: bool = False,
    css_class: str = "plot",
) -> Markup:
    """Lines over categorical x values (days, hours) shared by all series; the x values are sorted as strings, so
    ISO dates and zero-padded times come out in time order."""
    xs = sorted({x for pts in series.values() for x, _ in pts})
    ys = [y for pts in series.values() for _, y in pts if y is not None]
    if not xs or not ys:
        return Markup(
            f'<svg class="{css_class}" width="{width}" height="40" role="img"><text x="4" y="24">no data</text></svg>'
        )
    top = y_max if y_max is not None else nice_max(max(ys))
    left, right, up, down = 48, 16, (24 if len(series) > 1 else 12), 28
    w, h = width - left - right, height - up - down

    def px(i: int) -> float:
        return left + (w * i / (len(xs) - 1) if len(xs) > 1 else w / 2)

    def py(y: float) -> float:
        return up + h - h * (y / top if top else 0)

    out = [
        f'<svg class="{css_class}" viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" '
        f'aria-label="{escape(y_label)}">'
    ]
    for k in range(5):
        yv = top * k / 4
        y = py(yv)
        lab = f"{yv * 100:.0f}%" if percent else _fmt(yv)
        out.append(
            f'<line class="grid" x1="{left}" x2="{left + w}" y1="{y:.1f}" y2="{y:.1f}"/>'
            f'<text class="tick" x="{left - 4}" y="{y + 4:.1f}" text-anchor="end">{lab}</text>'
        )
    step = max(1, math.ceil(len(xs) / 8))
    for i, x in enumerate(xs):
        if i % step == 0 or i == len(xs) - 1:
            anchor = "end" if i == len(xs) - 1 and len(xs) > 1 else ("start" if i == 0 and len(xs) > 1 else "middle")
            out.append(f'<text class="tick" x="{px(i):.1f}" y="{height - 8}" text-anchor="{anchor}">{escape(x)}</text>')
    for n, (name, pts) in enumerate(series.items()):
        pts = sorted((p for p in pts if p[1] is not None), key=lambda p: p[0])
        coords = [(px(xs.index(x)), py(y)) for x, y in pts]  # type: ignore[arg-type]
        if not coords:
            continue
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y in coords)
        out.append(f'<polyline class="s{n % 6}" fill="none" points="{path}"><title>{escape(name)}</title></polyline>')
        for (x, y), (xl, yv) in zip(coords, pts):
            val = f"{yv * 100:.1f}%" if percent else _fmt(float(yv))  # type: ignore[arg-type]
            out.append(
                f'<circle class="s{n % 6}" cx="{x:.1f}" cy="{y:.1f}" r="2.5">'
                f"<title>{escape(name)} {escape(xl)}: {val}</title></circle>"
            )
    if len(series) > 1:
        for n, name in enumerate(series):
            out.append(f'<text class="legend s{n % 6}" x="{left + 8 + 90 * n}" y="12">{escape(name)}</text>')
    out.append("</svg>")
    return Markup("".join(out))


def histogram(
    values: list[float], bins: int = 24, width: int = 300, height: int = 90, log: bool = True, unit: str = "ms"
) -> Markup:
    """Counts of `values` in bins (log-spaced by default: stage latencies span 0.1 ms to seconds)."""
    vals = [v for v in values if v is not None and v > 0]
    if not vals:
        return Markup(f'<svg class="hist" width="{width}" height="30"><text x="4" y="20">no data</text></svg>')
    lo, hi = min(vals), max(vals)
    if hi <= lo:
        hi = lo * 1.01 + 1e-9
    if log:
        a, b = math.log10(lo), math.log10(hi)
        edges = [10 ** (a + (b - a) * i / bins) for i in range(bins + 1)]
    else:
        edges = [lo + (hi - lo) * i / bins for i in range(bins + 1)]
    counts = [0] * bins
    for v in vals:
        i = 0
        if log:
            i = int((math.log10(v) - math.log10(lo)) / (math.log10(hi) - math.log10(lo)) * bins)
        else:
            i = int((v - lo) / (hi - lo) * bins)
        counts[min(max(i, 0), bins - 1)] += 1
    top = max(counts)
    down = 16
    bw = width / bins
    out = [f'<svg class="hist" viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img">']
    for i, c in enumerate(counts):
        bh = (height - down) * c / top if top else 0
        out.append(
            f'<rect x="{i * bw:.1f}" y="{height - down - bh:.1f}" width="{max(bw - 1, 1):.1f}" '
            f'height="{bh:.1f}"><title>{_fmt(edges[i])}–{_fmt(edges[i + 1])} {unit}: {c}</title></rect>'
        )
    out.append(
        f'<text class="tick" x="0" y="{height - 3}">{_fmt(lo)} {unit}</text>'
        f'<text class="tick" x="{width}" y="{height - 3}" text-anchor="end">{_fmt(hi)} {unit}</text></svg>'
    )
    return Markup("".join(out))


def quantile(sorted_vals: list[float], q: float) -> float | None:
    if not sorted_vals:
        return None
    i = min(len(sorted_vals) - 1, max(0, round(q * (len(sorted_vals) - 1))))
    return sorted_vals[i]
