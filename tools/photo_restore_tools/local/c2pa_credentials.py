"""A local C2PA signing pair for `serve` and the tests: a throwaway CA and a leaf certificate of
the profile C2PA wants (not a CA, digitalSignature, emailProtection). No validator trusts it; a
Reader told to trust `LocalSigningPair.trust_anchor` reports the manifest Trusted."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

from pydantic import SecretStr

from photo_restore.c2pa_signing import SigningCredentials

ORGANIZATION = "photo-restore local test signer (untrusted)"


@dataclass(frozen=True)
class LocalSigningPair:
    credentials: SigningCredentials
    trust_anchor: str  # the CA certificate, PEM


def local_c2pa_settings() -> dict[str, Any]:
    """Settings fields for the local stack: with C2PA_ENABLED=true it signs with the local pair,
    unless the environment names an operator's own key."""
    if os.environ.get("C2PA_PRIVATE_KEY") or os.environ.get("C2PA_PRIVATE_KEY_PARAMETER"):
        return {}
    signing = local_signing_pair().credentials
    return {
        "c2pa_private_key": SecretStr(signing.private_key),
        "c2pa_certificate_chain": signing.certificate_chain,
    }


@cache
def local_signing_pair() -> LocalSigningPair:
    """One pair per process: ECDSA P-256 (es256), valid from yesterday for a year."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    def name(common_name: str) -> x509.Name:
        return x509.Name(
            [
                x509.NameAttribute(NameOID.COMMON_NAME, common_name),
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORGANIZATION),
            ]
        )

    def usage(*, sign: bool, ca: bool) -> x509.KeyUsage:
        return x509.KeyUsage(
            digital_signature=sign,
            content_commitment=False,
            key_encipherment=False,
            data_encipherment=False,
            key_agreement=False,
            key_cert_sign=ca,
            crl_sign=ca,
            encipher_only=False,
            decipher_only=False,
        )

    now = datetime.now(UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(name("photo-restore local CA"))
        .issuer_name(name("photo-restore local CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(usage(sign=False, ca=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(name("photo-restore local signer"))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(usage(sign=True, ca=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )

    def pem(certificate: x509.Certificate) -> str:
        return certificate.public_bytes(serialization.Encoding.PEM).decode()

    private_key = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    return LocalSigningPair(
        credentials=SigningCredentials(private_key=private_key, certificate_chain=pem(leaf)),
        trust_anchor=pem(ca),
    )
