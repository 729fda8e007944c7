"""Content Credentials: the manifest c2pa-python embeds, read back with its own Reader."""

from __future__ import annotations

import io
import sys
from typing import Any

import c2pa
import pytest
from PIL import Image
from pydantic import SecretStr, ValidationError

from photo_restore.c2pa_signing import C2paSigner, SigningCredentials
from photo_restore.provenance import DIGITAL_SOURCE_TYPE
from photo_restore.result_image import decode_result
from photo_restore.settings import Settings
from photo_restore_tools.local.c2pa_credentials import LocalSigningPair, local_signing_pair
from tests.helpers.provenance import (
    assert_carries_nothing_of,
    original_with_gps,
    provenance,
    xmp_fields,
)


@pytest.fixture(scope="module")
def pair() -> LocalSigningPair:
    return local_signing_pair()


@pytest.fixture(scope="module")
def signer(pair: LocalSigningPair) -> C2paSigner:
    return C2paSigner(pair.credentials)


def read(jpeg: bytes, trust_anchor: str | None = None) -> Any:
    """c2pa's Reader, told to trust `trust_anchor` (our local CA) when given."""
    settings = {"trust": {"trust_anchors": trust_anchor}} if trust_anchor else {}
    return c2pa.Reader("image/jpeg", io.BytesIO(jpeg), context=c2pa.Context.from_dict(settings))


def test_a_signed_restoration_carries_a_valid_manifest_of_an_ai_edit(
    signer: C2paSigner, pair: LocalSigningPair
) -> None:
    restored = decode_result(
        original_with_gps(), max_pixels=10**8, jpeg_quality=90, provenance=provenance(signer)
    )
    assert restored.provenance["c2pa"] is True
    for jpeg in (restored.jpeg, restored.thumbnail):
        # Signed well, by a certificate no validator knows: Valid, not Trusted...
        assert read(jpeg).get_validation_state() == "Valid"
        # ...and Trusted by a reader that trusts our CA, as an operator's real CA would be.
        reader = read(jpeg, pair.trust_anchor)
        assert reader.get_validation_state() == "Trusted"
        manifest = reader.get_active_manifest()
        (actions,) = [
            a["data"]["actions"] for a in manifest["assertions"] if "actions" in a["data"]
        ]
        assert [a["action"] for a in actions] == ["c2pa.created", "c2pa.edited"]
        edited = actions[1]
        assert edited["digitalSourceType"] == DIGITAL_SOURCE_TYPE
        assert edited["softwareAgent"] == {"name": "photo-restore (Qwen/Qwen-Image-Edit)"}
        assert edited["when"] == "2026-12-04T18:30:05Z"
        assert manifest["signature_info"]["common_name"] == "photo-restore local signer"
        # The XMP marks stay, and still nothing of the original rides along.
        assert xmp_fields(jpeg)["Iptc4xmpExt:DigitalSourceType"] == DIGITAL_SOURCE_TYPE
        assert_carries_nothing_of(jpeg, c2pa=True)


def test_a_changed_pixel_invalidates_the_manifest(
    signer: C2paSigner, pair: LocalSigningPair
) -> None:
    signed = provenance(signer).save_jpeg(Image.new("RGB", (320, 240), (90, 60, 30)), quality=90)
    tampered = bytearray(signed)
    tampered[-100] ^= 0xFF  # inside the scan data, which the manifest's hash covers
    assert read(bytes(tampered), pair.trust_anchor).get_validation_state() == "Invalid"


def test_a_key_that_is_not_the_certificates_fails_when_the_signer_is_built() -> None:
    """At the worker container's start, before any provider image is paid for."""
    ours, other = local_signing_pair().credentials, _another_key()
    mismatched = SigningCredentials(private_key=other, certificate_chain=ours.certificate_chain)
    with pytest.raises(c2pa.C2paError):
        C2paSigner(mismatched)


def test_a_self_signed_certificate_is_refused_when_the_signer_is_built() -> None:
    pair = local_signing_pair()
    self_signed = SigningCredentials(
        private_key=pair.credentials.private_key, certificate_chain=pair.trust_anchor
    )
    with pytest.raises(c2pa.C2paError, match="self-signed"):
        C2paSigner(self_signed)


def test_without_c2pa_python_installed_enabling_it_fails_with_the_reason(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A deployed worker has no C2PA layer yet (README): its first message fails, before the
    provider call, saying why."""
    monkeypatch.setitem(sys.modules, "c2pa", None)  # what `import c2pa` finds nowhere
    with pytest.raises(RuntimeError, match="c2pa-python is not installed"):
        C2paSigner(local_signing_pair().credentials)


def _another_key() -> str:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    return (
        ec.generate_private_key(ec.SECP256R1())
        .private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        .decode()
    )


@pytest.mark.parametrize(
    ("fields", "missing"),
    [
        ({"c2pa_certificate_chain": "PEM"}, "C2PA_PRIVATE_KEY"),
        ({"c2pa_private_key": SecretStr("PEM")}, "C2PA_CERTIFICATE_CHAIN"),
    ],
)
def test_enabling_c2pa_without_a_key_or_a_certificate_is_refused(
    fields: dict[str, Any], missing: str
) -> None:
    with pytest.raises(ValidationError, match=missing):
        Settings(c2pa_enabled=True, **fields)


def test_c2pa_is_off_by_default() -> None:
    assert Settings().c2pa_enabled is False
