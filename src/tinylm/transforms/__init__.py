"""Model transforms: functions that swap modules of a built GPT for others (base.py has the
contract). Importing this package registers every built-in transform by name, so checkpoints
that recorded them can apply them again at load.

    from tinylm.transforms import prepare_for_inference, prepared_for_inference
    prepare_for_inference(model)             # decoding layouts, for good
    with prepared_for_inference(model):      # for one evaluation inside a training loop
        ...
    quantize(model, "int4", group_size=32)   # int8 / int4 / dynamic-int8 weights, saved with the checkpoint
    prune(model, "magnitude", amount=0.3)    # masked zeros (merge_all bakes them); "structured": a smaller GPT
    LoRA(rank=8, alpha=16).apply(model)      # fine-tuning methods: LoRA, Adapters, PromptTuning, Freeze
"""

from tinylm.transforms.base import (
    TRANSFORMS,
    Transform,
    apply_recorded,
    merge_all,
    persistent_transforms,
    register_transform,
    replace_modules,
    transform_from_config,
)
from tinylm.transforms.adapters import Adapters
from tinylm.transforms.freeze import Freeze, name_matches
from tinylm.transforms.inference import PrepareForInference, prepare_for_inference, prepared_for_inference
from tinylm.transforms.prune import MagnitudePrune, prune
from tinylm.transforms.lora import LoRA, merge_lora, unmerge_lora
from tinylm.transforms.prompt import PromptTuning, virtual_prefix
from tinylm.transforms.quantize import METHODS as QUANTIZATION_METHODS
from tinylm.transforms.quantize import is_quantized, quantize

__all__ = [
    "Adapters",
    "Freeze",
    "LoRA",
    "PromptTuning",
    "merge_lora",
    "name_matches",
    "unmerge_lora",
    "virtual_prefix",
    "TRANSFORMS",
    "PrepareForInference",
    "QUANTIZATION_METHODS",
    "MagnitudePrune",
    "Transform",
    "apply_recorded",
    "merge_all",
    "is_quantized",
    "persistent_transforms",
    "prepare_for_inference",
    "prepared_for_inference",
    "prune",
    "quantize",
    "register_transform",
    "replace_modules",
    "transform_from_config",
]
