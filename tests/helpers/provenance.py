"""Reading back what a stored image says of itself: its XMP (through libvips, not the Pillow that
wrote it), the metadata segments it has, and originals that carry metadata to lose."""

from __future__ import annotations

import io
import struct
import xml.etree.ElementTree as ET
from datetime import UTC, datetime

from PIL import Image

from photo_restore.provenance import ManifestSigner, Provenance

MODEL = "Qwen/Qwen-Image-Edit"
AT = datetime(2026, 12, 4, 18, 30, 5, tzinfo=UTC)
# A place and a camera nobody else writes: found anywhere in a stored file, they leaked.
GPS_LATITUDE = (48.0, 51.0, 29.64)
CAMERA_MAKE = "LeakyCam Model 9"
COMMENT = b"the original's comment"

_XMP_NAMES = {
    "http://iptc.org/std/Iptc4xmpExt/2008-02-29/": "Iptc4xmpExt",
    "http://ns.adobe.com/xap/1.0/": "xmp",
}


def provenance(signer: ManifestSigner | None = None) -> Provenance:
    return Provenance(model=MODEL, created_at=AT, signer=signer)


def xmp_fields(jpeg: bytes) -> dict[str, str]:
    """The simple properties of the image's XMP packet as libvips finds it, by prefixed name."""
    import pyvips

    image = pyvips.Image.new_from_buffer(jpeg, "")
    assert "xmp-data" in image.get_fields(), "no XMP packet"
    packet = image.get("xmp-data").decode()
    body = packet[packet.index("<x:xmpmeta") : packet.index("</x:xmpmeta>") + len("</x:xmpmeta>")]
    fields = {}
    for element in ET.fromstring(body).iter():
        namespace, _, name = element.tag.removeprefix("{").partition("}")
        if namespace in _XMP_NAMES and element.text:
            fields[f"{_XMP_NAMES[namespace]}:{name}"] = element.text
    return fields


def metadata_segments(jpeg: bytes) -> list[str]:
    """The JPEG's APPn and COM segments before its scan, named by marker and identifier."""
    assert jpeg[:2] == b"\xff\xd8"
    names, at = [], 2
    while at < len(jpeg):
        marker = jpeg[at + 1]
        if marker == 0xDA:  # start of scan: no metadata follows in a file we wrote
            break
        (length,) = struct.unpack(">H", jpeg[at + 2 : at + 4])
        body = jpeg[at + 4 : at + 2 + length]
        if 0xE0 <= marker <= 0xEF:
            names.append(f"APP{marker - 0xE0}:{body.split(b'\x00', 1)[0][:28].decode('latin-1')}")
        elif marker == 0xFE:
            names.append("COM")
        at += 2 + length
    return names


def original_with_gps(size: tuple[int, int] = (1600, 1200)) -> bytes:
    """A phone-like JPEG: EXIF with GPS and camera, an XMP packet, an ICC profile, a comment."""
    from PIL import ImageCms

    image = Image.new("RGB", size, (150, 120, 90))
    exif = Image.Exif()
    exif[0x010F] = CAMERA_MAKE  # Make
    gps = exif.get_ifd(0x8825)
    gps[1], gps[2], gps[3], gps[4] = "N", GPS_LATITUDE, "E", (2.0, 17.0, 40.0)
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    xmp = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF/></x:xmpmeta>'
    out = io.BytesIO()
    image.save(out, "JPEG", exif=exif, icc_profile=icc, xmp=xmp, comment=COMMENT, quality=90)
    return out.getvalue()


def assert_carries_nothing_of(jpeg: bytes, *, c2pa: bool = False) -> None:
    """No EXIF (GPS, camera), ICC, comment or foreign XMP: only JFIF and our XMP packet, and,
    with Content Credentials on, their JUMBF boxes (APP11, ISO 19566-5)."""
    segments = metadata_segments(jpeg)
    ours = [name for name in segments if not name.startswith("APP11:")]
    assert ours == ["APP0:JFIF", "APP1:http://ns.adobe.com/xap/1.0/"], segments
    assert (len(ours) < len(segments)) == c2pa, segments
    with Image.open(io.BytesIO(jpeg)) as image:
        assert not image.getexif()
        assert "icc_profile" not in image.info and "comment" not in image.info
    assert CAMERA_MAKE.encode() not in jpeg and COMMENT not in jpeg
