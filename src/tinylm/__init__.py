"""tinylm: small transformer language models you can read, train and serve on a CPU."""

__version__ = "0.1.0"
