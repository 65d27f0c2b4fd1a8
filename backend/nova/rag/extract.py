"""Text extraction for uploads: txt, md, html (BeautifulSoup), pdf (pypdf).

Structure survives as Markdown headings and blank-line paragraphs, which is what the chunker
splits on. Anything unreadable is an ``Unprocessable`` with a message naming the problem, raised
before a document is accepted, so a corrupt upload never reaches the vector store.
"""

from __future__ import annotations

import io
import logging
import re
from pathlib import PurePath

from nova.errors import BadRequest, Unprocessable

SUPPORTED = {"txt": "text/plain", "md": "text/markdown", "html": "text/html", "pdf": "application/pdf"}
_EXTENSIONS = {
    ".txt": "txt",
    ".text": "txt",
    ".md": "md",
    ".markdown": "md",
    ".html": "html",
    ".htm": "html",
    ".pdf": "pdf",
}
_MIME = {
    "text/plain": "txt",
    "text/markdown": "md",
    "text/x-markdown": "md",
    "text/html": "html",
    "application/xhtml+xml": "html",
    "application/pdf": "pdf",
}


def detect_kind(filename: str, content_type: str | None, data: bytes) -> str:
    """Extension first (browsers send generic types), then MIME type, then magic bytes."""
    ext = PurePath(filename or "").suffix.lower()
    if ext in _EXTENSIONS:
        return _EXTENSIONS[ext]
    mime = (content_type or "").split(";")[0].strip().lower()
    if mime in _MIME:
        return _MIME[mime]
    if data.startswith(b"%PDF-"):
        return "pdf"
    head = data[:512].lstrip().lower()
    if head.startswith((b"<!doctype html", b"<html")):
        return "html"
    if ext or (mime and mime not in ("application/octet-stream", "")):
        raise Unprocessable(
            f"unsupported file type {ext or mime!r}; supported: txt, md, html, pdf",
            code="unsupported_file_type",
        )
    return "txt"


def _decode(data: bytes) -> str:
    if b"\x00" in data[:8192]:
        raise Unprocessable("file looks binary, not text", code="unsupported_file_type")
    for encoding in ("utf-8-sig", "cp1252"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    return data.decode("latin-1")


def _html(data: bytes) -> str:
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(data, "html.parser")
    title = soup.title.get_text(" ", strip=True) if soup.title else ""
    for tag in soup(["script", "style", "noscript", "template", "svg", "nav", "footer", "head"]):
        tag.decompose()
    blocks: list[str] = []
    body = soup.body or soup
    for el in body.find_all(
        ["h1", "h2", "h3", "h4", "h5", "h6", "p", "li", "pre", "blockquote", "td", "th", "dt", "dd"]
    ):
        if el.find_parent(["p", "li", "pre", "blockquote", "td", "th", "dd"]) is not None:
            continue  # nested block: its text is already in the outer one
        text = el.get_text(" ", strip=True) if el.name != "pre" else el.get_text()
        if not text:
            continue
        if el.name and el.name[0] == "h" and el.name[1:].isdigit():
            blocks.append("#" * int(el.name[1]) + " " + text)
        elif el.name == "li":
            blocks.append("- " + text)
        else:
            blocks.append(text)
    if not blocks:  # no block markup at all: fall back to the visible text
        blocks = [body.get_text("\n", strip=True)]
    if title and not any(b.lstrip("#").strip() == title for b in blocks[:3]):
        blocks.insert(0, "# " + title)
    return "\n\n".join(blocks)


def _pdf(data: bytes) -> str:
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    logging.getLogger("pypdf").setLevel(logging.ERROR)
    try:
        reader = PdfReader(io.BytesIO(data), strict=False)
        if reader.is_encrypted and not reader.decrypt(""):
            raise Unprocessable("pdf is encrypted", code="corrupt_file")
        pages = [page.extract_text() or "" for page in reader.pages]
    except Unprocessable:
        raise
    except (PdfReadError, ValueError, KeyError, TypeError, OSError, AssertionError) as exc:
        raise Unprocessable(f"corrupt or unreadable pdf: {exc}", code="corrupt_file") from exc
    return "\n\n".join(p.strip() for p in pages if p.strip())


def extract_text(filename: str, content_type: str | None, data: bytes) -> tuple[str, str]:
    """Return (kind, normalised text); raise on empty, unsupported or corrupt input."""
    if not data or not data.strip():
        raise BadRequest("file is empty", code="empty_file")
    kind = detect_kind(filename, content_type, data)
    if kind == "pdf":
        text = _pdf(data)
    elif kind == "html":
        text = _html(data)
    else:
        text = _decode(data)
    text = re.sub(r"[ \t\u00a0]+\n", "\n", text.replace("\x00", "")).strip()
    if not text:
        raise Unprocessable(f"no extractable text in {kind} file", code="empty_document")
    return kind, text
