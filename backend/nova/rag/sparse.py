"""BM25-style sparse vectors computed locally for a Qdrant sparse vector with ``Modifier.IDF``.

Documents carry the BM25 term-frequency part (saturated by ``k1``, length-normalised by ``b``);
Qdrant multiplies in the IDF from its own corpus statistics at query time, so a query vector is
just each distinct query term with weight 1. Terms are lowercased, stop-word filtered, Snowball
stemmed and hashed into a 31-bit id space, so no vocabulary has to be stored or synchronised.
"""

from __future__ import annotations

import re
import zlib
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache

import snowballstemmer

_TOKEN = re.compile(r"[^\W_]+(?:[-'][^\W_]+)*", re.UNICODE)

# Lucene/Elasticsearch English stop list plus frequent function words.
STOPWORDS = frozenset(
    """a an and are as at be but by for if in into is it no not of on or such that the their then there
    these they this to was will with i me my we our you your he him his she her its them what which who
    whom whose do does did doing have has had having am been being would should could can may might
    must shall from up down out over under again further once here when where why how all any both each
    few more most other some so than too very s t just don now about above after before below between
    during through until while off own same nor only""".split()
)


@dataclass(frozen=True, slots=True)
class SparseVec:
    indices: list[int]
    values: list[float]


_stemmer = snowballstemmer.stemmer("english")


@lru_cache(maxsize=200_000)
def _term_id(token: str) -> int:
    """Stem then hash; cached because natural-language vocabularies are Zipfian."""
    stem = _stemmer.stemWord(token)
    return zlib.crc32(stem.encode("utf-8")) & 0x7FFFFFFF


def terms(text: str) -> list[int]:
    """Hashed stemmed terms of ``text`` in order (stop words and 1-char tokens removed, codes kept)."""
    out: list[int] = []
    for match in _TOKEN.finditer(text.lower()):
        token = match.group()
        if token in STOPWORDS or (len(token) < 2 and not token.isdigit()):
            continue
        out.append(_term_id(token))
        if "-" in token:  # "DW-5520" also matches "DW5520" and "DW 5520"
            out.append(_term_id(token.replace("-", "")))
            out.extend(_term_id(part) for part in token.split("-") if part not in STOPWORDS)
    return out


class SparseEncoder:
    """BM25 term weights; ``avg_len`` approximates the corpus mean chunk length in terms."""

    def __init__(self, *, k1: float = 1.2, b: float = 0.75, avg_len: float = 120.0) -> None:
        self.k1 = k1
        self.b = b
        self.avg_len = avg_len

    def encode_document(self, text: str) -> SparseVec:
        counts = Counter(terms(text))
        if not counts:
            return SparseVec([], [])
        norm = self.k1 * (1.0 - self.b + self.b * sum(counts.values()) / self.avg_len)
        indices = list(counts)
        values = [tf * (self.k1 + 1.0) / (tf + norm) for tf in counts.values()]
        return SparseVec(indices, values)

    def encode_query(self, text: str) -> SparseVec:
        unique = list(dict.fromkeys(terms(text)))
        return SparseVec(unique, [1.0] * len(unique))
