"""docs/results.md is written by several scripts: scripts/results.py writes the page and
keeps the marked sections the others own (`<!-- name:begin -->` ... `<!-- name:end -->`)."""

from __future__ import annotations

from pathlib import Path

PAGE = Path(__file__).resolve().parents[1] / "docs" / "results.md"


def markers(name: str) -> tuple[str, str]:
    """The begin and end markers of section `name`."""
    return f"<!-- {name}:begin -->", f"<!-- {name}:end -->"


def update_section(name: str, text: str, page_path: Path = PAGE) -> None:
    """Replace section `name` of the page with `text` (which holds both markers), or append
    it when the page has none yet."""
    begin, end = markers(name)
    page = page_path.read_text()
    if begin in page:
        head, rest = page.split(begin, 1)
        tail = rest.split(end, 1)[1] if end in rest else ""
        page = head + text.strip() + tail
    else:
        page = page.rstrip() + "\n\n" + text.strip() + "\n"
    page_path.write_text(page)
