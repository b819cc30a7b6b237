"""Reading the project's Markdown documents for the doc tests: fenced blocks, inline code,
links and heading anchors. Plain regexes over CommonMark's simple cases, which is all the
project's documents use."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[3]
CONTRACT = REPO_ROOT / "docs" / "contract.md"

_FENCE = re.compile(r"^(?P<indent> {0,3})(?P<fence>`{3,}|~{3,})(?P<info>[^`\n]*)$")
_INLINE_CODE = re.compile(r"(?<!`)(`+)(?!`)(.+?)(?<!`)\1(?!`)", re.S)
_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")


def documents() -> list[Path]:
    """The README and every Markdown page under docs/."""
    return [REPO_ROOT / "README.md", *sorted((REPO_ROOT / "docs").rglob("*.md"))]


@dataclass(frozen=True)
class Block:
    path: Path
    line: int  # 1-based line of the opening fence
    language: str  # first word of the info string ("json", "sh", ...)
    role: str  # second word of the info string, if any ("events", "counts", ...)
    text: str

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(REPO_ROOT)}:{self.line}"


def fenced_blocks(path: Path) -> list[Block]:
    blocks: list[Block] = []
    lines = path.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        match = _FENCE.match(lines[i])
        if match is None:
            i += 1
            continue
        fence, words = match["fence"], match["info"].split()
        body: list[str] = []
        j = i + 1
        while j < len(lines) and not (lines[j].strip().startswith(fence) and set(lines[j].strip()) == {fence[0]}):
            body.append(lines[j])
            j += 1
        blocks.append(Block(path, i + 1, words[0] if words else "", words[1] if len(words) > 1 else "", "\n".join(body)))
        i = j + 1
    return blocks


def prose(path: Path) -> str:
    """The text outside fenced blocks."""
    out: list[str] = []
    inside: str | None = None
    for line in path.read_text(encoding="utf-8").splitlines():
        match = _FENCE.match(line)
        if inside is None and match is not None:
            inside = match["fence"]
        elif inside is not None and line.strip().startswith(inside) and set(line.strip()) == {inside[0]}:
            inside = None
        elif inside is None:
            out.append(line)
    return "\n".join(out)


def inline_code(path: Path) -> list[str]:
    """Every inline code span of the prose (tables included), with `\\|` unescaped."""
    return [match.group(2).strip().replace("\\|", "|") for match in _INLINE_CODE.finditer(prose(path))]


def links(path: Path) -> list[str]:
    return _LINK.findall(prose(path))


def github_anchor(heading: str) -> str:
    """The id GitHub gives a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"`", "", heading.strip().lower())
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    seen: dict[str, int] = {}
    out: set[str] = set()
    for line in prose(path).splitlines():
        match = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if match is None:
            continue
        anchor = github_anchor(match.group(1))
        n = seen.get(anchor, 0)
        seen[anchor] = n + 1
        out.add(anchor if n == 0 else f"{anchor}-{n}")
    return out
