"""IncrementalText (stop strings over streamed text) against a direct computation on the whole text."""

from __future__ import annotations

from hypothesis import given, settings, strategies as st

from tinylm.generation.incremental_text import IncrementalText
from tinylm.tokenizers import Tokenizer


class Pieces(Tokenizer):
    """A tokenizer whose token i is the text pieces[i] (ids 0-3 are the specials)."""

    kind = "pieces"

    def __init__(self, pieces: list[str]) -> None:
        self.pad_id, self.bos_id, self.eos_id, self.sep_id = 0, 1, 2, 3
        self._bytes = [b""] * 4 + [p.encode() for p in pieces]
        self.vocab_size = len(self._bytes)

    def _encode(self, text):
        raise NotImplementedError

    def token_bytes(self, token_id):
        return self._bytes[token_id]

    def token_str(self, token_id):
        return self._bytes[token_id].decode()

    def save(self, path):
        raise NotImplementedError


def expected_text(chunks: list[str], stops: list[str]) -> tuple[str, bool]:
    """Generation stops at the first token after which some stop string appears; the text
    ends where the earliest of the stop strings found then begins."""
    for i in range(1, len(chunks) + 1):
        prefix = "".join(chunks[:i])
        found = [prefix.find(s) for s in stops if s in prefix]
        if found:
            return prefix[: min(found)], True
    return "".join(chunks), False


@settings(max_examples=300, deadline=None)
@given(
    chunks=st.lists(st.text("ab\n", min_size=1, max_size=4), max_size=12),
    stops=st.lists(st.text("ab\n", min_size=1, max_size=4), max_size=3),
)
def test_released_text_is_the_text_before_the_first_stop_string(chunks, stops):
    row = IncrementalText(Pieces(chunks), stops)
    released = ""
    longest = max(map(len, stops), default=0)
    for token in range(4, 4 + len(chunks)):
        released += row.add(token)
        if row.stopped:
            break
        # Held back: at most a possible beginning of a stop string, never more.
        assert len("".join(chunks[: token - 3])) - len(released) <= max(longest - 1, 0)
    released += row.finish()
    text, stopped = expected_text(chunks, stops)
    assert (released, row.text, row.stopped) == (text, text, stopped)


def test_utf8_split_across_tokens():
    tok = Pieces([])
    tok._bytes += [b"\xc3", b"\xa9", b"x"]  # "é" as two byte tokens
    row = IncrementalText(tok, ["éx"])
    assert [row.add(4), row.add(5), row.add(6)] == ["", "", ""]
    assert row.stopped and row.text == ""
