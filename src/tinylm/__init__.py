"""tinylm: small transformer language models you can read, train and serve on a CPU.

    import tinylm
    lm = tinylm.load("runs/shakespeare/best")
    print(lm.generate("ROMEO:", max_new_tokens=100, temperature=0.8))
"""

__version__ = "0.1.0"


def load(path, device: str = "cpu", adapter=None):
    """Load a checkpoint folder (and optionally a fine-tuning adapter folder trained on it); see
    tinylm.api.load. Imported lazily to keep `import tinylm` light."""
    from tinylm.api import load as _load

    return _load(path, device, adapter=adapter)
