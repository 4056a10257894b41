"""The README fits on a screen, and its links and the guides' links lead somewhere.

A relative link must name a file of the repository and, with ``#anchor``, a heading of that file
(GitHub's anchors: lowercase, punctuation dropped, spaces as hyphens, ``-1``... for repeats).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
QUICKSTART = ROOT / "docs" / "quickstart-plugin.md"
#: the README and every guide
PAGES = [README, *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def _prose(text: str) -> str:
    """The text outside fenced code blocks (a ``[x](y)`` in code is not a link)."""
    return re.sub(r"^```.*?^```$", "", text, flags=re.M | re.S)


def anchors(path: Path) -> set[str]:
    """GitHub's anchors for the headings of a Markdown file."""
    seen: dict[str, int] = {}
    out = set()
    for line in _prose(path.read_text(encoding="utf-8")).splitlines():
        match = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if not match:
            continue
        slug = re.sub(r"[^\w\- ]", "", match.group(1).strip().lower()).replace(" ", "-")
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        out.add(slug if count == 0 else f"{slug}-{count}")
    return out


def relative_links(path: Path) -> list[str]:
    return [target for target in LINK.findall(_prose(path.read_text(encoding="utf-8")))
            if not re.match(r"^[a-z][a-z0-9+.-]*:", target)]  # http:, https:, mailto: ... are not checked


def test_the_readme_fits_on_a_screen() -> None:
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 120, f"README.md has {len(lines)} lines; move detail into a guide under docs/"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_relative_link_resolves(page: Path) -> None:
    links = relative_links(page)
    if page in (README, QUICKSTART):
        assert links, f"{page.name} links to nothing: the check below would prove nothing"
    broken = []
    for target in links:
        file, _, anchor = target.partition("#")
        where = (page.parent / file).resolve() if file else page
        if not where.is_file():
            broken.append(f"{target}: no file {where}")
        elif anchor and anchor not in anchors(where):
            broken.append(f"{target}: no heading of {where.name} has the anchor #{anchor}")
    assert not broken, f"{page.relative_to(ROOT)}:\n  " + "\n  ".join(broken)


def test_the_readme_links_each_guide_once() -> None:
    guides = sorted(p.name for p in (ROOT / "docs").glob("*.md"))
    linked = [t.partition("#")[0] for t in relative_links(README)]
    missing = [g for g in guides if f"docs/{g}" not in linked]
    assert not missing, f"README.md does not link the guides {missing}"


def test_the_anchor_check_sees_a_missing_anchor(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text("# Fenchel–Young: losses (`FY`)\n\n## Again\n\n## Again\n\n```\n# not a heading\n```\n",
                    encoding="utf-8")
    assert anchors(page) == {"fenchelyoung-losses-fy", "again", "again-1"}
