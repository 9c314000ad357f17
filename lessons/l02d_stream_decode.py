"""Lesson 2d: decoding while generating, without ever printing half a character.

A token stands for bytes, not characters. 👍🏽 is 8 UTF-8 bytes (F0 9F 91 8D F0 9F 8F BD) and
SmolLM2 spells it with 6 tokens: "ðŁ" (F0 9F), "ĳ" (91), "į" (8D), "ðŁ" (F0 9F), "ı" (8F), "½" (BD).
Printing each token's bytes as it is generated would print broken characters; instead an
incremental UTF-8 decoder keeps an unfinished character back until its last byte arrives:

    push(10813) -> ""     push(235) -> ""     push(231) -> "👍"
    push(10813) -> ""     push(233) -> ""     push(138) -> "🏽"

Python's codecs module has exactly that decoder; the lesson is in knowing you need it.
"""

from __future__ import annotations

import codecs


# --8<-- [start:stream]
class StreamDecoder:
    """Feed ids one at a time; get back only whole characters.

    An emoji like 👍🏽 is 8 UTF-8 bytes and byte-level BPE may spread them over several tokens;
    printing each token's bytes as they come would print garbage. The incremental UTF-8 decoder
    holds back an unfinished character until its last byte arrives.
    """

    def __init__(self, tokenizer, special: bool = False):
        self.tokenizer, self.special = tokenizer, special
        self._utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def push(self, tid: int) -> str:
        """Add one token; return the text it completes ('' while a character is unfinished)."""
        return self._utf8.decode(self.tokenizer.token_bytes(int(tid), self.special))

    def flush(self) -> str:
        """End of stream: a dangling partial character comes out as U+FFFD."""
        return self._utf8.decode(b"", final=True)
# --8<-- [end:stream]
