"""One settings class, read once from the environment; every knob has a working local default."""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_PROMPT = (
    "Restore this old damaged photo: remove scratches, dust, stains and tears, repair faded "
    "and discoloured areas, sharpen details, and keep the people, composition and era unchanged."
)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    # --- Storage and queueing (boto3 itself honours AWS_ENDPOINT_URL for moto) ---------------
    database_url: SecretStr = SecretStr("postgresql+pg8000://postgres@localhost:5432/postgres")
    # Deployed: the URL lives in SSM Parameter Store (SecureString) under this name.
    database_url_parameter: str | None = None
    # "verify" checks the server certificate (RDS: set database_ssl_ca_file to its CA bundle).
    database_ssl_mode: Literal["verify", "require", "disable"] = "verify"
    database_ssl_ca_file: str | None = None
    # A Lambda container serves one request at a time: one connection. Local servers want more.
    database_pool_size: int = Field(default=1, ge=1)
    queue_url: str = ""
    dlq_url: str = ""
    bucket_name: str = "photo-restore-local"

    # --- Timing of the pipeline: must agree with template.yaml -------------------------------
    # The worker's worst case: (1 + retries) x read timeout + backoff + result download < 300 s.
    worker_timeout_seconds: int = 300
    visibility_timeout_seconds: int = 1800  # >= 6x the worker timeout, as AWS advises
    max_receive_count: int = 3
    sweeper_margin_seconds: int = 600
    # A rate-limited message is re-sent with a delay instead of burning a receive; this bounds it.
    max_rate_limit_deferrals: int = 20
    default_rate_limit_delay_seconds: int = 60

    # --- Images ------------------------------------------------------------------------------
    max_side: int = Field(default=3584, ge=64)
    max_original_bytes: int = 50 * 1024 * 1024
    # Above this many pixels an image is refused before it is decoded (decompression bombs).
    max_input_pixels: int = 120_000_000
    jpeg_quality: int = Field(default=90, ge=1, le=100)
    presigned_url_seconds: int = 900
    # "presigned_url" (S3 reachable by SiliconFlow) or "data_uri" (local S3 it cannot reach).
    image_transport: Literal["presigned_url", "data_uri"] = "presigned_url"

    # --- SiliconFlow -------------------------------------------------------------------------
    siliconflow_api_key: SecretStr = SecretStr("")
    siliconflow_api_key_parameter: str | None = None
    siliconflow_base_url: str = "https://api.siliconflow.com/v1"
    siliconflow_model: str = "Qwen/Qwen-Image-Edit"
    restore_prompt: str = DEFAULT_PROMPT
    num_inference_steps: int = Field(default=20, ge=1, le=100)
    guidance_scale: float = Field(default=7.5, ge=0, le=20)
    siliconflow_connect_timeout_seconds: float = 10.0
    # Above typical inference (10-60 s) and below the worker's own timeout.
    siliconflow_read_timeout_seconds: float = 90.0
    # In-invocation retries of 5xx/timeouts; SQS redelivery (max_receive_count) retries beyond.
    siliconflow_max_retries: int = Field(default=1, ge=0)
    siliconflow_allow_private_urls: bool = False
    result_max_bytes: int = 40 * 1024 * 1024
    result_download_timeout_seconds: float = 30.0

    @model_validator(mode="after")
    def _provider_calls_fit_in_the_worker_timeout(self) -> Settings:
        """A client that outlives its Lambda leaves SQS to guess: refuse such settings early."""
        tries = self.siliconflow_max_retries + 1
        budget = (
            tries
            * (self.siliconflow_connect_timeout_seconds + self.siliconflow_read_timeout_seconds)
            + self.result_download_timeout_seconds
        )
        if budget >= self.worker_timeout_seconds:
            raise ValueError(
                f"SiliconFlow calls may take {budget:.0f} s ({tries} tries x (connect + read) + "
                f"result download), not below WORKER_TIMEOUT_SECONDS={self.worker_timeout_seconds}"
            )
        return self

    @property
    def stuck_after_seconds(self) -> int:
        """The longest a message can keep a photo in `processing`: past it, the work is lost."""
        return (
            self.visibility_timeout_seconds * self.max_receive_count + self.sweeper_margin_seconds
        )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The container's settings, read once per Lambda container."""
    return Settings()
