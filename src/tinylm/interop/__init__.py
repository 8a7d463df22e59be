"""Interoperability with other toolkits: Hugging Face transformers (hf: export and import),
ONNX Runtime (onnx: export_onnx, load_onnx) and llama.cpp (gguf: export_gguf).

The onnx and gguf modules are imported by name (`from tinylm.interop.onnx import export_onnx`):
their libraries are optional extras."""

from tinylm.interop.hf import export_hf, from_hf, import_hf, read_hf_tokenizer, to_hf

__all__ = ["to_hf", "from_hf", "export_hf", "import_hf", "read_hf_tokenizer"]
