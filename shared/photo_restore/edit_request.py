"""What we ask the image-edit model for, stated once: the attempt records it at the claim and
the worker sends it (the API never imports the HTTP client, so this module stays pure)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from photo_restore.settings import Settings

PROVIDER = "siliconflow"


@dataclass(frozen=True)
class EditRequest:
    """The provider-independent part of a restore request (the image is added per attempt)."""

    model: str
    prompt: str
    num_inference_steps: int
    guidance_scale: float

    @classmethod
    def from_settings(cls, settings: Settings) -> EditRequest:
        return cls(
            model=settings.siliconflow_model,
            prompt=settings.restore_prompt,
            num_inference_steps=settings.num_inference_steps,
            guidance_scale=settings.guidance_scale,
        )

    def attempt_params(self) -> dict[str, Any]:
        """The seed's request fields of `restore_attempts.params`."""
        return {
            "provider": PROVIDER,
            "model": self.model,
            "prompt": self.prompt,
            "num_inference_steps": self.num_inference_steps,
            "guidance_scale": self.guidance_scale,
        }
