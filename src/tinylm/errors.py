"""One exception type for every mistake a user can make.

The CLI turns a `TinyLMError` into a single line on stderr and exit code 2, and the
server into a 4xx JSON body, so raising it is how library code says "this is the
user's input, not a bug".
"""


class TinyLMError(Exception):
    """A user-facing error: bad input, missing file, invalid config value."""
