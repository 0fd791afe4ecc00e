"""The README stays a front page, the manual's links lead somewhere, and the settings reference it links is whole."""

import re
from pathlib import Path

import pytest

from engine.settings.config import SECTIONS, section_fields
from engine.settings.reference import REFERENCE, REPO

README = REPO / "README.md"
PAGES = [README, *sorted((REPO / "docs").glob("*.md"))]
README_MAX_LINES = 200  # what it is, the screenshot, the two commands, a tour, where to go next; the rest is docs/

FENCES = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)
CODE = re.compile(r"`[^`\n]*`")  # code spans hold no links, and `[x]` in one would hide a link around it
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
HEADING = re.compile(r"^#{1,6} +(.+?) *#*$", re.MULTILINE)


def prose(page: Path) -> str:
    return FENCES.sub("", page.read_text(encoding="utf-8"))


def links(page: Path) -> list[str]:
    return LINK.findall(CODE.sub("", prose(page)))


def anchors(page: Path) -> set[str]:
    """The fragment of each heading, as GitHub makes it (lower case, punctuation gone, spaces as -, repeats -1...)."""
    seen: dict[str, int] = {}
    slugs = set()
    for heading in HEADING.findall(prose(page)):
        slug = re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")
        slugs.add(f"{slug}-{seen[slug]}" if slug in seen else slug)
        seen[slug] = seen.get(slug, 0) + 1
    return slugs


def broken_links(page: Path) -> list[str]:
    """Each relative link of a page whose file, or whose heading in a Markdown file, does not exist."""
    broken = []
    for target in links(page):
        if re.match(r"[a-z][a-z0-9+.-]*:", target):  # https:, mailto:: not checked offline
            continue
        path, _, fragment = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        if not file.exists():
            broken.append(f"{target}: no such file")
        elif fragment and file.suffix == ".md" and fragment not in anchors(file):
            broken.append(f"{target}: no heading #{fragment} in {file.name}")
    return broken


def test_the_readme_is_a_front_page():
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines: move the details to a page of docs/"


@pytest.mark.parametrize("page", PAGES, ids=[p.relative_to(REPO).as_posix() for p in PAGES])
def test_every_relative_link_leads_to_an_existing_file_and_heading(page):
    assert broken_links(page) == []


def test_a_broken_link_or_heading_is_found(tmp_path):
    (tmp_path / "other.md").write_text("# Other page\n\n## [run]\n\n## Twice\n\n## Twice\n")
    page = tmp_path / "page.md"
    page.write_text(
        "[ok](other.md) [ok](other.md#other-page) [ok](other.md#run) [ok](other.md#twice-1) [ok](#top)\n"
        "# Top\n[gone](missing.md) [gone](other.md#nowhere) [web](https://example.org/x.md)\n"
        "`[not a link](missing.md)`\n```\n[not a link](missing-too.md)\n```\n"
    )
    assert broken_links(page) == ["missing.md: no such file", "other.md#nowhere: no heading #nowhere in other.md"]


def test_the_readme_links_the_settings_reference_and_each_of_its_tables():
    targets = links(README)
    assert REFERENCE.as_posix() in targets
    missing = [section for section in SECTIONS if f"{REFERENCE.as_posix()}#{section}" not in targets]
    assert missing == [], f"the README's settings paragraph names no link to these tables: {missing}"


def test_the_linked_reference_covers_every_setting():
    text = (REPO / REFERENCE).read_text(encoding="utf-8")
    missing = [
        f"{section}.{f.name}"
        for section in SECTIONS
        for f in section_fields(section)
        if f"\n- **`{section}.{f.name}`** (" not in text
    ]
    assert missing == [], f"{REFERENCE} lacks them: run `make settings-docs`"
