"""The --where expression language."""

from __future__ import annotations

import pytest

from catalens.errors import FilterSyntaxError
from catalens.search.filters import parse_where

ROW = {"articleType": "Tshirts", "gender": "Women", "year": "2012", "title": "Nike Red Tee", "id": "15970"}


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ("articleType = 'Tshirts' and gender = 'Women'", True),
        ("articleType = 'tshirts'", True),
        ("gender != 'Women'", False),
        ("year >= 2012 and year < 2013", True),
        ("year > 2012", False),
        ("gender in ('Men', 'Women')", True),
        ("gender not in ('Men', 'Women')", False),
        ("title like '%red%'", True),
        ("title not like 'Adidas%'", True),
        ("title like 'N_ke%'", True),
        ("not (gender = 'Women') or id = '15970'", True),
        ("(gender = 'Men' or gender = 'Boys') and year = 2012", False),
        ("colour = 'Red'", False),
        ("not colour = 'Red'", True),
        ('`articleType` = "Tshirts"', True),
        ("GENDER = 'women' AND Year <= 2012.5", True),
        ("title = 'it''s'", False),
    ],
)
def test_matches(expr: str, expected: bool) -> None:
    assert parse_where(expr).matches(ROW) is expected


@pytest.mark.parametrize(
    "expr",
    [
        "",
        "   ",
        "gender =",
        "gender = Women",
        "gender = 'W' gender = 'M'",
        "(gender = 'W'",
        "gender ~ 'W'",
        "gender in 'W'",
        "gender in ('W',",
        "title like 5",
        "and gender = 'W'",
        "gender = 'unterminated",
        "gender not = 'W'",
        "= 'W'",
    ],
)
def test_malformed_raises_with_position(expr: str) -> None:
    with pytest.raises(FilterSyntaxError) as info:
        parse_where(expr)
    assert "position" in str(info.value)


def test_fields_recorded() -> None:
    assert parse_where("a = 1 and (b in (2) or not c like 'x')").fields == {"a", "b", "c"}
