"""AI-edit provenance in what the real pipeline stores: API -> SQS -> worker -> stand-in -> S3.

An original full of metadata (EXIF with GPS and camera, ICC, XMP, comment) goes through; the
stored restoration and thumbnail carry our XMP marks and nothing of it."""

from __future__ import annotations

import io
import uuid
from typing import Any

import boto3
import c2pa
import pytest
from pydantic import SecretStr

from photo_restore import wiring
from photo_restore.provenance import DIGITAL_SOURCE_TYPE
from photo_restore.settings import Settings
from photo_restore_tools.local.c2pa_credentials import local_signing_pair
from tests.helpers.pipeline import Pipeline
from tests.helpers.provenance import assert_carries_nothing_of, original_with_gps, xmp_fields

pytestmark = pytest.mark.database  # runs direct and through PgBouncer (tests/conftest.py)


def stored(pipeline: Pipeline, key: str) -> bytes:
    body: Any = pipeline.s3.get_object(Bucket=pipeline.settings.bucket_name, Key=key)["Body"]
    return bytes(body.read())


def test_a_stored_restoration_and_its_thumbnail_say_what_made_them_and_nothing_else(
    pipeline: Pipeline,
) -> None:
    photo = pipeline.add_photo(original_with_gps())
    attempt_id = pipeline.request_restore(photo)
    pipeline.drain()

    attempt = pipeline.attempt(attempt_id)
    assert attempt.restored_key and attempt.thumbnail_key and attempt.before_key
    marks = attempt.params["provenance"]
    assert marks["digital_source_type"] == DIGITAL_SOURCE_TYPE
    assert (marks["model"], marks["c2pa"]) == ("Qwen/Qwen-Image-Edit", False)
    for key in (attempt.restored_key, attempt.thumbnail_key):
        jpeg = stored(pipeline, key)
        assert_carries_nothing_of(jpeg)
        assert xmp_fields(jpeg) == {
            "Iptc4xmpExt:DigitalSourceType": DIGITAL_SOURCE_TYPE,
            "Iptc4xmpExt:AISystemUsed": "Qwen/Qwen-Image-Edit",
            "xmp:CreatorTool": "photo-restore (Qwen/Qwen-Image-Edit)",
            # The time of the restoration, as the attempt records it.
            "xmp:CreateDate": marks["created_at"],
            "xmp:MetadataDate": marks["created_at"],
        }
    # The before image (what the model saw) is no restoration, and has no GPS either.
    before = stored(pipeline, attempt.before_key)
    assert b"Exif" not in before and b"LeakyCam" not in before


def test_the_api_says_what_the_restoration_carries(pipeline: Pipeline) -> None:
    photo = pipeline.add_photo(original_with_gps((800, 600)))
    attempt_id = pipeline.request_restore(photo)
    pipeline.drain()
    recorded = pipeline.attempt(attempt_id).params["provenance"]

    status, view = pipeline.call_api("GET", f"/photos/{photo.id}", photo.owner_id)
    assert status == 200, view
    marks = view["after"]["provenance"]
    assert marks == {
        "digital_source_type": DIGITAL_SOURCE_TYPE,
        "model": "Qwen/Qwen-Image-Edit",
        "software_agent": "photo-restore",
        "created_at": recorded["created_at"],
        "c2pa": False,
    }
    assert view["latest_attempt"]["after"]["provenance"] == marks
    assert view["before"]["provenance"] is None  # what the model saw: no AI edit
    # What the API says is what the file says.
    fields = xmp_fields(stored(pipeline, pipeline.attempt(attempt_id).s3_key))
    assert fields["Iptc4xmpExt:DigitalSourceType"] == marks["digital_source_type"]
    assert fields["Iptc4xmpExt:AISystemUsed"] == marks["model"]

    status, listing = pipeline.call_api("GET", f"/photos/{photo.id}/restores", photo.owner_id)
    assert status == 200, listing
    assert [r["after"]["provenance"] for r in listing["restores"]] == [marks]


def test_with_content_credentials_on_both_images_carry_a_trusted_manifest(
    pipeline: Pipeline,
) -> None:
    pair = local_signing_pair()
    pipeline.reload_worker(
        c2pa_enabled=True,
        c2pa_private_key=SecretStr(pair.credentials.private_key),
        c2pa_certificate_chain=pair.credentials.certificate_chain,
    )
    photo = pipeline.add_photo(original_with_gps((800, 600)))
    attempt_id = pipeline.request_restore(photo)
    pipeline.drain()

    attempt = pipeline.attempt(attempt_id)
    assert attempt.restored_key and attempt.thumbnail_key
    trusting = c2pa.Context.from_dict({"trust": {"trust_anchors": pair.trust_anchor}})
    for key in (attempt.restored_key, attempt.thumbnail_key):
        jpeg = stored(pipeline, key)
        reader = c2pa.Reader("image/jpeg", io.BytesIO(jpeg), context=trusting)
        assert reader.get_validation_state() == "Trusted"
        actions = reader.get_active_manifest()["assertions"][0]["data"]["actions"]
        assert actions[-1]["action"] == "c2pa.edited"
        assert actions[-1]["digitalSourceType"] == DIGITAL_SOURCE_TYPE
        assert_carries_nothing_of(jpeg, c2pa=True)
        assert xmp_fields(jpeg)["Iptc4xmpExt:AISystemUsed"] == "Qwen/Qwen-Image-Edit"
    status, view = pipeline.call_api("GET", f"/photos/{photo.id}", photo.owner_id)
    assert status == 200 and view["after"]["provenance"]["c2pa"] is True


def test_the_signing_key_and_certificate_are_read_from_parameter_store(
    settings: Settings,
) -> None:
    """As deployed: SecureString parameters (moto's SSM here), named by *_PARAMETER."""
    pair = local_signing_pair()
    ssm = boto3.client("ssm")
    prefix = f"/photo-restore-test/{uuid.uuid4().hex[:12]}"
    ssm.put_parameter(
        Name=f"{prefix}/c2pa-key", Value=pair.credentials.private_key, Type="SecureString"
    )
    ssm.put_parameter(
        Name=f"{prefix}/c2pa-chain", Value=pair.credentials.certificate_chain, Type="String"
    )
    deployed = settings.model_copy(
        update={
            "c2pa_enabled": True,
            "c2pa_private_key_parameter": f"{prefix}/c2pa-key",
            "c2pa_certificate_chain_parameter": f"{prefix}/c2pa-chain",
        }
    )
    assert wiring.c2pa_credentials(deployed) == pair.credentials
    assert wiring.c2pa_credentials(settings) is None  # off by default: nothing is read
