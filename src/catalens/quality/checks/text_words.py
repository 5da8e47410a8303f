"""The word lists of the text and watermark checks (packaged data, ``quality/data/text_words.yaml``, with
a note on where they come from) and how OCR'd words are matched against them: typo-tolerant equality,
run-together compounds, promotional patterns, repeated fragments of a tiled mark.
"""

from __future__ import annotations

import re
from pathlib import Path

from catalens.errors import ConfigError

WORDS_FILE = "text_words.yaml"  # in catalens/quality/data: the word lists and where they come from


def load_word_lists(path: Path | None = None) -> dict[str, list[str]]:
    """The text checks' word lists (``promo_words``, ``promo_patterns``, ``promo_modifiers``,
    ``watermark_words``) from the packaged YAML file, or ``path``."""
    import yaml

    from catalens.quality.tree_models import data_dir

    src = path or data_dir() / WORDS_FILE
    try:
        data = yaml.safe_load(src.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{src}: cannot read the text checks' word lists: {exc}") from exc
    keys = ("promo_words", "promo_patterns", "promo_modifiers", "watermark_words")
    if not isinstance(data, dict) or any(not isinstance(data.get(k), list) for k in keys):
        raise ConfigError(f"{src}: needs the lists {', '.join(keys)}")
    for pattern in data["promo_patterns"]:
        try:
            re.compile(str(pattern))
        except re.error as exc:
            raise ConfigError(f"{src}: promo pattern {pattern!r} is not a regular expression: {exc}") from exc
    return {k: [str(w) for w in data[k]] for k in keys}


_WORDS = load_word_lists()

PROMO_WORDS = _WORDS["promo_words"]

PROMO_PATTERNS = _WORDS["promo_patterns"]


def _similar(a: str, b: str) -> bool:
    """Equal, or one edit apart for words of 4+ letters (two for 7+); words under 6 letters only by a
    substitution (an OCR misread), so that "ideal" is not "deal"."""
    if a == b:
        return True
    if len(b) < 4 or abs(len(a) - len(b)) > 2 or (len(b) < 6 and len(a) != len(b)):
        return False
    return _edit_distance(a, b) <= (2 if len(b) >= 7 else 1)


def _edit_distance(a: str, b: str) -> int:
    """Levenshtein distance (insertions, deletions, substitutions) of two short strings."""
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


SUBSTRING_MIN = 5  # promo words this long also match inside a longer token ("BESTPRICE", "FREESHIPPING")

PROMO_MODIFIERS = _WORDS["promo_modifiers"]  # open a compound when OCR drops the space ("HOTDEAL")


def _compound(token: str, words: list[str]) -> str | None:
    """The promo word in a run-together ``token`` made of two words where OCR dropped the space, one of
    them a promo word and the other a promo word or a modifier ("HOTDEAL", "FREESHIPPNG" - each part
    typo-tolerant), else None. Ordinary words that merely contain a short promo word ("freedom",
    "ideal") are not split into two known words, so they do not match."""
    if len(token) < 6:
        return None
    for cut in range(3, len(token) - 2):
        head, tail = token[:cut], token[cut:]
        for a, b in ((head, tail), (tail, head)):
            hit = next((w for w in words if _similar(a, w)), None)
            if hit and (any(_similar(b, w) for w in words) or b in PROMO_MODIFIERS):
                return hit
    return None


def _promo(texts: list[str], words: list[str]) -> list[str]:
    """Promotional words/patterns found in ``texts`` (OCR output, so matching is typo-tolerant, words
    of ``SUBSTRING_MIN``+ letters are also found inside tokens where OCR dropped a space, and two-word
    compounds such as "HOTDEAL" are split, see :func:`_compound`)."""
    joined = " ".join(texts).lower()
    tokens = re.findall(r"[a-z]+", joined)
    single = [w.lower() for w in words if w.isalpha()]
    compounds = {c for t in tokens if (c := _compound(t, single))}
    found: list[str] = []
    for word in words:
        w = word.lower()
        if " " in w or not w.isalpha():
            if w in joined:
                found.append(word)
        elif (
            any(_similar(t, w) for t in tokens)
            or (len(w) >= SUBSTRING_MIN and any(w in t and len(t) > len(w) for t in tokens))
            or w in compounds
        ):
            found.append(word)
    found += [p for p in PROMO_PATTERNS if re.search(p, joined)]
    return found


WATERMARK_WORDS = _WORDS["watermark_words"]


def _self_repeats(token: str, k: int) -> bool:
    """True when some ``k``-character piece of ``token`` occurs twice without overlap: tiled text
    that OCR reads as one run-together line ("PHOTO STUDIOPHOTO STU")."""
    return any(token.find(token[i : i + k], i + k) >= 0 for i in range(len(token) - 2 * k + 1))


def _shared(a: str, b: str) -> int:
    """Length of the longest common substring of two OCR tokens."""
    from difflib import SequenceMatcher

    return SequenceMatcher(None, a, b, autojunk=False).find_longest_match(0, len(a), 0, len(b)).size


def _has_mark_word(text: str, words: list[str], *, fuzzy: bool = False) -> bool:
    """A watermark word in ``text`` (lower case): as a substring; for alphabetic words of 6+ letters
    also a token that is the word with its first or last letter lost (the ends of faint, see-through
    strokes are what OCR drops: "AMPLE" for "SAMPLE"); with ``fuzzy`` (an uncertain read) also one
    OCR misread away from a word of 5+ letters or from such a truncation ("PROOP", "AMPLC")."""
    if any(w.lower() in text for w in words):
        return True
    tokens = re.findall(r"[a-z]+", text)
    for w in (w.lower() for w in words if w.isalpha() and len(w) >= 5):
        forms = [w] + ([w[1:], w[:-1]] if len(w) >= 6 else [])
        for t in tokens:
            if t in forms[1:] or (fuzzy and any(_similar(t, f) for f in forms)):
                return True
    return False


def _fragment_groups(norm: list[str], k: int, min_size: int) -> set[int]:
    """Indices of the tokens in groups of ``min_size``+ linked by shared ``k``-character pieces
    (transitively: "ROO" - "ROOF" - "OOF"): the tiles of a faint watermark that OCR reads only in
    fragments."""
    parent = list(range(len(norm)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, a in enumerate(norm):
        for j in range(i + 1, len(norm)):
            if len(a) >= k and len(norm[j]) >= k and _shared(a, norm[j]) >= k:
                parent[root(i)] = root(j)
    sizes: dict[int, int] = {}
    for i in range(len(norm)):
        sizes[root(i)] = sizes.get(root(i), 0) + 1
    return {i for i in range(len(norm)) if sizes[root(i)] >= min_size}
