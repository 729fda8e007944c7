"""What a restoration says about itself: an AI edit of a real photo, by which model, when.

The EU AI Act (Article 50(2)) asks providers of generative systems to mark their outputs as
artificially generated or manipulated, machine-readably. Every restored image and thumbnail we
store carries an XMP packet (IPTC Photo Metadata) saying so, and nothing else: no EXIF, GPS,
ICC profile, comment or XMP of the user's original or of the provider's file survives. Optionally
it also carries a signed C2PA manifest (Content Credentials), see photo_restore.c2pa_signing.
"""

from __future__ import annotations

import io
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal, Protocol

if TYPE_CHECKING:
    from PIL import Image

# IPTC NewsCodes, Digital Source Type (http://cv.iptc.org/newscodes/digitalsourcetype/), the
# vocabulary C2PA uses too. compositeWithTrainedAlgorithmicMedia, named "Edited using Generative
# AI": "Augmentation, correction or enhancement using a Generative AI model, such as with
# inpainting or outpainting operations". That is a restoration: Qwen-Image-Edit regenerates the
# pixels of a real photo and paints in what scratches and tears took. Not trainedAlgorithmicMedia
# ("Created using Generative AI", media made by a model from a prompt alone): the image shows a
# real scene. Not algorithmicallyEnhanced ("Modification or correction by algorithm" without
# changing the main content, like sharpening or denoising): a generative model may change it.
DIGITAL_SOURCE_TYPE = (
    "http://cv.iptc.org/newscodes/digitalsourcetype/compositeWithTrainedAlgorithmicMedia"
)
# What made the file (xmp:CreatorTool, the C2PA action's softwareAgent).
SOFTWARE_AGENT = "photo-restore"

_NAMESPACES = {
    "x": "adobe:ns:meta/",
    "rdf": "http://www.w3.org/1999/02/22-rdf-syntax-ns#",
    "xmp": "http://ns.adobe.com/xap/1.0/",
    "Iptc4xmpExt": "http://iptc.org/std/Iptc4xmpExt/2008-02-29/",
}
for _prefix, _uri in _NAMESPACES.items():
    ET.register_namespace(_prefix, _uri)


def _tag(qualified: str) -> str:
    prefix, name = qualified.split(":")
    return f"{{{_NAMESPACES[prefix]}}}{name}"


class ManifestSigner(Protocol):
    """Embeds a signed C2PA manifest in a JPEG (photo_restore.c2pa_signing.C2paSigner)."""

    def sign_jpeg(self, jpeg: bytes, provenance: Provenance) -> bytes: ...


@dataclass(frozen=True)
class Provenance:
    """The marks of one restoration: its model, its time, and the signer of its manifest."""

    model: str
    created_at: datetime
    signer: ManifestSigner | None = None  # None: XMP only (C2PA_ENABLED off)
    digital_source_type: str = DIGITAL_SOURCE_TYPE
    software_agent: str = SOFTWARE_AGENT

    @property
    def created_at_text(self) -> str:
        """ISO 8601 in UTC, to the second, as XMP dates are written."""
        return self.created_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    def xmp_packet(self) -> bytes:
        """An XMP packet of IPTC fields (Iptc4xmpExt:DigitalSourceType; AISystemUsed, the IPTC
        2025.1 field for "the AI engine and/or the model name") and XMP basic ones (CreatorTool,
        CreateDate, MetadataDate)."""
        meta = ET.Element(_tag("x:xmpmeta"))
        rdf = ET.SubElement(meta, _tag("rdf:RDF"))
        description = ET.SubElement(rdf, _tag("rdf:Description"), {_tag("rdf:about"): ""})
        for name, value in (
            ("Iptc4xmpExt:DigitalSourceType", self.digital_source_type),
            ("Iptc4xmpExt:AISystemUsed", self.model),
            ("xmp:CreatorTool", f"{self.software_agent} ({self.model})"),
            ("xmp:CreateDate", self.created_at_text),
            ("xmp:MetadataDate", self.created_at_text),
        ):
            ET.SubElement(description, _tag(name)).text = value
        body = ET.tostring(meta, encoding="unicode")
        return (
            f'<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>{body}<?xpacket end="r"?>'
        ).encode()

    def record(self) -> dict[str, Any]:
        """What the attempt keeps of it (params.provenance), for the API's `after`."""
        return {
            "digital_source_type": self.digital_source_type,
            "model": self.model,
            "software_agent": self.software_agent,
            "created_at": self.created_at_text,
            "c2pa": self.signer is not None,
        }

    def save_jpeg(self, image: Image.Image, *, quality: int | Literal["keep"]) -> bytes:
        """`image` as a JPEG carrying these marks and no other metadata.

        Pillow writes only the segments it is handed: this XMP (and an empty comment, since it
        would copy a decoded JPEG's COM). `quality="keep"` re-quantises a decoded JPEG with its
        own tables and subsampling, which adds next to no loss to a provider's JPEG."""
        out = io.BytesIO()
        image.save(out, format="JPEG", quality=quality, xmp=self.xmp_packet(), comment=b"")
        jpeg = out.getvalue()
        return self.signer.sign_jpeg(jpeg, self) if self.signer is not None else jpeg
