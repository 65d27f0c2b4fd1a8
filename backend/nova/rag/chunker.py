"""Token-aware chunking that follows the document's structure.

Text is split into sections at Markdown headings (extractors render HTML/PDF structure the same
way), sections into paragraphs, and paragraphs are packed greedily into chunks of at most
``max_tokens`` word pieces of the embedding model, so no chunk is silently truncated by it. A chunk
never spans two sections; it starts with its section's heading path so it stays meaningful on its
own. Consecutive chunks of a section share ``overlap`` tokens of trailing sentences. Oversized
paragraphs fall back to sentences, oversized sentences to token windows.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Protocol

_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
_BLANK = re.compile(r"\n\s*\n")
_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[\"'(\[]?[A-Z0-9])")


class Tokenizer(Protocol):
    def count_tokens(self, text: str) -> int: ...

    def token_offsets(self, text: str) -> list[tuple[int, int]]: ...


@dataclass(frozen=True, slots=True)
class Chunk:
    index: int
    text: str
    heading: str
    tokens: int


@dataclass(slots=True)
class _Unit:
    text: str
    tokens: int


def sections(text: str) -> list[tuple[str, list[str]]]:
    """(heading path, paragraphs) in document order; the path joins nested headings with ' > '."""
    out: list[tuple[str, list[str]]] = []
    path: list[tuple[int, str]] = []
    buf: list[str] = []

    def flush_section() -> None:
        paragraphs = [p.strip() for p in _BLANK.split("\n".join(buf)) if p.strip()]
        if paragraphs:
            out.append((" > ".join(t for _, t in path), paragraphs))
        buf.clear()

    in_fence = False
    for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        if line.lstrip().startswith("```"):
            in_fence = not in_fence
        m = None if in_fence else _HEADING.match(line)
        if m:
            flush_section()
            level = len(m.group(1))
            path = [(lvl, t) for lvl, t in path if lvl < level] + [(level, m.group(2).strip())]
        else:
            buf.append(line)
    flush_section()
    return out


class Chunker:
    def __init__(self, tokenizer: Tokenizer, *, max_tokens: int = 256, overlap: int = 32) -> None:
        if max_tokens < 16:
            raise ValueError("max_tokens must be at least 16")
        if not 0 <= overlap < max_tokens // 2:
            raise ValueError("overlap must be between 0 and max_tokens / 2")
        self.tok = tokenizer
        self.max_tokens = max_tokens
        self.overlap = overlap

    def chunk(self, text: str) -> list[Chunk]:
        chunks: list[Chunk] = []
        for heading, paragraphs in sections(text):
            prefix = heading + "\n\n" if heading else ""
            prefix_tokens = self.tok.count_tokens(prefix) if prefix else 0
            if prefix_tokens > self.max_tokens // 3:  # absurd heading: do not let it eat the budget
                prefix, prefix_tokens = "", 0
            budget = self.max_tokens - prefix_tokens
            for body, tokens in self._pack(self._units(paragraphs, budget), budget):
                chunks.append(Chunk(len(chunks), prefix + body, heading, prefix_tokens + tokens))
        return chunks

    def _units(self, paragraphs: list[str], budget: int) -> list[list[_Unit]]:
        """Each paragraph as a list of units that individually fit the budget."""
        out: list[list[_Unit]] = []
        for para in paragraphs:
            n = self.tok.count_tokens(para)
            if n <= budget:
                out.append([_Unit(para, n)])
                continue
            units: list[_Unit] = []
            for sentence in _SENTENCE.split(para):
                sentence = sentence.strip()
                if not sentence:
                    continue
                m = self.tok.count_tokens(sentence)
                if m <= budget:
                    units.append(_Unit(sentence, m))
                else:
                    units.extend(self._windows(sentence, budget))
            out.append(units)
        return out

    def _windows(self, text: str, budget: int) -> list[_Unit]:
        """Split on token boundaries; windows overlap like chunks do."""
        offsets = self.tok.token_offsets(text)
        step = max(1, budget - self.overlap)
        out: list[_Unit] = []
        for start in range(0, len(offsets), step):
            window = offsets[start : start + budget]
            out.append(_Unit(text[window[0][0] : window[-1][1]], len(window)))
            if start + budget >= len(offsets):
                break
        return out

    def _pack(self, paragraphs: list[list[_Unit]], budget: int) -> list[tuple[str, int]]:
        out: list[tuple[str, int]] = []
        current: list[tuple[_Unit, bool]] = []  # (unit, starts a paragraph)
        used = 0
        carried = 0  # leading units that repeat the previous chunk's tail

        def emit() -> None:
            nonlocal current, used, carried
            if len(current) <= carried:
                return
            parts: list[str] = []
            for unit, starts_para in current:
                parts.append(("\n\n" if starts_para else " ") + unit.text if parts else unit.text)
            out.append(("".join(parts), used))
            tail: list[tuple[_Unit, bool]] = []
            tail_tokens = 0
            for unit, starts_para in reversed(current):
                if tail_tokens + unit.tokens > self.overlap:
                    break
                tail.insert(0, (unit, starts_para))
                tail_tokens += unit.tokens
            current, used, carried = tail, tail_tokens, len(tail)

        for units in paragraphs:
            for i, unit in enumerate(units):
                if current and used + unit.tokens > budget:
                    emit()
                    if used + unit.tokens > budget:  # the carried overlap itself does not fit
                        current, used, carried = [], 0, 0
                current.append((unit, i == 0))
                used += unit.tokens
        emit()
        return out
