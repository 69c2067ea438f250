"""HTML building blocks for the report: escaped tables and text, figures inlined as PNG data URIs,
one page with inline CSS. No script, no external reference of any kind."""
from __future__ import annotations

import base64
import html
import io
import math

import pandas as pd
from matplotlib.figure import Figure

CSS = """
body{font-family:sans-serif;max-width:1100px;margin:1.5em auto;padding:0 1em;color:#222}
h1{font-size:1.5em} h2{font-size:1.2em;border-bottom:1px solid #ccc;margin-top:2em}
table{border-collapse:collapse;font-size:.8em;margin:.5em 0} th,td{border:1px solid #ccc;padding:2px 6px}
th{background:#f0f0f0} td.num{text-align:right;font-variant-numeric:tabular-nums}
.note{color:#555;font-size:.9em} .warn{color:#a00} img{max-width:100%} pre{white-space:pre-wrap;
font-size:.75em;background:#f7f7f7;padding:.5em}
"""


def esc(value: object) -> str:
    """Any value as escaped HTML text."""
    return html.escape(str(value), quote=True)


def fmt(value: object) -> str:
    """Numbers with a sensible precision, everything else as text."""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return f"{value:d}"
    if isinstance(value, float):
        if math.isnan(value):
            return "–"
        if value == 0 or 0.01 <= abs(value) < 1e6:
            return f"{value:.3g}" if abs(value) < 100 else f"{value:,.1f}"
        return f"{value:.3e}"
    return str(value)


def table(frame: pd.DataFrame, max_rows: int = 200) -> str:
    """An escaped HTML table of ``frame`` (at most ``max_rows`` rows, the cut said)."""
    if frame is None or frame.empty:
        return '<p class="note">(no rows)</p>'
    head = "".join(f"<th>{esc(c)}</th>" for c in frame.columns)
    rows = []
    for rec in frame.head(max_rows).itertuples(index=False):
        cells = []
        for v in rec:
            v = v.item() if hasattr(v, "item") else v
            cls = ' class="num"' if isinstance(v, (int, float)) and not isinstance(v, bool) else ""
            cells.append(f"<td{cls}>{esc(fmt(v))}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    more = (f'<p class="note">{len(frame) - max_rows} more rows not shown</p>'
            if len(frame) > max_rows else "")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>{more}"


def figure(fig: Figure, alt: str, dpi: int = 80) -> str:
    """The figure as an inline PNG ``<img>`` (base64 data URI)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    data = base64.b64encode(buf.getvalue()).decode("ascii")
    return f'<img alt="{esc(alt)}" src="data:image/png;base64,{data}">'


def paragraph(text: str, cls: str = "") -> str:
    """An escaped paragraph."""
    return f'<p{f" class={chr(34)}{cls}{chr(34)}" if cls else ""}>{esc(text)}</p>'


def section(title: str, *parts: str) -> str:
    """A titled section of already-built HTML parts."""
    return f"<section><h2>{esc(title)}</h2>{''.join(parts)}</section>"


def page(title: str, body: list[str]) -> str:
    """The whole document: inline CSS, no script, a CSP forbidding every external load."""
    csp = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"
    return ("<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta http-equiv=\"Content-Security-Policy\" content=\"{csp}\">"
            f"<title>{esc(title)}</title><style>{CSS}</style></head><body>"
            f"<h1>{esc(title)}</h1>{''.join(body)}</body></html>\n")
