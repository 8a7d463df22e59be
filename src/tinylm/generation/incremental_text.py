"""One row's completion text as its tokens arrive, with stop strings cut off.

A stop string may span several tokens ("\\n\\n" as two "\\n" tokens) or end inside one,
so it is searched in the text, not in the ids. Text is released (for streaming) only
once it can no longer turn into a stop string: a tail that is the beginning of some stop
string is held back until later tokens decide. Released pieces therefore concatenate to
exactly the final text, which ends right before the first stop string.
"""

from __future__ import annotations

from collections.abc import Sequence

from tinylm.tokenizers import IncrementalDecoder, Tokenizer


class IncrementalText:
    def __init__(self, tokenizer: Tokenizer, stop_strings: Sequence[str] = ()) -> None:
        self._decoder = IncrementalDecoder(tokenizer)
        self._stops = tuple(stop_strings)
        self._longest = max(map(len, self._stops), default=0)
        self.text = ""
        self.stopped = False  # a stop string appeared; the text is final
        self._released = 0  # characters of self.text already handed out

    def add(self, token_id: int) -> str:
        """Append one token; return the text that is now safe to show."""
        return self._extend(self._decoder.feed(token_id))

    def finish(self) -> str:
        """The row has ended: flush a partial character and release all that is left."""
        if self.stopped:
            return ""
        piece = self._extend(self._decoder.finish())
        rest = self.text[self._released :]
        self._released = len(self.text)
        return piece + rest

    def _extend(self, piece: str) -> str:
        if not piece:
            return ""
        # Only a match ending in the new piece is new: start where such a match could begin.
        start = max(0, len(self.text) - self._longest + 1)
        self.text += piece
        end = len(self.text)
        if self._stops:
            hits = [i for i in (self.text.find(s, start) for s in self._stops) if i >= 0]
            if hits:
                self.text = self.text[: min(hits)]
                self.stopped = True
                end = len(self.text)
            else:
                end -= self._pending_prefix()
        out = self.text[self._released : end]
        self._released = max(self._released, end)
        return out

    def _pending_prefix(self) -> int:
        """Length of the longest tail of the text that begins some stop string."""
        for k in range(min(self._longest - 1, len(self.text)), 0, -1):
            tail = self.text[-k:]
            if any(s.startswith(tail) for s in self._stops):
                return k
        return 0
