"""Which request fields each SiliconFlow image model accepts, their ranges, and its guidance field
(docs/siliconflow.md cites the pages). One table, used to build every request and to refuse a
configuration the service would refuse."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

GuidanceField = Literal["cfg", "guidance_scale"]


@dataclass(frozen=True)
class FieldRange:
    low: float
    high: float

    def __contains__(self, value: object) -> bool:
        return isinstance(value, int | float) and self.low <= value <= self.high


STEPS = FieldRange(1, 100)
SEED = FieldRange(0, 9_999_999_999)


@dataclass(frozen=True)
class ModelContract:
    family: str
    edits_images: bool  # takes an input `image` and must not get `image_size`
    guidance_field: GuidanceField
    guidance: FieldRange
    default_guidance: float
    accepted: frozenset[str]  # request body fields the service documents for this model


_QWEN_EDIT = ModelContract(
    family="Qwen-Image-Edit",
    edits_images=True,
    guidance_field="cfg",
    guidance=FieldRange(0.1, 20),
    # The .com reference: "the official configuration uses 50 steps with CFG 4.0".
    default_guidance=4.0,
    accepted=frozenset(
        {"model", "prompt", "negative_prompt", "image", "num_inference_steps", "cfg", "seed"}
    ),
)
_KOLORS = ModelContract(
    family="Kolors",
    edits_images=False,
    guidance_field="guidance_scale",
    guidance=FieldRange(0, 20),
    default_guidance=7.5,
    accepted=frozenset(
        {
            "model",
            "prompt",
            "negative_prompt",
            "image",
            "image_size",
            "batch_size",
            "num_inference_steps",
            "guidance_scale",
            "seed",
        }
    ),
)

MODELS: dict[str, ModelContract] = {
    "Qwen/Qwen-Image-Edit": _QWEN_EDIT,
    "Qwen/Qwen-Image-Edit-2509": _QWEN_EDIT,
    "Kwai-Kolors/Kolors": _KOLORS,
}


class UnknownModel(ValueError):
    """A model this table does not describe: its fields would be a guess."""


def contract_for(model: str) -> ModelContract:
    try:
        return MODELS[model]
    except KeyError:
        known = ", ".join(sorted(MODELS))
        raise UnknownModel(
            f"SILICONFLOW_MODEL {model!r} is not in photo_restore.provider_models "
            f"(known: {known}); add its documented fields there first"
        ) from None
