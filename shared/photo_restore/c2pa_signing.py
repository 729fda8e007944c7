"""Content Credentials (C2PA): a manifest signed with the operator's key, embedded in a stored
restoration beside its XMP marks (C2PA_ENABLED, off by default).

Through c2pa-python, the Content Authenticity Initiative's bindings of c2pa-rs. Its library
(23 MB) is imported only when signing is on."""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from photo_restore.provenance import Provenance

# c2pa-rs adds a thumbnail of the image to the claim by default (tens of KB per file); the file
# is its own picture, so none is embedded.
_SDK_SETTINGS = {"builder": {"thumbnail": {"enabled": False}}}


@dataclass(frozen=True)
class SigningCredentials:
    """PEM texts: the private key and its certificate chain, leaf first."""

    private_key: str
    certificate_chain: str
    algorithm: str = "es256"
    timestamp_url: str | None = None  # an RFC 3161 authority; None: no trusted signing time


def manifest_definition(provenance: Provenance) -> dict[str, Any]:
    """The claim: the file was made (c2pa.created, as C2PA 2 wants a first action) by an AI edit
    (c2pa.edited), both with the IPTC digital source type and our software agent."""
    when = provenance.created_at_text
    kind = provenance.digital_source_type
    return {
        "claim_generator_info": [{"name": provenance.software_agent}],
        "format": "image/jpeg",
        "assertions": [
            {
                "label": "c2pa.actions",
                "data": {
                    "actions": [
                        {
                            "action": "c2pa.created",
                            "when": when,
                            "digitalSourceType": kind,
                            "softwareAgent": {"name": provenance.software_agent},
                        },
                        {
                            "action": "c2pa.edited",
                            "when": when,
                            "digitalSourceType": kind,
                            "softwareAgent": {
                                "name": f"{provenance.software_agent} ({provenance.model})"
                            },
                            "description": "Restored by a generative image-edit model",
                        },
                    ]
                },
            }
        ],
    }


class C2paSigner:
    """Signs JPEGs with one key and chain; built once per worker container."""

    def __init__(self, credentials: SigningCredentials) -> None:
        try:
            import c2pa
        except ImportError as error:
            raise RuntimeError(
                "C2PA_ENABLED, but c2pa-python is not installed where this function runs "
                "(README: Content Credentials)"
            ) from error

        self._c2pa = c2pa
        self._credentials = credentials
        # Refuse bad credentials (a key that is not the certificate's, a self-signed
        # certificate) as the worker is built, before any provider image is paid for.
        self.sign_jpeg(_probe_jpeg(), Provenance(model="probe", created_at=datetime.now(UTC)))

    def sign_jpeg(self, jpeg: bytes, provenance: Provenance) -> bytes:
        c2pa = self._c2pa
        credentials = self._credentials
        info = c2pa.C2paSignerInfo(
            alg=credentials.algorithm,
            sign_cert=credentials.certificate_chain.encode(),
            private_key=credentials.private_key.encode(),
            ta_url=credentials.timestamp_url,
        )
        out = io.BytesIO()
        # Native resources, freed on the way out whatever happens.
        with (
            c2pa.Signer.from_info(info) as signer,
            c2pa.Context.from_dict(_SDK_SETTINGS) as context,
            c2pa.Builder(manifest_definition(provenance), context=context) as builder,
        ):
            builder.sign(signer, "image/jpeg", io.BytesIO(jpeg), out)
        return out.getvalue()


def _probe_jpeg() -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (16, 16), (128, 128, 128)).save(out, format="JPEG")
    return out.getvalue()
