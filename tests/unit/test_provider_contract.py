"""The request follows the documented per-model table (docs/siliconflow.md)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from photo_restore.edit_request import EditRequest
from photo_restore.provider_models import MODELS, contract_for
from photo_restore.restore_runs import next_daily_reset
from photo_restore.settings import Settings
from photo_restore.siliconflow import SiliconFlowRequest

IMAGE = "data:image/jpeg;base64,/9j/"


def body(**settings: object) -> dict[str, object]:
    edit = EditRequest.from_settings(Settings(**settings))  # type: ignore[arg-type]
    return SiliconFlowRequest(edit=edit, image=IMAGE).to_json()


@pytest.mark.parametrize("model", ["Qwen/Qwen-Image-Edit", "Qwen/Qwen-Image-Edit-2509"])
def test_qwen_image_edit_gets_cfg_and_never_kolors_fields(model: str) -> None:
    sent = body(siliconflow_model=model)
    assert set(sent) == {"model", "prompt", "image", "num_inference_steps", "cfg"}
    assert sent["cfg"] == 4.0  # the model's documented configuration
    for refused in ("guidance_scale", "image_size", "batch_size"):
        assert refused not in sent


def test_the_guidance_setting_goes_to_the_models_own_field() -> None:
    assert body(guidance_scale=2.5)["cfg"] == 2.5
    kolors = body(siliconflow_model="Kwai-Kolors/Kolors")
    assert kolors["guidance_scale"] == 7.5 and "cfg" not in kolors


def test_negative_prompt_and_a_requested_seed_are_sent_only_when_set() -> None:
    assert "negative_prompt" not in body() and "seed" not in body()
    edit = EditRequest.from_settings(Settings(negative_prompt=" "), seed=123)
    sent = SiliconFlowRequest(edit=edit, image=IMAGE).to_json()
    assert (sent["negative_prompt"], sent["seed"]) == (" ", 123)


def test_the_attempt_records_the_strength_and_the_field_that_carried_it() -> None:
    params = EditRequest.from_settings(Settings(), seed=7).attempt_params()
    assert params["guidance_scale"] == 4.0 and params["guidance_field"] == "cfg"
    assert params["requested_seed"] == 7 and "seed" not in params


def test_the_worker_sends_what_the_attempt_recorded() -> None:
    settings = Settings()
    recorded = EditRequest.recorded(
        {"model": "Qwen/Qwen-Image-Edit", "guidance_scale": 3.0, "requested_seed": 99}, settings
    )
    assert (recorded.guidance_scale, recorded.seed) == (3.0, 99)
    # A record of another model: its fields may not apply, so today's settings are sent.
    other = EditRequest.recorded({"model": "Kwai-Kolors/Kolors", "guidance_scale": 15}, settings)
    assert other.model == "Qwen/Qwen-Image-Edit" and other.guidance_scale == 4.0


def test_settings_refuse_an_undocumented_model_and_a_guidance_out_of_its_range() -> None:
    with pytest.raises(ValidationError, match=r"not in photo_restore\.provider_models"):
        Settings(siliconflow_model="Qwen/Qwen-Image-Edit-9999")
    with pytest.raises(ValidationError, match=r"outside 0.1...20, the range of cfg"):
        Settings(guidance_scale=0.05)
    assert Settings(siliconflow_model="Kwai-Kolors/Kolors", guidance_scale=0).guidance_scale == 0


def test_every_model_in_the_table_is_documented_as_the_docs_say() -> None:
    """docs/siliconflow.md: cfg 0.1-20 for Qwen-Image models, guidance_scale 0-20 for Kolors;
    image_size is not supported by Qwen-Image-Edit(-2509); batch_size is Kolors-only."""
    for name, contract in MODELS.items():
        assert contract is contract_for(name)
        if name.startswith("Qwen/"):
            assert contract.guidance_field == "cfg" and contract.edits_images
            assert (contract.guidance.low, contract.guidance.high) == (0.1, 20)
            assert not {"image_size", "batch_size", "guidance_scale"} & contract.accepted
        else:
            assert contract.guidance_field == "guidance_scale"


@pytest.mark.parametrize(
    ("base_url", "transport"),
    [
        ("https://api.siliconflow.com/v1", "data_uri"),  # "should be converted into base64"
        ("https://api.siliconflow.cn/v1", "presigned_url"),  # "base64 format or a URL"
        ("http://127.0.0.1:8089/v1", "presigned_url"),
    ],
)
def test_the_image_transport_follows_each_base_urls_reference(
    base_url: str, transport: str
) -> None:
    assert Settings(siliconflow_base_url=base_url).effective_image_transport == transport
    explicit = Settings(siliconflow_base_url=base_url, image_transport="data_uri")
    assert explicit.effective_image_transport == "data_uri"


def test_a_daily_cap_resets_at_the_configured_hour_today_or_tomorrow() -> None:
    morning = datetime(2026, 12, 2, 9, 30, tzinfo=UTC)
    assert next_daily_reset(morning, 16) == datetime(2026, 12, 2, 16, tzinfo=UTC)
    evening = datetime(2026, 12, 2, 17, tzinfo=UTC)
    assert next_daily_reset(evening, 16) == datetime(2026, 12, 3, 16, tzinfo=UTC)
