"""Short fuzz runs (Hypothesis) of the parsers that take untrusted input: the image decoder (mutated
real JPEG/PNG/WebP/GIF/TIFF files), the manifest readers, the ``--where`` parser, and the profile and
taxonomy YAML loaders. Only typed catalens errors may escape, within a deadline. The long budget is
``bench/fuzz.py``; its findings become regression tests below."""

from __future__ import annotations

import fuzz_targets as ft
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

SEEDS = ft.seeds()
FAST = settings(max_examples=150, deadline=2000, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def mutated_images(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 8))):
        op = draw(st.sampled_from(["flip", "cut", "insert", "zero"]))
        pos = draw(st.integers(0, max(0, len(data) - 1)))
        if op == "flip" and data:
            data[pos] ^= 1 << draw(st.integers(0, 7))
        elif op == "cut":
            del data[pos : pos + draw(st.integers(1, 64))]
        elif op == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=16))
        elif data:
            data[pos : pos + 4] = b"\0\0\0\0"
    return bytes(data)


@FAST
@given(mutated_images())
def test_decoder_on_mutated_real_files(data: bytes) -> None:
    ft.decode(data)


def test_decoder_seeds_decode() -> None:
    """The seeds are real images: every one decodes (the fuzzing starts from valid files)."""
    from catalens.imageio import decode_image

    for data in SEEDS:
        assert decode_image(data, "seed").image.mode == "RGB"


@FAST
@given(st.text(max_size=80))
def test_where_parser_on_random_text(text: str) -> None:
    ft.where(text)


WHERE_TOKENS = ["colour", "year", "id", "=", "!=", ">=", "<", "in", "not", "and", "or", "like", "(", ")",
                ",", "'red'", "'%e%'", "2012", "-1.5e3", "'", "\\", "title"]  # fmt: skip


@FAST
@given(st.lists(st.sampled_from(WHERE_TOKENS), max_size=14))
def test_where_parser_on_token_soup(tokens: list[str]) -> None:
    ft.where(" ".join(tokens))


@FAST
@given(st.binary(max_size=400), st.sampled_from([".csv", ".tsv", ".jsonl", ".txt"]))
def test_manifest_readers_on_random_bytes(data: bytes, suffix: str) -> None:
    ft.manifest(data, suffix)


@FAST
@given(
    st.lists(
        st.lists(st.text(st.characters(blacklist_categories=["Cs"]), max_size=12), min_size=1, max_size=4),
        max_size=6,
    )
)
def test_csv_manifest_on_random_rows(rows: list[list[str]]) -> None:
    import csv
    import io

    buf = io.StringIO()
    csv.writer(buf).writerows([["image", "id", "title"], *rows])
    ft.manifest(buf.getvalue().encode(), ".csv")


YAML_SNIPPETS = ["name: x", "checks:", "  blur: {warn: 0.4, fail: 0.3}", "extends: general", "fields:",
                 "  - a", "classes: [a, b]", "- 1", ": :", "{", "[", "description: !!python/object x",
                 "  resolution: {min_side_warn: -1}", "checks: 3", "&a [*a]", "parent: 0"]  # fmt: skip


@FAST
@given(st.lists(st.sampled_from(YAML_SNIPPETS), max_size=8) | st.text(max_size=120))
def test_profile_loader_on_random_yaml(parts: list[str] | str) -> None:
    ft.profile_yaml(parts if isinstance(parts, str) else "\n".join(parts))


@FAST
@given(st.lists(st.sampled_from(YAML_SNIPPETS), max_size=8) | st.text(max_size=120))
def test_taxonomy_loader_on_random_yaml(parts: list[str] | str) -> None:
    ft.taxonomy_yaml(parts if isinstance(parts, str) else "\n".join(parts))
