"""Self-contained interactive HTML pages: plotly figures (plotly.js inlined once, so a page
opens offline, from a file or as an MLflow artifact) and tables that wrap to fit."""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Any

STYLE = """
body{font-family:system-ui,-apple-system,sans-serif;max-width:1200px;margin:1.5em auto;padding:0 1em;color:#222}
h1{font-size:1.6em;margin-bottom:.2em}h2{font-size:1.2em;margin-top:1.8em;border-bottom:1px solid #ddd}
p.note{color:#555;font-size:.92em}.warn{background:#fff4e5;border-left:4px solid #f0a030;padding:.5em .8em}
table{border-collapse:collapse;width:100%;table-layout:auto;font-size:.9em}
td,th{padding:4px 8px;border-bottom:1px solid #e3e3e3;text-align:right;vertical-align:top;
overflow-wrap:anywhere;word-break:break-word}
th{background:#f6f6f6}td:first-child,th:first-child{text-align:left}
td.text,th.text{text-align:left}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(520px,1fr));gap:1em}
"""


@dataclass
class Section:
    """A heading and a figure, a table (HTML) or a note."""

    heading: str
    figure: Any = None
    html: str = ""
    note: str = ""


def table(rows: list[dict[str, Any]], text_columns: tuple[str, ...] = ()) -> str:
    """An HTML table of `rows` (columns from the first row); numbers to 4 significant digits."""
    if not rows:
        return "<p class='note'>none</p>"
    columns = list(dict.fromkeys(k for row in rows for k in row))

    def cell(value: Any) -> str:
        if isinstance(value, float):
            return "-" if value != value else f"{value:.4g}"
        return html.escape(str(value)) if value is not None else "-"

    head = "".join(f"<th class='{'text' if c in text_columns else ''}'>{html.escape(c)}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(f"<td class='{'text' if c in text_columns else ''}'>{cell(row.get(c))}</td>" for c in columns) + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def render(title: str, subtitle: str, sections: list[Section]) -> str:
    """The page: every figure interactive (hover, zoom, legend toggles), plotly.js inlined once."""
    parts, inlined = [], False
    for section in sections:
        parts.append(f"<h2>{html.escape(section.heading)}</h2>")
        if section.note:
            parts.append(f"<p class='note'>{section.note}</p>")
        if section.figure is not None:
            section.figure.update_layout(template="plotly_white", margin=dict(l=60, r=20, t=40, b=50), height=420)
            parts.append(
                section.figure.to_html(
                    full_html=False, include_plotlyjs=not inlined, config={"displaylogo": False, "responsive": True}
                )
            )
            inlined = True
        parts.append(section.html)
    return (
        f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<meta name='viewport' content='width=device-width, initial-scale=1'><style>{STYLE}</style></head>"
        f"<body><h1>{html.escape(title)}</h1><p class='note'>{subtitle}</p>{''.join(parts)}</body></html>"
    )
