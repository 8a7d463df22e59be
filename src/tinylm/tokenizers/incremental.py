"""Streaming detokenization: turn ids into text as they are generated.

A token can end in the middle of a character ("í" may be two byte tokens), so decoding
each token on its own would print garbage. The decoder keeps the incomplete tail of the
UTF-8 byte stream and only hands out text made of whole characters. Concatenating what
`feed` and `finish` return equals `tokenizer.decode(all_ids)` (for SentencePiece, up to
the leading dummy-prefix space that `decode` drops: a stream continues a prompt, so its
first "▁" is a real space).
"""

from __future__ import annotations

import codecs

from tinylm.tokenizers.base import Tokenizer


class IncrementalDecoder:
    def __init__(self, tokenizer: Tokenizer, skip_special: bool = True):
        self.tokenizer = tokenizer
        self.skip_special = skip_special
        # The stdlib's incremental UTF-8 decoder buffers incomplete sequences and replaces
        # invalid ones with U+FFFD exactly as bytes.decode(errors="replace") would.
        self._utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def feed(self, token_id: int) -> str:
        """Add one token; return the text it completes ("" if a character is still partial)."""
        tok = self.tokenizer
        if int(token_id) in tok.special_ids:
            data = b"" if self.skip_special else tok.token_str(token_id).encode("utf-8")
        else:
            data = tok.token_bytes(token_id)
        return self._utf8.decode(data)

    def finish(self) -> str:
        """End of stream: flush a dangling partial character as U+FFFD."""
        return self._utf8.decode(b"", final=True)
