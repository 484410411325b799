"""A self-contained HTML page: inline CSS, inline SVG figures, no script, no network.

Videos and images are embedded as `data:` URIs, so the page is one file that opens offline.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from html import escape

_STYLE = """
body { font-family: system-ui, sans-serif; max-width: 780px; margin: 2em auto; color: #222;
       line-height: 1.45; padding: 0 1em; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; }
h2 { font-size: 1.2em; margin-top: 1.8em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: 0.8em 0; font-size: 0.92em; }
th, td { border: 1px solid #ddd; padding: 4px 10px; text-align: right; }
th:first-child, td:first-child { text-align: left; }
th { background: #f4f4f4; }
figure { margin: 1.2em 0; }
figcaption { font-size: 0.9em; color: #555; }
.headline { font-size: 1.1em; background: #f2f7ee; border-left: 4px solid #5a9;
            padding: 0.6em 1em; }
code, pre { background: #f6f6f6; }
pre { padding: 0.6em; overflow-x: auto; font-size: 0.85em; }
video { max-width: 100%; margin-right: 0.5em; }
.strip img { margin: 0 2px 2px 0; }
"""


class Page:
    """Sections appended in reading order; `html()` returns the whole document."""

    def __init__(self, title: str) -> None:
        self.title = title
        self._parts: list[str] = [f"<h1>{escape(title)}</h1>"]

    def heading(self, text: str) -> None:
        self._parts.append(f"<h2>{escape(text)}</h2>")

    def paragraph(self, text: str, css_class: str = "") -> None:
        attribute = f' class="{css_class}"' if css_class else ""
        self._parts.append(f"<p{attribute}>{escape(text)}</p>")

    def table(self, header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
        head = "".join(f"<th>{escape(cell)}</th>" for cell in header)
        body = "".join(
            "<tr>" + "".join(f"<td>{escape(cell)}</td>" for cell in row) + "</tr>" for row in rows
        )
        self._parts.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")

    def figure(self, svg: str, caption: str) -> None:
        """`svg` comes from `policylink.report.svg`, which escapes every text it draws."""
        self._parts.append(f"<figure>{svg}<figcaption>{escape(caption)}</figcaption></figure>")

    def videos(self, clips: Sequence[tuple[str, bytes]], caption: str) -> None:
        """MP4 clips side by side, each labelled; they play in any browser with H.264."""
        tags = "".join(
            f'<video controls muted preload="auto" title="{escape(label)}" '
            f'src="data:video/mp4;base64,{base64.b64encode(mp4).decode()}"></video>'
            for label, mp4 in clips
        )
        self._parts.append(f"<figure>{tags}<figcaption>{escape(caption)}</figcaption></figure>")

    def filmstrip(self, frames: Sequence[tuple[str, bytes]], caption: str) -> None:
        """JPEG stills in a row, each with a hover label (e.g. its time)."""
        tags = "".join(
            f'<img alt="{escape(label)}" title="{escape(label)}" '
            f'src="data:image/jpeg;base64,{base64.b64encode(jpeg).decode()}">'
            for label, jpeg in frames
        )
        self._parts.append(
            f'<figure class="strip">{tags}<figcaption>{escape(caption)}</figcaption></figure>'
        )

    def preformatted(self, text: str) -> None:
        self._parts.append(f"<pre>{escape(text)}</pre>")

    def html(self) -> str:
        return (
            '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f"<title>{escape(self.title)}</title><style>{_STYLE}</style></head><body>"
            + "\n".join(self._parts)
            + "</body></html>\n"
        )
