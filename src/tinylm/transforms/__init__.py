"""Model transforms: functions that swap modules of a built GPT for others (base.py has the
contract). Importing this package registers every built-in transform by name, so checkpoints
that recorded them can apply them again at load.

    from tinylm.transforms import prepare_for_inference, prepared_for_inference
    prepare_for_inference(model)             # decoding layouts, for good
    with prepared_for_inference(model):      # for one evaluation inside a training loop
        ...
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
from tinylm.transforms.inference import PrepareForInference, prepare_for_inference, prepared_for_inference

__all__ = [
    "TRANSFORMS",
    "PrepareForInference",
    "Transform",
    "apply_recorded",
    "merge_all",
    "persistent_transforms",
    "prepare_for_inference",
    "prepared_for_inference",
    "register_transform",
    "replace_modules",
    "transform_from_config",
]
