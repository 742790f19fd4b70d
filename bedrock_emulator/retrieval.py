"""Lexical relevance: the emulated knowledge base's BM25 over its passages.

Pure functions, so tests compute the exact passages and scores Retrieve
answers (`rank(passages, query)`) instead of guessing.

Rules:
- Tokens: the text lower-cased, split into runs of letters and digits
  (`[^\\W_]+`). A run holding Hangul also gives its character bigrams, so
  "모델은" matches "모델" (Korean attaches particles to the noun). Tokens in
  STOPWORDS (English function words, common Korean verb endings) are dropped.
- Score: Okapi BM25 with k1 = 1.2, b = 0.75 and Lucene's idf
  ln(1 + (N - n + 0.5) / (n + 0.5)), summed over the query's distinct tokens,
  rounded to 6 digits. Search type (HYBRID, SEMANTIC) does not change it.
- Order: highest score first, ties by passage id; only scores > 0.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

K1 = 1.2
B = 0.75
_RUN = re.compile(r"[^\W_]+")
_HANGUL = re.compile(r"[\uac00-\ud7a3]")
STOPWORDS = frozenset(
    (
        "a an and are as at be by can do does for from has have how i in is it its of on or "
        "that the their them there these they this to was what when where which who why will "
        "with you your me my we our about into than then so if not no"
    ).split()
    + "니다 습니 합니 입니 있습 됩니 무엇 어떤 어떻 인가 가요 나요 까요 주세 세요".split()
)


@dataclass(frozen=True)
class Passage:
    id: str
    text: str
    metadata: dict[str, Any]


@dataclass(frozen=True)
class Scored:
    passage: Passage
    score: float


def tokens(text: str) -> list[str]:
    """The index terms of a text, in order, with repeats (see the module rules)."""
    terms: list[str] = []
    for run in _RUN.findall(text.lower()):
        terms.append(run)
        if _HANGUL.search(run) and len(run) > 2:
            terms.extend(run[i : i + 2] for i in range(len(run) - 1))
    return [term for term in terms if term not in STOPWORDS]


def rank(passages: Sequence[Passage], query: str) -> list[Scored]:
    """Every passage that shares a term with `query`, most relevant first."""
    documents = [Counter(tokens(p.text)) for p in passages]
    if not documents:
        return []
    average = sum(sum(d.values()) for d in documents) / len(documents)
    frequency: Counter[str] = Counter()
    for document in documents:
        frequency.update(document.keys())
    wanted = sorted(set(tokens(query)))  # a fixed order: float sums do not depend on hashing
    scored = []
    for passage, document in zip(passages, documents, strict=True):
        length = sum(document.values())
        total = 0.0
        for term in wanted:
            count = document.get(term, 0)
            if count:
                n = frequency[term]
                idf = math.log(1 + (len(documents) - n + 0.5) / (n + 0.5))
                norm = count + K1 * (1 - B + B * length / average)
                total += idf * count * (K1 + 1) / norm
        score = round(total, 6)
        if score > 0:
            scored.append(Scored(passage, score))
    scored.sort(key=lambda s: (-s.score, s.passage.id))
    return scored
