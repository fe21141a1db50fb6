"""The docs stand alone: every relative link resolves, and nothing points outside the repository."""

from __future__ import annotations

import re
import subprocess
import unicodedata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGES = sorted([ROOT / "README.md", *(ROOT / "docs").glob("*.md"), ROOT / "helm" / "voxgate" / "README.md"])

_FENCE = re.compile(r"^\s*(```|~~~)")
_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_INLINE_CODE = re.compile(r"`[^`]*`")
_LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
# Spelled in two halves so this file does not itself mention what it forbids.
_FORBIDDEN = ("DESIGN" + ".md", "../" + "shared", "shared/" + "reference")


def _prose_lines(text: str) -> list[str]:
    """The lines outside fenced code blocks (a ``# comment`` in a shell block is no heading)."""
    lines: list[str] = []
    fenced = False
    for line in text.splitlines():
        if _FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            lines.append(line)
    return lines


def github_slug(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = _INLINE_CODE.sub(lambda m: m.group()[1:-1], heading)
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)  # a link's text only
    text = text.strip().lower()
    kept = "".join(ch for ch in text if ch in " -_" or unicodedata.category(ch)[0] in ("L", "N"))
    return kept.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every heading anchor of a Markdown file, with GitHub's -1, -2 suffixes for repeats."""
    seen: dict[str, int] = {}
    result: set[str] = set()
    for line in _prose_lines(path.read_text()):
        match = _HEADING.match(line)
        if match is None:
            continue
        slug = github_slug(match.group(2))
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        result.add(slug if count == 0 else f"{slug}-{count}")
    return result


def links(path: Path) -> list[str]:
    """Every link target outside code: fenced blocks and inline code spans are not links."""
    found: list[str] = []
    for line in _prose_lines(path.read_text()):
        found.extend(_LINK.findall(_INLINE_CODE.sub("", line)))
    return found


def test_slugs_follow_github() -> None:
    heading = "Service config: retries and load balancing"
    assert github_slug(heading) == "service-config-retries-and-load-balancing"
    assert github_slug("The vendor SDK's pool") == "the-vendor-sdks-pool"
    assert github_slug("`voxgate stats`") == "voxgate-stats"
    assert github_slug("run-task") == "run-task"


def test_the_pages_exist() -> None:
    names = {path.name for path in (ROOT / "docs").glob("*.md")}
    expected = {"api.md", "operations.md", "telemetry.md", "clients.md", "deploy.md", "design.md"}
    expected |= {"development.md", "benchmarks.md", "protocol.md", "configuration.md"}
    assert expected <= names


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves(page: Path) -> None:
    broken: list[str] = []
    for target in links(page):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # https:, mailto: ...: not ours to check
            continue
        file_part, _, anchor = target.partition("#")
        resolved = (page.parent / file_part).resolve() if file_part else page
        if not resolved.exists():
            broken.append(f"{target}: no such file")
        elif not resolved.is_relative_to(ROOT):
            broken.append(f"{target}: outside the repository")
        elif anchor and resolved.suffix == ".md" and anchor not in anchors(resolved):
            broken.append(f"{target}: no heading with anchor #{anchor} in {resolved.relative_to(ROOT)}")
    assert not broken, f"{page.relative_to(ROOT)}: " + "; ".join(broken)


def _repository_files() -> list[Path]:
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout
    return [ROOT / name for name in listed.decode().split("\0") if name]


def test_nothing_points_outside_the_repository() -> None:
    offenders: list[str] = []
    for path in _repository_files():
        if not path.is_file():  # listed but deleted in the work tree
            continue
        data = path.read_bytes()
        for word in _FORBIDDEN:
            if word.encode() in data:
                offenders.append(f"{path.relative_to(ROOT)} mentions {word}")
    assert not offenders, "\n".join(offenders)
