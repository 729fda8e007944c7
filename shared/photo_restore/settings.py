"""One settings class, read once from the environment; every knob has a working local default."""

from __future__ import annotations

from functools import lru_cache
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from photo_restore.provider_models import contract_for

# SQS caps a message's DelaySeconds at 15 minutes (and its visibility timeout at 12 hours).
SQS_MAX_DELAY_SECONDS = 900
SQS_MAX_VISIBILITY_SECONDS = 43_200

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
    # The EventBridge bus that restore events go to; empty: events are only logged.
    event_bus_name: str = ""

    # --- The operator's bill -----------------------------------------------------------------
    # Restore requests per user in any 24 h, not counting attempts that failed for a provider or
    # system reason; 0 means unlimited.
    daily_restores_per_user: int = Field(default=20, ge=0)

    # --- Timing of the pipeline: must agree with template.yaml -------------------------------
    # The worker's worst case: (1 + retries) x read timeout + backoff + result download < 300 s.
    worker_timeout_seconds: int = 300
    # The queue's: >= 6x the worker timeout, as AWS advises. Only a delivery that crashed or
    # timed out waits this long; a transient failure comes back after its backoff below.
    visibility_timeout_seconds: int = 1800
    max_receive_count: int = 3
    # Backoff before the next delivery after a transient failure, by the receive that failed
    # (the last value repeats); each is jittered down to half, so retries spread apart.
    transient_retry_delays_seconds: list[int] = Field(default=[30, 120, 480], min_length=1)
    sweeper_margin_seconds: int = 600
    # A rate-limited message is re-sent with a delay instead of burning a receive; this bounds it.
    max_rate_limit_deferrals: int = 20
    default_rate_limit_delay_seconds: int = 60

    # --- Images ------------------------------------------------------------------------------
    max_side: int = Field(default=3584, ge=64)
    max_original_bytes: int = 50 * 1024 * 1024
    # Above this many pixels an image is refused before it is decoded (decompression bombs).
    max_input_pixels: int = 120_000_000
    # Lambda sets this (the worker's memory, MB); locally it is the template's worker memory.
    aws_lambda_function_memory_size: int = Field(default=1024, ge=128)
    # The share of it that decoding one input may take (estimated from the header first): the
    # rest holds the runtime, the libraries and the result. Inputs that cannot fit are refused.
    preprocess_memory_fraction: float = Field(default=0.45, gt=0, le=0.9)
    jpeg_quality: int = Field(default=90, ge=1, le=100)
    presigned_url_seconds: int = 900
    # How long a direct upload's presigned PUT works (photo_restore.lifecycle).
    upload_url_seconds: int = Field(default=900, ge=60, le=3600)
    # How the input reaches SiliconFlow: "presigned_url" or "data_uri"; unset = what the base
    # URL's reference documents (see effective_image_transport).
    image_transport: Literal["presigned_url", "data_uri"] | None = None

    # --- SiliconFlow -------------------------------------------------------------------------
    siliconflow_api_key: SecretStr = SecretStr("")
    siliconflow_api_key_parameter: str | None = None
    siliconflow_base_url: str = "https://api.siliconflow.com/v1"
    siliconflow_model: str = "Qwen/Qwen-Image-Edit"
    restore_prompt: str = DEFAULT_PROMPT
    negative_prompt: str | None = None
    num_inference_steps: int = Field(default=20, ge=1, le=100)
    # The guidance strength, sent in the field the model takes (cfg for Qwen-Image models);
    # unset = the model's documented default (provider_models).
    guidance_scale: float | None = None
    # Pace every worker's calls together to this many images per minute: the account's IPM for
    # the model (the lowest tier's is 2). 0: no pacing, and 429s are deferred as they come.
    siliconflow_images_per_minute: int = Field(default=0, ge=0)
    # A reserved slot this near is waited for in the invocation (billed: 2 s of a 1 GB worker
    # is $0.00003); a later one in the queue (the message is re-sent with a delay, keeping its
    # slot). Shorter, work comes back late and wastes its slot (benchmarks/bench_throughput).
    pacing_max_wait_seconds: float = Field(default=2.0, ge=0, le=60)
    # Daily caps (IPD/RPD) hold work until this UTC hour; the docs do not say when a day ends
    # for SiliconFlow: 16:00 UTC is midnight in China (UTC+8), our assumption.
    siliconflow_daily_reset_utc_hour: int = Field(default=16, ge=0, le=23)
    # Past this long on hold for daily caps, the attempt fails instead of waiting on.
    max_capacity_hold_hours: int = Field(default=72, ge=1)
    siliconflow_connect_timeout_seconds: float = 10.0
    # Above typical inference (10-60 s) and below the worker's own timeout.
    siliconflow_read_timeout_seconds: float = 90.0
    # In-invocation retries of 5xx/timeouts; SQS redelivery (max_receive_count) retries beyond.
    siliconflow_max_retries: int = Field(default=1, ge=0)
    siliconflow_allow_private_urls: bool = False
    result_max_bytes: int = 40 * 1024 * 1024
    # Wall time for the whole result download: DNS, connect, TLS, headers and body.
    result_download_timeout_seconds: float = 30.0
    # Results come back near 1 MP; a header claiming more than this is refused before decoding
    # (a 169 MP PNG of 641 KB would otherwise need 1.3 GB).
    result_max_pixels: int = Field(default=25_000_000, ge=1)

    @model_validator(mode="after")
    def _the_model_and_its_guidance_are_documented(self) -> Settings:
        contract = contract_for(self.siliconflow_model)  # UnknownModel is a ValueError
        guidance = self.effective_guidance_scale
        if guidance not in contract.guidance:
            raise ValueError(
                f"GUIDANCE_SCALE {guidance} is outside {contract.guidance.low}..."
                f"{contract.guidance.high}, the range of {contract.guidance_field} for "
                f"{self.siliconflow_model}"
            )
        return self

    @property
    def effective_guidance_scale(self) -> float:
        if self.guidance_scale is not None:
            return self.guidance_scale
        return contract_for(self.siliconflow_model).default_guidance

    @property
    def effective_image_transport(self) -> Literal["presigned_url", "data_uri"]:
        """The .com reference says the image "should be converted into base64"; the .cn one
        accepts a URL or base64. Unset, each base URL gets what its own reference documents."""
        if self.image_transport is not None:
            return self.image_transport
        host = urlsplit(self.siliconflow_base_url).hostname or ""
        return (
            "data_uri"
            if host == "siliconflow.com" or host.endswith(".siliconflow.com")
            else "presigned_url"
        )

    @model_validator(mode="after")
    def _retry_delays_fit_sqs(self) -> Settings:
        for delay in self.transient_retry_delays_seconds:
            if not 0 <= delay <= SQS_MAX_VISIBILITY_SECONDS:
                raise ValueError(
                    f"TRANSIENT_RETRY_DELAYS_SECONDS must be within 0..{SQS_MAX_VISIBILITY_SECONDS}"
                )
        return self

    @model_validator(mode="after")
    def _provider_calls_fit_in_the_worker_timeout(self) -> Settings:
        """A client that outlives its Lambda leaves SQS to guess: refuse such settings early."""
        tries = self.siliconflow_max_retries + 1
        budget = (
            tries
            * (self.siliconflow_connect_timeout_seconds + self.siliconflow_read_timeout_seconds)
            + self.result_download_timeout_seconds
            + self.pacing_max_wait_seconds
        )
        if budget >= self.worker_timeout_seconds:
            raise ValueError(
                f"SiliconFlow calls may take {budget:.0f} s ({tries} tries x (connect + read) + "
                "result download + pacing wait), not below "
                f"WORKER_TIMEOUT_SECONDS={self.worker_timeout_seconds}"
            )
        return self

    @property
    def stuck_after_seconds(self) -> int:
        """How long a `processing` photo can go without a delivery starting while its work is
        still alive; past it (plus a margin) the sweeper settles it.

        Every delivery restarts the photo's clock, so this is the longest gap between two
        deliveries: a crashed one is redelivered after the visibility timeout; a transient
        failure after the run and its backoff; a rate-limited one after the run and its delay.
        """
        longest_gap = max(
            self.visibility_timeout_seconds,
            self.worker_timeout_seconds + max(self.transient_retry_delays_seconds),
            self.worker_timeout_seconds + SQS_MAX_DELAY_SECONDS,
        )
        return longest_gap + self.sweeper_margin_seconds


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The container's settings, read once per Lambda container."""
    return Settings()
