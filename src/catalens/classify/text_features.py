"""Title word features for fused classifiers: a hashed bag of title words and word pairs.

Product titles name the product type in plain words ("Nike Women As Trophy Swo White T-Shirts"),
which a sentence embedding (MiniLM) blurs together with the brand and the colour. The bag of
words keeps them apart: every lower-cased word (letters and digits), every adjacent word pair and
the last word (the type word in most catalog titles), with plural stems of words and of joined
word pairs ("T-Shirts", "Tshirt" and "tshirts" meet), is hashed (CRC-32, stable across processes
and Python versions, so no vocabulary is stored) into ``dim`` columns; a row is the L2-normalised
binary indicator vector. The linear head standardises columns, which weighs rare words up like an
IDF would. Used by classifiers whose input includes ``words`` (``catalens classify train --title-words``).
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Sequence

import numpy as np

WORDS_DIM = 4096
_WORD = re.compile(r"[a-z0-9]+")


def stem(word: str) -> str:
    """A crude plural stem ("shirts" -> "shirt", "dresses" -> "dress", "glass" stays)."""
    if word.endswith("es") and len(word) > 4 and word[-3] in "sxz":
        return word[:-2]
    if word.endswith("s") and not word.endswith("ss") and len(word) > 3:
        return word[:-1]
    return word


def title_tokens(title: str | None) -> list[str]:
    """Tokens of a title: words (``w:``), adjacent pairs (``p:a_b``), the last word (``l:``), and
    plural stems of words, of joined pairs ("t shirts" -> ``s:tshirt``, as "tshirt") and of the
    last word (``s:``, ``ls:``)."""
    words = _WORD.findall((title or "").lower())
    toks = [f"w:{w}" for w in words]
    toks += [f"p:{a}_{b}" for a, b in zip(words, words[1:], strict=False)]
    if words:
        toks.append(f"l:{words[-1]}")
    toks += [f"s:{stem(w)}" for w in words]
    toks += [f"s:{stem(a + b)}" for a, b in zip(words, words[1:], strict=False)]
    if words:
        toks.append(f"ls:{stem(words[-1])}")
    return toks


def word_features(titles: Sequence[str | None], dim: int = WORDS_DIM) -> np.ndarray:
    """``(N, dim)`` float32: hashed binary bag of :func:`title_tokens`, rows L2-normalised (an empty
    title gives a zero row)."""
    X = np.zeros((len(titles), dim), np.float32)
    for i, t in enumerate(titles):
        cols = {zlib.crc32(tok.encode()) % dim for tok in title_tokens(t)}
        if cols:
            X[i, sorted(cols)] = 1.0 / np.sqrt(len(cols))
    return X
