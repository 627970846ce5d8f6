"""The report's pages: its sections (``Section``) written as Markdown (figures beside it) and as one self-contained
HTML page (figures embedded; a probe script marks, for the tests' headless Chromium, which figures rendered and
whether any error happened)."""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Section:
    title: str
    text: str = ""
    figure: str | None = None  # figure id: <id>.png in the output folder
    source: str = ""  # command and date the numbers come from
    table: list[list[str]] = field(default_factory=list)  # first row is the header
    missing: list[str] = field(default_factory=list)



def plt_agg():
    """matplotlib's pyplot on the Agg backend (figures written to files, no display)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, out_dir: Path, name: str) -> str:
    """``fig`` laid out and written as ``out_dir/<name>.png``, then closed; returns the figure id ``name``."""
    fig.tight_layout()
    fig.savefig(out_dir / f"{name}.png", dpi=100)
    plt_agg().close(fig)
    return name


def markdown_page(sections, meta) -> str:
    out = ["# HOLMES-ICU trade-off report", "", f"Generated {meta['generated']} from registry {meta['registry']['version']} "
           f"({meta['records']} records).", ""]
    for s in sections:
        out += [f"## {s.title}", ""]
        if s.text:
            out += [s.text, ""]
        if s.figure:
            out += [f"![{s.title}]({s.figure}.png)", ""]
        if s.table:
            out += ["| " + " | ".join(s.table[0]) + " |", "|" + "---|" * len(s.table[0])]
            out += ["| " + " | ".join(r) + " |" for r in s.table[1:]] + [""]
        if s.source:
            out += [f"Source: {s.source}", ""]
        out += [f"- Missing: {m}" for m in s.missing] + ([""] if s.missing else [])
    return "\n".join(out)


_PROBE = """<script>
window.__errors = [];
window.addEventListener('error', function (e) { window.__errors.push(String(e.message || (e.target && e.target.id) || e.type)); }, true);
window.addEventListener('load', function () {
  var ok = Array.prototype.filter.call(document.images, function (i) { return i.complete && i.naturalWidth > 0; });
  document.body.dataset.figures = ok.map(function (i) { return i.id; }).join(',');
  document.body.dataset.errors = String(window.__errors.length);
  document.body.dataset.loaded = 'yes';
});
</script>"""


def html_page(sections, meta, out_dir: Path) -> str:
    e = html.escape
    parts = ["<!doctype html><html lang='en'><head><meta charset='utf-8'><title>HOLMES-ICU trade-off report</title>", _PROBE,
             "<style>body{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}table{border-collapse:collapse;"
             "font-size:13px}td,th{border:1px solid #bbb;padding:3px 7px;text-align:right}td:first-child{text-align:left}"
             ".src{color:#666;font-size:12px}.missing{color:#a33}img{max-width:100%}</style></head><body>",
             f"<h1>HOLMES-ICU trade-off report</h1><p class='src'>Generated {e(meta['generated'])} from registry "
             f"{e(meta['registry']['version'])} ({meta['records']} records).</p>"]
    for s in sections:
        parts.append(f"<h2>{e(s.title)}</h2>")
        if s.text:
            parts.append(f"<p>{e(s.text)}</p>")
        if s.figure:
            b64 = base64.b64encode((out_dir / f"{s.figure}.png").read_bytes()).decode()
            parts.append(f"<img id='{s.figure}' alt='{e(s.title)}' src='data:image/png;base64,{b64}'>")
        if s.table:
            head = "".join(f"<th>{e(c)}</th>" for c in s.table[0])
            body = "".join("<tr>" + "".join(f"<td>{e(c)}</td>" for c in r) + "</tr>" for r in s.table[1:])
            parts.append(f"<table><tr>{head}</tr>{body}</table>")
        if s.source:
            parts.append(f"<p class='src'>Source: {e(s.source)}</p>")
        parts += [f"<p class='missing'>Missing: {e(m)}</p>" for m in s.missing]
    parts.append("</body></html>")
    return "\n".join(parts)
