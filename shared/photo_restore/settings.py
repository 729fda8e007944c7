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
# The provider client's backoff between tries: full jitter below base x 2^attempt, capped so
# a large SILICONFLOW_MAX_RETRIES cannot sleep past the worker's own timeout.
BACKOFF_BASE_SECONDS = 1.0
MAX_BACKOFF_SECONDS = 30.0


def backoff_ceiling_seconds(attempt: int, base: float = BACKOFF_BASE_SECONDS) -> float:
    """The longest sleep after try `attempt` (0-based) failed."""
    return min(MAX_BACKOFF_SECONDS, base * float(2**attempt))


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
    # A rate on top of the daily quota (0: none): one client scripting through its photos is
    # held to this many restore requests a minute (429 quota_exceeded with Retry-After), so it
    # cannot use up the API's and the provider's capacity for everyone in a burst.
    restores_per_user_per_minute: int = Field(default=10, ge=0)
    # Supabase anonymous sessions (`is_anonymous`) are each a new user, so the per-user quota
    # does not bound what they spend: 0 (the default) refuses their restores with 403
    # anonymous_not_allowed; N lets each session make N in any 24 h.
    daily_restores_per_anonymous_session: int = Field(default=0, ge=0)

    # --- Timing of the pipeline: must agree with template.yaml -------------------------------
    # The worker's worst case: (1 + retries) x (connect + read), each try bounded by that wall
    # time, + backoffs + result download + pacing wait < 300 s (checked below).
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
    # "The URL for the generated image is valid for one hour" (docs/siliconflow.md).
    siliconflow_result_url_seconds: int = Field(default=3600, ge=1)
    # A later delivery resumes at the download of a recorded answer only while its URL stays
    # valid this much longer (at least one whole download); else it calls the provider again.
    result_url_margin_seconds: int = Field(default=300, ge=0)
    # One refusal (the same code and words) for this many different photos within the window
    # is systemic, not the photos' fault: it fails as provider_misconfigured (alarmed).
    systemic_refusal_photos: int = Field(default=3, ge=2)
    systemic_refusal_window_seconds: int = Field(default=900, ge=1)
    siliconflow_allow_private_urls: bool = False
    result_max_bytes: int = 40 * 1024 * 1024
    # Wall time for the whole result download: DNS, connect, TLS, headers and body.
    result_download_timeout_seconds: float = 30.0
    # Results come back near 1 MP; a header claiming more than this is refused before decoding
    # (a 169 MP PNG of 641 KB would otherwise need 1.3 GB).
    result_max_pixels: int = Field(default=25_000_000, ge=1)

    # --- Content Credentials (C2PA): a signed manifest in every restoration, off by default ----
    # (XMP provenance is always written; see photo_restore.provenance.)
    c2pa_enabled: bool = False
    # PEM texts: the signing key, and its certificate chain (leaf first, no root). Deployed:
    # SSM Parameter Store names (the key a SecureString), read once per worker container.
    c2pa_private_key: SecretStr = SecretStr("")
    c2pa_private_key_parameter: str | None = None
    c2pa_certificate_chain: str = ""
    c2pa_certificate_chain_parameter: str | None = None
    c2pa_signing_algorithm: Literal[
        "es256", "es384", "es512", "ps256", "ps384", "ps512", "ed25519"
    ] = "es256"
    # An RFC 3161 time-stamp authority; unset: the signature carries no trusted time.
    c2pa_timestamp_url: str | None = None

    @model_validator(mode="after")
    def _c2pa_signing_has_a_key_and_a_certificate(self) -> Settings:
        if not self.c2pa_enabled:
            return self
        if not (self.c2pa_private_key.get_secret_value() or self.c2pa_private_key_parameter):
            raise ValueError("C2PA_ENABLED needs C2PA_PRIVATE_KEY or C2PA_PRIVATE_KEY_PARAMETER")
        if not (self.c2pa_certificate_chain or self.c2pa_certificate_chain_parameter):
            raise ValueError(
                "C2PA_ENABLED needs C2PA_CERTIFICATE_CHAIN or C2PA_CERTIFICATE_CHAIN_PARAMETER"
            )
        return self

    # --- Faithfulness: does the result still show the same picture and people? -------------
    # flag: store a drifted result and mark it (params.faithfulness, the API, the event; it
    # never replaces a faithful selection); retry: on drift, ask the provider again with a new
    # seed, up to faithfulness_max_extra_calls times (each an image paid for), and keep the
    # most faithful result; off: no check.
    faithfulness_policy: Literal["flag", "retry", "off"] = "flag"
    faithfulness_max_extra_calls: int = Field(default=1, ge=0, le=3)

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
    def _anonymous_sessions_get_a_smaller_quota(self) -> Settings:
        """A quota of its own for each anonymous session only makes sense below an account's."""
        anonymous, per_user = (
            self.daily_restores_per_anonymous_session,
            self.daily_restores_per_user,
        )
        if anonymous and per_user and anonymous > per_user:
            raise ValueError(
                f"DAILY_RESTORES_PER_ANONYMOUS_SESSION ({anonymous}) must not exceed "
                f"DAILY_RESTORES_PER_USER ({per_user})"
            )
        return self

    @model_validator(mode="after")
    def _retry_delays_fit_sqs(self) -> Settings:
        for delay in self.transient_retry_delays_seconds:
            if not 0 <= delay <= SQS_MAX_VISIBILITY_SECONDS:
                raise ValueError(
                    f"TRANSIENT_RETRY_DELAYS_SECONDS must be within 0..{SQS_MAX_VISIBILITY_SECONDS}"
                )
        return self

    @property
    def siliconflow_call_deadline_seconds(self) -> float:
        """The wall time one provider call may take, connect to last body byte: the client
        enforces exactly this (SiliconFlowClient.from_settings), so the check below holds."""
        return self.siliconflow_connect_timeout_seconds + self.siliconflow_read_timeout_seconds

    @property
    def siliconflow_exchange_seconds(self) -> float:
        """The longest a whole provider exchange can take: every try at its deadline and the
        longest backoff between tries."""
        tries = self.siliconflow_max_retries + 1
        return tries * self.siliconflow_call_deadline_seconds + sum(
            backoff_ceiling_seconds(attempt) for attempt in range(tries - 1)
        )

    @model_validator(mode="after")
    def _provider_calls_fit_in_the_worker_timeout(self) -> Settings:
        """A client that outlives its Lambda leaves SQS to guess: refuse such settings early."""
        tries = self.siliconflow_max_retries + 1
        one_image = self.siliconflow_exchange_seconds + self.result_download_timeout_seconds
        budget = one_image * (1 + self.faithfulness_extra_calls) + self.pacing_max_wait_seconds
        if budget >= self.worker_timeout_seconds:
            extra = self.faithfulness_extra_calls
            raise ValueError(
                f"SiliconFlow calls may take {budget:.0f} s ({1 + extra} image(s) x ({tries} "
                "tries x (connect + read) + backoff + result download) + pacing wait), not below "
                f"WORKER_TIMEOUT_SECONDS={self.worker_timeout_seconds}"
                + (" (FAITHFULNESS_POLICY=retry: raise it, e.g. to 600)" if extra else "")
            )
        return self

    @model_validator(mode="after")
    def _a_recorded_answer_outlives_its_download(self) -> Settings:
        if not (
            self.result_download_timeout_seconds
            <= self.result_url_margin_seconds
            < self.siliconflow_result_url_seconds
        ):
            raise ValueError(
                "RESULT_URL_MARGIN_SECONDS must be at least RESULT_DOWNLOAD_TIMEOUT_SECONDS and "
                "below SILICONFLOW_RESULT_URL_SECONDS"
            )
        return self

    @property
    def faithfulness_extra_calls(self) -> int:
        """The provider calls a drifted result may add (FAITHFULNESS_POLICY=retry)."""
        return self.faithfulness_max_extra_calls if self.faithfulness_policy == "retry" else 0

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
