"""Disassembler: memory words -> canonical source text.

Every word prints: a valid instruction as its canonical text, anything else as a data
word `DW H'XXXX'`, so `assemble(disassemble(words))` gives the words back for all 65 536
values. An image with gaps or a non-zero start gets `ORG` lines, so it round-trips too.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from tinylm.tasks.code2.isa import decode, hex16


def disassemble_word(word: int) -> str:
    ins = decode(word)
    return ins.text() if ins is not None else f"DW {hex16(word & 0xFFFF)}"


def disassemble(words: Iterable[int] | Mapping[int, int], *, origin: int = 0, addresses: bool = False) -> str:
    """Canonical listing of `words` (a sequence loaded at `origin`, or an address -> word map).

    With `addresses=True` each line gets a `; AAAA` comment with its address (the
    listing still assembles to the same words).
    """
    image = dict(words) if isinstance(words, Mapping) else {origin + i: w for i, w in enumerate(words)}
    out: list[str] = []
    expected = 0
    for addr, word in image.items():
        if addr != expected:
            out.append(f"ORG {hex16(addr)}")
        text = disassemble_word(word)
        out.append(f"{text} ; {addr:04X}" if addresses else text)
        expected = addr + 1
    return "\n".join(out)
