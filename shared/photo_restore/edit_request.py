"""What we ask the image-edit model for, stated once: the attempt records it at the claim, and the
worker sends what the attempt recorded (the API never imports the HTTP client, so this module
stays pure)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from photo_restore.provider_models import GuidanceField, contract_for
from photo_restore.settings import Settings

PROVIDER = "siliconflow"


@dataclass(frozen=True)
class EditRequest:
    """The provider-independent part of a restore request (the image is added per attempt)."""

    model: str
    prompt: str
    num_inference_steps: int
    # The guidance strength of this run (the seed's `params.guidance_scale`), whatever field
    # the model takes it in.
    guidance_scale: float
    negative_prompt: str | None = None
    seed: int | None = None  # asked for (an operator's re-run); None lets the provider choose

    @property
    def guidance_field(self) -> GuidanceField:
        return contract_for(self.model).guidance_field

    @classmethod
    def from_settings(cls, settings: Settings, *, seed: int | None = None) -> EditRequest:
        return cls(
            model=settings.siliconflow_model,
            prompt=settings.restore_prompt,
            num_inference_steps=settings.num_inference_steps,
            guidance_scale=settings.effective_guidance_scale,
            negative_prompt=settings.negative_prompt,
            seed=seed,
        )

    @classmethod
    def recorded(cls, params: Mapping[str, Any], settings: Settings) -> EditRequest:
        """The request an attempt recorded at its claim (settings fill what an older record
        lacks), so what is sent is what the attempt says was asked."""
        current = cls.from_settings(settings)
        if params.get("model", current.model) != current.model:
            return current  # the model changed since the claim: its fields may not apply
        return replace(
            current,
            prompt=params.get("prompt", current.prompt),
            num_inference_steps=params.get("num_inference_steps", current.num_inference_steps),
            guidance_scale=params.get("guidance_scale", current.guidance_scale),
            negative_prompt=params.get("negative_prompt", current.negative_prompt),
            seed=params.get("requested_seed"),
        )

    def attempt_params(self) -> dict[str, Any]:
        """The request fields of `restore_attempts.params`: the seed's, and which field carried
        the guidance."""
        params: dict[str, Any] = {
            "provider": PROVIDER,
            "model": self.model,
            "prompt": self.prompt,
            "num_inference_steps": self.num_inference_steps,
            "guidance_scale": self.guidance_scale,
            "guidance_field": self.guidance_field,
        }
        if self.negative_prompt is not None:
            params["negative_prompt"] = self.negative_prompt
        if self.seed is not None:
            # `seed` is the provider's answer (the seed's field); this is what was asked for.
            params["requested_seed"] = self.seed
        return params
