"""Chunker (token budgets measured with the real MiniLM tokenizer) and text extraction."""

from __future__ import annotations

import itertools

import pytest

from nova.errors import BadRequest, Unprocessable
from nova.rag.chunker import Chunker, sections
from nova.rag.extract import detect_kind, extract_text

from .pdfgen import make_pdf


def test_sections_follow_heading_hierarchy_and_ignore_code_fences() -> None:
    text = "intro para\n\n# Guide\n\none\n\ntwo\n\n## Install\n\n```\n# not a heading\n```\n\n# Other\n\nz"
    got = sections(text)
    assert [h for h, _ in got] == ["", "Guide", "Guide > Install", "Other"]
    assert got[1][1] == ["one", "two"]
    assert "# not a heading" in got[2][1][0]


def test_chunks_respect_budget_headings_and_overlap(embedder) -> None:  # type: ignore[no-untyped-def]
    sentences = [
        f"Sentence number {i} explains how the valve {i} regulates pressure in stage {i}." for i in range(60)
    ]
    text = (
        "# Pumps\n\n"
        + " ".join(sentences[:30])
        + "\n\n"
        + " ".join(sentences[30:])
        + "\n\n# Filters\n\nShort section."
    )
    chunker = Chunker(embedder, max_tokens=64, overlap=16)
    chunks = chunker.chunk(text)
    assert len(chunks) > 5
    assert [c.index for c in chunks] == list(range(len(chunks)))
    for c in chunks:
        assert embedder.count_tokens(c.text) <= 64 + 2  # joining spaces may merge pieces
        assert c.tokens <= 64
    pumps = [c for c in chunks if c.heading == "Pumps"]
    assert all(c.text.startswith("Pumps\n\n") for c in pumps)
    assert chunks[-1].heading == "Filters" and chunks[-1].text == "Filters\n\nShort section."
    # overlap: each pumps chunk begins with the last sentence of the previous one
    for prev, nxt in itertools.pairwise(pumps):
        last_sentence = prev.text.rsplit(". ", 1)[-1].split("\n\n")[-1]
        assert last_sentence in nxt.text
    # every sentence survives
    joined = " ".join(c.text for c in chunks)
    assert all(s in joined for s in sentences)


def test_oversized_sentence_is_split_on_token_windows(embedder) -> None:  # type: ignore[no-untyped-def]
    words = " ".join(f"word{i}" for i in range(400))
    chunks = Chunker(embedder, max_tokens=50, overlap=10).chunk(words)
    assert len(chunks) > 5
    assert all(c.tokens <= 50 for c in chunks)
    assert "word0" in chunks[0].text and "word399" in chunks[-1].text


def test_chunker_rejects_bad_parameters(embedder) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError):
        Chunker(embedder, max_tokens=8)
    with pytest.raises(ValueError):
        Chunker(embedder, max_tokens=64, overlap=40)


def test_extract_txt_md_html_pdf() -> None:
    assert extract_text("a.txt", None, "héllo wörld".encode()) == ("txt", "héllo wörld")
    assert extract_text("a.txt", None, "caf\xe9".encode("cp1252"))[1] == "café"
    kind, md = extract_text("notes.md", None, b"# Title\n\nBody text")
    assert kind == "md" and md.startswith("# Title")
    html = (
        b"<html><head><title>Manual</title><style>p{}</style></head><body><nav>menu</nav>"
        b"<h1>Dryer</h1><p>Clean the <b>lint</b> filter.</p><ul><li>Step one</li></ul>"
        b"<script>alert(1)</script><h2>Codes</h2><p>F07 means overheating.</p></body></html>"
    )
    kind, text = extract_text("page.html", None, html)
    assert kind == "html"
    assert (
        text
        == "# Manual\n\n# Dryer\n\nClean the lint filter.\n\n- Step one\n\n## Codes\n\nF07 means overheating."
    )
    pdf = make_pdf([["Error E24 means a blocked drain."], ["Second page about pumps."]])
    kind, text = extract_text("m.pdf", "application/pdf", pdf)
    assert kind == "pdf" and "Error E24 means a blocked drain." in text and "Second page about pumps." in text


def test_detect_kind_by_extension_mime_and_magic() -> None:
    assert detect_kind("x", "application/pdf", b"") == "pdf"
    assert detect_kind("upload", None, b"%PDF-1.7 ...") == "pdf"
    assert detect_kind("upload", "application/octet-stream", b"<!DOCTYPE html><p>x") == "html"
    assert detect_kind("README", None, b"plain") == "txt"


@pytest.mark.parametrize(
    ("name", "ctype", "data", "err", "code"),
    [
        ("a.txt", None, b"", BadRequest, "empty_file"),
        ("a.md", None, b"  \n\t ", BadRequest, "empty_file"),
        ("a.docx", None, b"PK\x03\x04", Unprocessable, "unsupported_file_type"),
        ("a.bin", "image/png", b"\x89PNG", Unprocessable, "unsupported_file_type"),
        ("a.txt", None, b"\x00\x01\x02binary", Unprocessable, "unsupported_file_type"),
        ("a.pdf", None, b"%PDF-1.4 garbage that is not a pdf", Unprocessable, "corrupt_file"),
        ("a.pdf", None, make_pdf([[]]), Unprocessable, "empty_document"),
        ("a.html", None, b"<html><script>x()</script></html>", Unprocessable, "empty_document"),
    ],
)
def test_bad_input_is_rejected_clearly(
    name: str, ctype: str | None, data: bytes, err: type, code: str
) -> None:
    with pytest.raises(err) as info:
        extract_text(name, ctype, data)
    assert info.value.code == code
