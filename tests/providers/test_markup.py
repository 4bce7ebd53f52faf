"""The `<untrusted>` retrieval markup: split, sources, odd and hostile input."""

from __future__ import annotations

from proxy.providers.markup import Piece, split_marked


def test_no_markup_is_one_plain_piece() -> None:
    assert split_marked("hello") == [Piece("hello", marked=False)]


def test_marked_span_with_source() -> None:
    got = split_marked('a <untrusted source="doc.pdf">b</untrusted> c')
    assert got == [Piece("a ", False), Piece("b", True, "doc.pdf"), Piece(" c", False)]


def test_single_quotes_entities_and_no_source() -> None:
    assert split_marked("<untrusted source='x&amp;y'>b</untrusted>") == [Piece("b", True, "x&y")]
    assert split_marked("<untrusted>b</untrusted>") == [Piece("b", True, None)]


def test_unclosed_tag_makes_the_rest_untrusted() -> None:
    assert split_marked("a <untrusted>b c") == [Piece("a ", False), Piece("b c", True, None)]


def test_prose_that_starts_like_the_tag_is_not_markup() -> None:
    assert split_marked("<untrustedness> is a word") == [Piece("<untrustedness> is a word", False)]


def test_several_spans_and_empty_span() -> None:
    got = split_marked("<untrusted>1</untrusted>mid<untrusted source=s></untrusted>")
    assert got == [Piece("1", True, None), Piece("mid", False), Piece("", True, "s")]


def test_hostile_input_is_linear() -> None:
    text = "<untrusted" * 50_000
    pieces = split_marked(text)
    assert "".join(p.text for p in pieces) == text
