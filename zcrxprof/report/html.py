"""HTML building blocks for the report: escaped tables and text, figures inlined as PNG data URIs
with captions, folded details, one page with inline CSS. No script, no external reference of any
kind. Tables fit a 1280 px page: columns holding one value on every row are said once above the
table, and a table still wider than ``MAX_COLUMNS`` is transposed (few rows) or folded into several
tables that repeat its leading label columns."""
from __future__ import annotations

import base64
import html
import io
import math

import pandas as pd
from matplotlib.figure import Figure

# The most columns one table shows side by side (at the report's font size they fit 1280 px).
MAX_COLUMNS = 9
# A table with at most this many rows and too many columns is transposed rather than folded.
TRANSPOSE_ROWS = 4

CSS = """
*{box-sizing:border-box}
body{font-family:sans-serif;max-width:1180px;margin:1em auto;padding:0 1em;color:#222;line-height:1.35}
h1{font-size:1.45em;margin-bottom:.2em} h2{font-size:1.2em;border-bottom:1px solid #ccc;margin-top:1.8em}
h3{font-size:1.02em;margin:1.2em 0 .3em}
table{border-collapse:collapse;font-size:.8em;margin:.4em 0;max-width:100%}
th,td{border:1px solid #ccc;padding:2px 6px;vertical-align:top;overflow-wrap:anywhere}
th{background:#f0f0f0;text-align:left} td.num{text-align:right;font-variant-numeric:tabular-nums;
overflow-wrap:normal;white-space:nowrap}
.note{color:#555;font-size:.88em} .warn{color:#a00} .const{color:#444;font-size:.8em;margin:.6em 0 0}
img{max-width:100%;height:auto} figure{margin:.8em 0} figcaption{font-size:.85em;color:#333;max-width:900px}
pre{white-space:pre-wrap;overflow-wrap:anywhere;font-size:.75em;background:#f7f7f7;padding:.5em}
details{margin:.6em 0;border:1px solid #ddd;padding:.3em .6em} summary{cursor:pointer;font-weight:bold}
nav ol{columns:2;font-size:.9em}
.card{border:1px solid #bbb;border-radius:4px;padding:.3em .8em;margin:.6em 0}
.labels{font-size:.9em;margin:.2em 0 .5em}
table.claims{font-size:.88em;width:100%} table.claims td{padding:4px 6px}
.v{font-weight:bold;white-space:nowrap;padding:1px 5px;border-radius:3px}
.v-supported{background:#d8efd8} .v-contradicted{background:#f6d5d5} .v-not-resolved{background:#eee}
.q{white-space:nowrap}
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


def _plain(v: object) -> object:
    return v.item() if hasattr(v, "item") else v


def _head(name: object) -> str:
    """A column name that may break after its underscores."""
    return esc(name).replace("_", "_<wbr>")


def _cell(v: object) -> str:
    v = _plain(v)
    cls = ' class="num"' if isinstance(v, (int, float)) and not isinstance(v, bool) else ""
    return f"<td{cls}>{esc(fmt(v))}</td>"


def _grid(frame: pd.DataFrame) -> str:
    head = "".join(f"<th>{_head(c)}</th>" for c in frame.columns)
    rows = "".join("<tr>" + "".join(_cell(v) for v in rec) + "</tr>" for rec in frame.itertuples(index=False))
    return f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"


def constant_columns(frame: pd.DataFrame) -> list[str]:
    """Columns holding one value on every row of a frame of two rows or more."""
    if len(frame) < 2:
        return []
    return [c for c in frame.columns if frame[c].astype(str).nunique(dropna=False) == 1]


def _label_columns(frame: pd.DataFrame) -> list[str]:
    """The leading columns that name a row (not numbers), at most three."""
    labels = []
    for c in frame.columns:
        if pd.api.types.is_numeric_dtype(frame[c]) and not pd.api.types.is_bool_dtype(frame[c]) \
                and c not in ("rings", "workers", "run_id", "threads"):
            break
        labels.append(c)
        if len(labels) == 3:
            break
    return labels


def table(frame: pd.DataFrame | None, max_rows: int = 200, fold_constant: bool = True) -> str:
    """An escaped HTML table of ``frame`` (at most ``max_rows`` rows, the cut said); columns with
    one value on every row are said once above it; a table wider than ``MAX_COLUMNS`` is
    transposed (at most ``TRANSPOSE_ROWS`` rows) or folded into several narrower tables."""
    if frame is None or frame.empty:
        return '<p class="note">(no rows)</p>'
    shown = frame.head(max_rows).reset_index(drop=True)
    parts = []
    const = constant_columns(shown) if fold_constant else []
    if const and len(const) < len(shown.columns):
        said = " · ".join(f"{c}: {fmt(_plain(shown[c].iloc[0]))}" for c in const
                          if str(shown[c].iloc[0]) not in ("", "nan", "None"))
        parts.append(f'<p class="const">On every row: {esc(said)}</p>')
        shown = shown.drop(columns=const)
    if len(shown.columns) <= MAX_COLUMNS:
        parts.append(_grid(shown))
    elif len(shown) <= TRANSPOSE_ROWS:
        t = shown.T.reset_index()
        t.columns = ["column", *[f"row {i + 1}" for i in range(len(shown))]]
        parts.append(_grid(t))
    else:
        labels = _label_columns(shown)
        rest = [c for c in shown.columns if c not in labels]
        step = max(1, MAX_COLUMNS - len(labels))
        for i in range(0, len(rest), step):
            parts.append(_grid(shown[[*labels, *rest[i:i + step]]]))
    if len(frame) > max_rows:
        parts.append(f'<p class="note">{len(frame) - max_rows} more rows not shown</p>')
    return "".join(parts)


def figure(fig: Figure, alt: str, caption: str = "", dpi: int = 80) -> str:
    """The figure as an inline PNG (base64 data URI) with its caption (what to look at)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    data = base64.b64encode(buf.getvalue()).decode("ascii")
    img = f'<img alt="{esc(alt)}" src="data:image/png;base64,{data}">'
    return f"<figure>{img}<figcaption>{esc(caption or alt)}</figcaption></figure>"


def paragraph(text: str, cls: str = "") -> str:
    """An escaped paragraph."""
    return f'<p{f" class={chr(34)}{cls}{chr(34)}" if cls else ""}>{esc(text)}</p>'


def heading(text: str, level: int = 3) -> str:
    """An escaped heading."""
    return f"<h{level}>{esc(text)}</h{level}>"


def anchor(title: str) -> str:
    """The id a section titled ``title`` gets."""
    return "s-" + "".join(ch if ch.isalnum() else "-" for ch in title.lower()).strip("-")


def section(title: str, *parts: str) -> str:
    """A titled section of already-built HTML parts (its id: ``anchor(title)``)."""
    return f'<section id="{anchor(title)}"><h2>{esc(title)}</h2>{"".join(parts)}</section>'


def details(summary: str, *parts: str, open_: bool = False) -> str:
    """Folded content under an escaped one-line summary."""
    return f"<details{' open' if open_ else ''}><summary>{esc(summary)}</summary>{''.join(parts)}</details>"


def contents(titles: list[str]) -> str:
    """The contents list: a link to each section."""
    items = "".join(f'<li><a href="#{anchor(t)}">{esc(t)}</a></li>' for t in titles)
    return f'<nav><h2>Contents</h2><ol>{items}</ol></nav>'


def page(title: str, body: list[str]) -> str:
    """The whole document: inline CSS, no script, a CSP forbidding every external load."""
    csp = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"
    return ("<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta http-equiv=\"Content-Security-Policy\" content=\"{csp}\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{esc(title)}</title><style>{CSS}</style></head><body>"
            f"<h1>{esc(title)}</h1>{''.join(body)}</body></html>\n")
