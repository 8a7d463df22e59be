"""Interoperability with other toolkits: Hugging Face transformers (export and import)."""

from tinylm.interop.hf import export_hf, from_hf, import_hf, read_hf_tokenizer, to_hf

__all__ = ["to_hf", "from_hf", "export_hf", "import_hf", "read_hf_tokenizer"]
