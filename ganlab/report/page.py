"""A report's content as one HTML page that needs nothing but itself.

Every picture is inlined as a ``data:`` URI and the style sheet is inline; there is no script. The
page declares a Content Security Policy that allows exactly that (images from ``data:``, inline
style, nothing else), so a browser refuses, and reports on its console, anything that would reach
outside the file: a page that passes its browser test opens the same offline, in a mail client's
sandbox, or years later.

The sections come in a fixed order, each with an id (``curves``, ``finals``, ``tests``, then one
``pictures-<key>`` per image key) that the browser test checks.
"""

from __future__ import annotations

import base64
from html import escape

from ganlab.compare import render
from ganlab.report.content import KNOWN_PICTURES, Content, Picture

POLICY = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"

STYLE = """
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: #1d1d1f; margin: 0 auto;
       max-width: 1400px; padding: 1.5rem 1.5rem 3rem; }
h1 { font-size: 1.6rem; margin: 0 0 .3rem; } h2 { font-size: 1.25rem; margin: 2.2rem 0 .6rem;
  border-bottom: 1px solid #ddd; padding-bottom: .2rem; }
p.note, figcaption, .meta { color: #555; font-size: .9rem; }
code { font: .9em ui-monospace, SFMono-Regular, Menlo, monospace; background: #f3f3f5; padding: 0 .25em; }
nav a { margin-right: 1rem; }
table { border-collapse: collapse; margin: .4rem 0; font-variant-numeric: tabular-nums; }
th, td { border: 1px solid #ddd; padding: .25rem .6rem; text-align: left; vertical-align: top; }
th { background: #f6f6f8; } td.num { text-align: right; white-space: nowrap; }
tr.significant td { background: #fff4d6; }
.cards { display: flex; flex-wrap: wrap; gap: 1rem; align-items: flex-start; }
figure { margin: 0; border: 1px solid #ddd; border-radius: 6px; padding: .5rem; background: #fff; max-width: 100%;
         box-sizing: border-box; }
figure.curve img { width: 560px; }
img { display: block; max-width: 100%; height: auto; }
"""


#: a picture at least this much wider than high (histograms side by side) gets a row of its own, at its own
#: size; any other is scaled to fit a BOX x BOX square, so that four groups' pictures (four heads) stand side
#: by side in a window 1440 pixels wide, three in one of 1280
WIDE = 1.6
BOX = 300
#: a picture's card no wider than its picture (padding and border included): a long caption wraps
CARD = f"figure.picture:not(.wide) {{ max-width: {BOX + 18}px; }}\n"


def image(picture: Picture, alt: str, box: int | None = None) -> str:
    """An ``<img>`` holding the PNG itself, its size declared (the layout does not move while it decodes);
    with ``box``, shown scaled to fit a square of that many pixels."""
    width, height = picture.size
    data = base64.b64encode(picture.png).decode("ascii")
    shown = f" style=\"width: {round(width * min(box / width, box / height))}px\"" if box and width and height else ""
    return (f"<img alt=\"{escape(alt)}\" width=\"{width}\" height=\"{height}\"{shown} "
            f"src=\"data:image/png;base64,{data}\">")


def _table(header: list[str] | tuple[str, ...], rows: list[list[str]], numeric_from: int,
           marked: list[bool] | None = None) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = []
    for index, row in enumerate(rows):
        cells = "".join(f"<td class=\"num\">{escape(c)}</td>" if i >= numeric_from else f"<td>{escape(c)}</td>"
                        for i, c in enumerate(row))
        mark = " class=\"significant\"" if marked and marked[index] else ""
        body.append(f"<tr{mark}>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _curves(content: Content) -> str:
    figures = "".join(
        f"<figure class=\"curve\">{image(picture, f'{metric}: mean and standard error per group over steps')}"
        f"<figcaption>{escape(metric)}</figcaption></figure>"
        for metric, picture in content.curves.items())
    return (f"<section id=\"curves\"><h2>Learning curves</h2><p class=\"note\">Each group's mean over its runs at "
            f"every logged step, with a band of ± one standard error.</p><div class=\"cards\">{figures}</div></section>")


def _finals(content: Content) -> str:
    labels = len(content.group_by)
    rows = [[*row[:labels + 1], f"{view.median.info.run_name} (seed {view.seed})", *row[labels + 1:]]
            for row, view in zip(content.rows, content.groups)]
    header = [*content.header[:labels + 1], f"median seed (by {content.metrics[0]})", *content.header[labels + 1:]]
    return (f"<section id=\"finals\"><h2>Final values</h2>{_table(header, rows, labels + 2)}"
            f"<p class=\"note\">{escape(content.caption)}. The pictures below are of each group's median seed.</p>"
            f"</section>")


def _tests(content: Content) -> str:
    if not content.tests:
        body = f"<p class=\"note\">{escape(render.NO_TESTS)}</p>"
    else:
        rows = [render.test_cells(t) for t in content.tests]
        body = (_table(render.TEST_HEADER, rows, 3, [row[-1] == "significant" for row in rows])
                + f"<p class=\"note\">{escape(render.tests_explanation())}</p>")
    return f"<section id=\"tests\"><h2>Which differences are more than seed noise</h2>{body}</section>"


def _pictures(content: Content, key: str) -> str:
    cards = []
    for view in content.groups:
        picture = view.pictures.get(key)
        if picture is None:  # a run made before this picture existed: no slot
            continue
        width, height = picture.size
        wide = width >= WIDE * height
        cards.append(f"<figure class=\"picture{' wide' if wide else ''}\">"
                     f"{image(picture, f'{key} of {view.label}', None if wide else BOX)}"
                     f"<figcaption><b>{escape(view.label)}</b> "
                     f"(n={len(view.group.runs)})<br>{escape(view.median.info.run_name)}, seed {escape(view.seed)}, "
                     f"step {picture.step}</figcaption></figure>")
    title = KNOWN_PICTURES.get(key, (key, key))[1]
    return (f"<section id=\"pictures-{escape(key)}\" class=\"pictures\"><h2>{escape(title)}</h2>"
            f"<p class=\"note\">The last <code>{escape(key)}</code> image each group's median seed logged.</p>"
            f"<div class=\"cards\">{''.join(cards)}</div></section>")


def page(content: Content) -> str:
    """The whole HTML document."""
    keys = content.picture_keys()
    sections = [_curves(content), _finals(content), _tests(content), *(_pictures(content, k) for k in keys)]
    links = [("curves", "Learning curves"), ("finals", "Final values"), ("tests", "Tests"),
             *((f"pictures-{k}", KNOWN_PICTURES.get(k, (k,))[0]) for k in keys)]
    nav = "".join(f"<a href=\"#{escape(anchor)}\">{escape(text)}</a>" for anchor, text in links)
    made = f"<p class=\"meta\">Made with <code>{escape(content.command)}</code>.</p>" if content.command else ""
    runs = sum(len(view.group.runs) for view in content.groups)
    # the style sheet on one line: a report kept in a repository is not a second copy of this module's lines
    return ("<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta http-equiv=\"Content-Security-Policy\" content=\"{POLICY}\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>ganlab report: {escape(content.source)}</title><style>{' '.join((STYLE + CARD).split())}</style>"
            "</head><body>"
            f"<header><h1>ganlab report</h1><p>{escape(content.source)}: {runs} runs in {len(content.groups)} groups "
            f"by {escape(', '.join(content.group_by))}; metrics {escape(', '.join(content.metrics))}.</p>{made}"
            f"<nav>{nav}</nav></header><main>{''.join(sections)}</main></body></html>\n")
