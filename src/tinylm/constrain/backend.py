"""The one place that imports XGrammar and turns its errors into one-line TinyLMErrors.

xgrammar is an optional dependency (`pip install 'tinylm[grammar]'`): importing it here,
on first use, keeps `import tinylm` and `tinylm --help` free of it (it loads
transformers, about two seconds). Its C++ core reports problems as RuntimeError with a
log prefix, e.g.

    [03:42:29] /project/cpp/grammar_parser.cc:820: EBNF parser error at line 1, column 14: Expect rule name

and `reason()` keeps what a user can act on: "EBNF parser error at line 1, column 14:
Expect rule name".
"""

from __future__ import annotations

import re
from types import ModuleType

from tinylm.errors import TinyLMError

_LOG_PREFIX = re.compile(r"^\[[^\]]*\]\s*\S+?:\d+:\s*")
_CHECK_FAILED = re.compile(r"^Check failed: .*? is false:\s*")


def xgrammar() -> ModuleType:
    try:
        import xgrammar as xgr
    except ImportError:
        raise TinyLMError("grammar-constrained decoding needs xgrammar: pip install 'tinylm[grammar]'") from None
    return xgr


def xgrammar_core() -> ModuleType:
    """XGrammar's C++ bindings, under its Python wrappers (processor.py calls a few directly
    where the wrappers' Python costs as much as the call)."""
    xgrammar()
    from xgrammar.base import _core

    return _core


def reason(error: Exception) -> str:
    """xgrammar's message without its log prefix, on one line."""
    text = _CHECK_FAILED.sub("", _LOG_PREFIX.sub("", str(error).strip()))
    text = " ".join(text.split())
    # The parser names the unexpected character after "but got"; at the end of the text it names nothing.
    return text + " end of input" if text.endswith("but got") else text
