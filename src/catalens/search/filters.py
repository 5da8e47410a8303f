"""A small, safe ``--where`` expression language over product attributes (no ``eval``).

Grammar (keywords are case-insensitive)::

    expr       := or
    or         := and ("or" and)*
    and        := not ("and" not)*
    not        := "not" not | "(" expr ")" | comparison
    comparison := field op value
                | field ["not"] "in" "(" value ("," value)* ")"
                | field ["not"] "like" string
    op         := "=" | "==" | "!=" | "<>" | "<" | "<=" | ">" | ">="
    field      := name (letters, digits, "_", ".", "-") | `any name` | "any name"
    value      := 'string' | number | true | false | null

Examples: ``articleType = 'Tshirts' and gender = 'Women'``, ``year >= 2012``,
``baseColour in ('Red', 'Blue')``, ``title like '%running%'``, ``not (usage = 'Sports')``.

Semantics: fields are looked up in the attribute dict (exact key first, then case-insensitive);
catalog search adds ``id`` (product id) and ``title``. String comparisons ignore case; a number
compares numerically when both sides read as numbers. ``like`` takes ``%`` (any run) and ``_``
(one character). A missing attribute makes a comparison false (so ``not (x = 1)`` is true).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from catalens.errors import CatalensWarning, FilterSyntaxError, UnknownFieldError

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<str>'(?:[^']|'')*'|"(?:[^"]|"")*")
      | (?P<bq>`[^`]+`)
      | (?P<num>-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?(?![A-Za-z_]))
      | (?P<op><=|>=|!=|<>|==|=|<|>)
      | (?P<punct>[(),])
      | (?P<word>[A-Za-z_][A-Za-z0-9_.\-]*)
    )""",
    re.VERBOSE,
)
_KEYWORDS = {"and", "or", "not", "in", "like", "true", "false", "null"}


@dataclass(frozen=True)
class _Tok:
    kind: str  # str num op punct word kw field end
    value: Any
    pos: int


def _tokenize(text: str) -> list[_Tok]:
    toks: list[_Tok] = []
    i = 0
    while i < len(text):
        if text[i:].strip() == "":
            break
        m = _TOKEN.match(text, i)
        if not m or m.end() == i:
            j = i + len(text[i:]) - len(text[i:].lstrip())
            raise _error(text, j, f"unexpected character {text[j]!r}")
        kind = m.lastgroup or ""
        raw = m.group(kind)
        start = m.start(kind)
        if kind == "str":
            q = raw[0]
            toks.append(_Tok("str", raw[1:-1].replace(q + q, q), start))
        elif kind == "bq":
            toks.append(_Tok("field", raw[1:-1], start))
        elif kind == "num":
            toks.append(_Tok("num", float(raw) if any(c in raw for c in ".eE") else int(raw), start))
        elif kind == "word" and raw.lower() in _KEYWORDS:
            toks.append(_Tok("kw", raw.lower(), start))
        else:
            toks.append(_Tok(kind, raw, start))
        i = m.end()
    toks.append(_Tok("end", None, len(text)))
    return toks


def _error(text: str, pos: int, message: str) -> FilterSyntaxError:
    return FilterSyntaxError(f"bad --where at position {pos + 1}: {message}\n  {text}\n  {' ' * pos}^")


class Filter:
    """A parsed filter: ``matches(attrs) -> bool``. ``text`` is the source expression; ``equals``
    lists the ``field = 'value'`` and ``field in (...)`` comparisons (field, string values)."""

    def __init__(
        self,
        text: str,
        fn: Callable[[Mapping[str, Any]], bool],
        fields: frozenset[str],
        equals: tuple[tuple[str, tuple[str, ...]], ...] = (),
    ):
        self.text = text
        self._fn = fn
        self.fields = fields
        self.equals = equals

    def matches(self, attrs: Mapping[str, Any]) -> bool:
        return bool(self._fn(attrs))

    __call__ = matches

    def __repr__(self) -> str:
        return f"Filter({self.text!r})"


def _lookup(attrs: Mapping[str, Any], field: str) -> tuple[bool, Any]:
    if field in attrs:
        return True, attrs[field]
    low = field.lower()
    for k, v in attrs.items():
        if str(k).lower() == low:
            return True, v
    return False, None


def _as_number(v: Any) -> float | None:
    if isinstance(v, bool):
        return None
    if isinstance(v, int | float):
        return float(v)
    if isinstance(v, str):
        try:
            return float(v.strip())
        except ValueError:
            return None
    return None


def _compare(left: Any, op: str, right: Any) -> bool:
    if left is None or right is None:
        if op in ("=", "=="):
            return left is None and right is None
        if op in ("!=", "<>"):
            return (left is None) != (right is None)
        return False
    if isinstance(right, bool) or isinstance(left, bool):
        lb = str(left).lower() in {"true", "1", "yes"}
        rb = str(right).lower() in {"true", "1", "yes"}
        a, b = lb, rb
    else:
        ln, rn = _as_number(left), _as_number(right)
        if (
            ln is not None
            and rn is not None
            and (isinstance(right, int | float) or isinstance(left, int | float))
        ):
            a, b = ln, rn
        else:
            a, b = str(left).casefold(), str(right).casefold()
    if op in ("=", "=="):
        return a == b
    if op in ("!=", "<>"):
        return a != b
    try:
        if op == "<":
            return a < b  # type: ignore[operator]
        if op == "<=":
            return a <= b  # type: ignore[operator]
        if op == ">":
            return a > b  # type: ignore[operator]
        return a >= b  # type: ignore[operator]
    except TypeError:
        return False


def _like_regex(pattern: str) -> re.Pattern[str]:
    out = []
    for ch in pattern:
        out.append(".*" if ch == "%" else "." if ch == "_" else re.escape(ch))
    return re.compile("".join(out), re.IGNORECASE | re.DOTALL)


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.toks = _tokenize(text)
        self.i = 0
        self.fields: set[str] = set()
        self.equals: list[tuple[str, tuple[str, ...]]] = []

    def peek(self) -> _Tok:
        return self.toks[self.i]

    def take(self) -> _Tok:
        t = self.toks[self.i]
        self.i += 1
        return t

    def is_kw(self, word: str) -> bool:
        t = self.peek()
        return t.kind == "kw" and t.value == word

    def expect_punct(self, ch: str) -> None:
        t = self.take()
        if t.kind != "punct" or t.value != ch:
            raise _error(self.text, t.pos, f"expected {ch!r}, found {self._show(t)}")

    def _show(self, t: _Tok) -> str:
        return (
            "end of input"
            if t.kind == "end"
            else repr(self.text[t.pos :].split()[0] if t.kind != "str" else t.value)
        )

    def parse(self) -> Callable[[Mapping[str, Any]], bool]:
        if self.peek().kind == "end":
            raise _error(self.text, 0, "empty expression")
        fn = self.parse_or()
        t = self.peek()
        if t.kind != "end":
            raise _error(self.text, t.pos, f"unexpected {self._show(t)} (missing 'and'/'or'?)")
        return fn

    def parse_or(self) -> Callable[[Mapping[str, Any]], bool]:
        parts = [self.parse_and()]
        while self.is_kw("or"):
            self.take()
            parts.append(self.parse_and())
        return parts[0] if len(parts) == 1 else (lambda a, ps=tuple(parts): any(p(a) for p in ps))

    def parse_and(self) -> Callable[[Mapping[str, Any]], bool]:
        parts = [self.parse_not()]
        while self.is_kw("and"):
            self.take()
            parts.append(self.parse_not())
        return parts[0] if len(parts) == 1 else (lambda a, ps=tuple(parts): all(p(a) for p in ps))

    def parse_not(self) -> Callable[[Mapping[str, Any]], bool]:
        if self.is_kw("not"):
            self.take()
            inner = self.parse_not()
            return lambda a: not inner(a)
        t = self.peek()
        if t.kind == "punct" and t.value == "(":
            self.take()
            inner = self.parse_or()
            self.expect_punct(")")
            return inner
        return self.parse_comparison()

    def parse_value(self) -> Any:
        t = self.take()
        if t.kind in ("str", "num"):
            return t.value
        if t.kind == "kw" and t.value in ("true", "false", "null"):
            return {"true": True, "false": False, "null": None}[t.value]
        if t.kind == "word":
            raise _error(
                self.text, t.pos, f"expected a value, found {t.value!r} (quote strings: '{t.value}')"
            )
        raise _error(self.text, t.pos, f"expected a value, found {self._show(t)}")

    def parse_comparison(self) -> Callable[[Mapping[str, Any]], bool]:
        t = self.take()
        if t.kind not in ("word", "field"):
            raise _error(self.text, t.pos, f"expected a field name, found {self._show(t)}")
        field = str(t.value)
        self.fields.add(field)
        negate = False
        if self.is_kw("not"):
            self.take()
            negate = True
            if not (self.is_kw("in") or self.is_kw("like")):
                n = self.peek()
                raise _error(self.text, n.pos, "expected 'in' or 'like' after 'not'")
        nxt = self.peek()
        if nxt.kind == "kw" and nxt.value == "in":
            self.take()
            self.expect_punct("(")
            values = [self.parse_value()]
            while self.peek().kind == "punct" and self.peek().value == ",":
                self.take()
                values.append(self.parse_value())
            self.expect_punct(")")
            strings = tuple(str(v) for v in values if isinstance(v, str))
            if strings and not negate:
                self.equals.append((field, strings))

            def in_fn(a: Mapping[str, Any], vs: tuple[Any, ...] = tuple(values)) -> bool:
                found, v = _lookup(a, field)
                if not found:
                    return False
                hit = any(_compare(v, "=", x) for x in vs)
                return hit != negate

            return in_fn
        if nxt.kind == "kw" and nxt.value == "like":
            self.take()
            pat = self.take()
            if pat.kind != "str":
                raise _error(self.text, pat.pos, "'like' needs a quoted pattern, e.g. like '%shirt%'")
            rx = _like_regex(str(pat.value))

            def like_fn(a: Mapping[str, Any]) -> bool:
                found, v = _lookup(a, field)
                if not found or v is None:
                    return False
                return bool(rx.fullmatch(str(v))) != negate

            return like_fn
        if nxt.kind != "op":
            raise _error(self.text, nxt.pos, f"expected an operator after {field!r}, found {self._show(nxt)}")
        op = str(self.take().value)
        value = self.parse_value()
        if op in ("=", "==") and isinstance(value, str):
            self.equals.append((field, (value,)))

        def cmp_fn(a: Mapping[str, Any]) -> bool:
            found, v = _lookup(a, field)
            if not found:
                return False
            return _compare(v, op, value)

        return cmp_fn


def parse_where(text: str) -> Filter:
    """Parse a ``--where`` expression; raises :class:`FilterSyntaxError` with the position on error."""
    if not isinstance(text, str):
        raise FilterSyntaxError("--where expects a string expression")
    if len(text) > 10_000:
        raise FilterSyntaxError("--where expression is too long (over 10,000 characters)")
    p = _Parser(text)
    fn = p.parse()
    return Filter(text, fn, frozenset(p.fields), tuple(p.equals))


def check_filter(flt: Filter, rows: Iterable[Mapping[str, Any]]) -> list[str]:
    """Check ``flt`` against the attribute dicts it will filter (one per product, as the filter sees
    them). A field that no row has raises :class:`UnknownFieldError` listing the known fields (with
    "did you mean"); each ``field = 'value'`` whose value no row holds gives a warning, returned and
    issued as a :class:`CatalensWarning`, with the closest values. Nothing is checked on no rows."""
    import difflib
    import warnings

    known: dict[str, str] = {}  # casefolded -> as spelled
    wanted = {f.casefold() for f, _ in flt.equals}
    values: dict[str, dict[str, str]] = {f: {} for f in wanted}
    any_row = False
    for row in rows:
        any_row = True
        for k, v in row.items():
            key = str(k).casefold()
            known.setdefault(key, str(k))
            if key in values and v is not None and len(values[key]) < 100_000:
                values[key].setdefault(str(v).casefold(), str(v))
    if not any_row:
        return []
    for f in sorted(flt.fields):
        if f.casefold() not in known:
            names = sorted(known.values(), key=str.casefold)
            close = difflib.get_close_matches(f.casefold(), list(known), n=3, cutoff=0.5)
            hint = f"; did you mean {', '.join(repr(known[c]) for c in close)}?" if close else ""
            raise UnknownFieldError(
                f"bad --where: no product has the field {f!r}{hint} (known fields: {', '.join(names)})"
            )
    notes: list[str] = []
    for f, vals in flt.equals:
        seen = values[f.casefold()]
        for v in vals:
            if v.casefold() in seen:
                continue
            close = difflib.get_close_matches(v.casefold(), list(seen), n=3, cutoff=0.6)
            hint = (
                f"; did you mean {', '.join(repr(seen[c]) for c in close)}?"
                if close
                else f" ({len(seen)} distinct values)"
            )
            notes.append(f"--where: no product has {known[f.casefold()]} = {v!r}{hint}")
    for note in notes:
        warnings.warn(note, CatalensWarning, stacklevel=2)
    return notes
