"""The object-file format of `tinylm code2 asm` / `disasm` / `run`: plain-text hex.

    // anything after // (or ;) is a comment
    @0000        sets the address of the words that follow (4 hex digits)
    2A2A         one word per token, 1-4 hex digits; tokens separated by spaces or lines
    F000

This is the format of Verilog's `$readmemh`, readable in any editor and diffable; no
binary, no pickle. `asm` writes one 4-digit word per line and an `@` line at the start and
wherever the addresses jump. The program's entry point is the address of the first word.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from tinylm.errors import TinyLMError
from tinylm.atomic_files import atomic_write

HEADER = "// CODE-2 memory image (tinylm hex): '@AAAA' sets the address, then one hex word per line"


def format_hex(image: Mapping[int, int]) -> str:
    out = [HEADER]
    expected = None
    for addr, word in image.items():
        if addr != expected:
            out.append(f"@{addr:04X}")
        out.append(f"{word:04X}")
        expected = addr + 1
    return "\n".join(out) + "\n"


def _is_hex(token: str, max_digits: int) -> bool:
    return 0 < len(token) <= max_digits and all(c in "0123456789abcdefABCDEF" for c in token)


def parse_hex(text: str, source: str = "<hex>") -> dict[int, int]:
    """Address -> word map of a hex text, in file order; TinyLMError names line and token."""
    image: dict[int, int] = {}
    addr = 0
    for number, raw in enumerate(text.split("\n"), start=1):
        line = raw.split("//", 1)[0].split(";", 1)[0]
        for token in line.split():
            if token.startswith("@"):
                if not _is_hex(token[1:], 4):
                    raise TinyLMError(f"{source}: line {number}: expected an address @0000-@FFFF, found {token!r}")
                addr = int(token[1:], 16)
                continue
            if not _is_hex(token, 4):
                raise TinyLMError(f"{source}: line {number}: expected a hex word 0000-FFFF, found {token!r}")
            if addr > 0xFFFF:
                raise TinyLMError(f"{source}: line {number}: the image runs past address FFFF")
            if addr in image:
                raise TinyLMError(f"{source}: line {number}: address {addr:04X} is given twice")
            image[addr] = int(token, 16)
            addr += 1
    return image


def read_hex(path: str | os.PathLike) -> dict[int, int]:
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        raise TinyLMError(f"file not found: {path}") from None
    except (UnicodeDecodeError, IsADirectoryError, PermissionError) as e:
        raise TinyLMError(f"cannot read {path}: {e}") from None
    return parse_hex(text, str(path))


def write_hex(path: str | os.PathLike, image: Mapping[int, int]) -> None:
    with atomic_write(path) as f:
        f.write(format_hex(image))
