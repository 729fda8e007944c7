"""Downloads the provider's result image: a security boundary against SSRF, oversized bodies, slow
senders and bytes that are not an image."""

from __future__ import annotations

import io
import ipaddress
import logging
import socket
import time
from collections.abc import Callable
from typing import Any

import httpx

from photo_restore.errors import InvalidProviderResult, ProviderUnavailable

logger = logging.getLogger(__name__)

MAX_REDIRECTS = 3
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
# Only formats a result can plausibly be; exotic decoders (EPS runs Ghostscript) stay out of reach.
ALLOWED_FORMATS = ("JPEG", "PNG", "WEBP")

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def download_result_image(
    url: str,
    *,
    allow_private_urls: bool,
    max_bytes: int,
    timeout_seconds: float,
    http_client: httpx.Client | None = None,
    resolve: Callable[[str], list[str]] | None = None,
) -> bytes:
    """The image bytes at `url`, re-checking every redirect hop (at most 3).

    Refusals raise InvalidProviderResult; network errors, timeouts and 5xx raise
    ProviderUnavailable. `allow_private_urls` (local runs only) permits http and private hosts.
    """
    deadline = time.monotonic() + timeout_seconds
    resolver = resolve or _resolve_with_getaddrinfo
    client = http_client or httpx.Client(
        follow_redirects=False,
        # Proxy variables from the environment would bypass the address checks below.
        trust_env=False,
    )
    try:
        current = _parse_url(url)
        for hop in range(MAX_REDIRECTS + 1):
            target = _checked_target(
                current, allow_private_urls=allow_private_urls, resolve=resolver
            )
            result = _fetch(client, current, target, deadline=deadline, max_bytes=max_bytes)
            if isinstance(result, bytes):
                _verify_image(result)
                return result
            if hop == MAX_REDIRECTS:
                break
            try:
                current = current.join(result)
            except (httpx.InvalidURL, ValueError) as exc:
                raise InvalidProviderResult(f"result redirect Location is invalid: {exc}") from exc
            logger.info("result download redirected to host %s", current.host)
        raise InvalidProviderResult(f"result URL redirected more than {MAX_REDIRECTS} times")
    finally:
        if http_client is None:
            client.close()


def _parse_url(url: str) -> httpx.URL:
    try:
        return httpx.URL(url)
    except (httpx.InvalidURL, TypeError, ValueError) as exc:
        raise InvalidProviderResult(f"result URL is not a valid URL: {exc}") from exc


def _checked_target(
    url: httpx.URL, *, allow_private_urls: bool, resolve: Callable[[str], list[str]]
) -> IPAddress | None:
    """Refuses a URL we must not fetch; returns the vetted address to connect to, or None for
    local runs where nothing is pinned."""
    allowed_schemes = ("https", "http") if allow_private_urls else ("https",)
    if url.scheme not in allowed_schemes:
        raise InvalidProviderResult(
            f"result URL scheme {url.scheme!r} refused (allowed: {', '.join(allowed_schemes)})"
        )
    if url.userinfo:
        raise InvalidProviderResult("result URL with credentials (userinfo) refused")
    # raw_host is the ASCII (IDNA) form, the one DNS and TLS see.
    host = url.raw_host.decode("ascii")
    if not host:
        raise InvalidProviderResult("result URL has no host")
    if allow_private_urls:
        return None
    addresses = _addresses_of(host, resolve)
    for address in addresses:
        if not _is_public(address):
            raise InvalidProviderResult(
                f"result URL host {host!r} resolves to non-public address {address} (refused)"
            )
    # Connect to the address just checked, so a second DNS answer cannot swap in a private one;
    # IPv4 first because Lambda and many VPCs have no IPv6 route.
    return next((a for a in addresses if a.version == 4), addresses[0])


def _addresses_of(host: str, resolve: Callable[[str], list[str]]) -> list[IPAddress]:
    literal = _parse_ip(host)
    if literal is not None:
        return [literal]
    try:
        raw = resolve(host)
    except OSError as exc:  # socket.gaierror: DNS may recover, so transient
        raise ProviderUnavailable(f"could not resolve result host {host!r}: {exc}") from exc
    addresses = [ip for ip in (_parse_ip(a) for a in raw) if ip is not None]
    if not addresses or len(addresses) != len(raw):
        raise InvalidProviderResult(f"result host {host!r} resolved to no usable address: {raw}")
    return addresses


def _parse_ip(value: str) -> IPAddress | None:
    try:
        # A scope id ("fe80::1%eth0") does not change which network the address is in.
        return ipaddress.ip_address(value.split("%", 1)[0])
    except ValueError:
        return None


def _is_public(address: IPAddress) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped  # ::ffff:127.0.0.1 is loopback
    return not (
        address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
        # is_global also excludes shared (100.64/10 carrier NAT) and other special ranges.
        or not address.is_global
    )


def _resolve_with_getaddrinfo(host: str) -> list[str]:
    infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def _fetch(
    client: httpx.Client,
    url: httpx.URL,
    target: IPAddress | None,
    *,
    deadline: float,
    max_bytes: int,
) -> bytes | str:
    """The body, or the Location of a redirect for the caller to re-check."""
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise ProviderUnavailable("result download timed out")
    # identity: a compressed body could inflate far past max_bytes inside a single chunk.
    headers = {"Accept": "image/*", "Accept-Encoding": "identity"}
    request_url, extensions = url, dict[str, Any]()
    if target is not None:
        # Pinned: connect to the vetted IP while TLS (SNI, certificate) and Host use the name.
        request_url = url.copy_with(host=str(target))
        headers["Host"] = url.netloc.decode("ascii")
        extensions["sni_hostname"] = url.raw_host.decode("ascii")
    try:
        request = client.build_request(
            "GET",
            request_url,
            headers=headers,
            timeout=httpx.Timeout(remaining),
            extensions=extensions,
        )
        response = client.send(request, stream=True, follow_redirects=False)
    except httpx.TransportError as exc:
        raise ProviderUnavailable(f"result download failed: {type(exc).__name__}: {exc}") from exc
    try:
        status = response.status_code
        if status in REDIRECT_STATUSES:
            location: str | None = response.headers.get("location")
            if not location:
                raise InvalidProviderResult(f"result URL answered {status} without a Location")
            return location
        if status >= 500 or status == 429:
            raise ProviderUnavailable(f"result download answered {status}")
        if status != 200:
            # 403/404 usually mean the one-hour result URL expired: downloading again cannot help.
            raise InvalidProviderResult(f"result download answered {status}")
        _check_body_headers(response, max_bytes)
        return _read_capped(response, deadline=deadline, max_bytes=max_bytes)
    except httpx.TransportError as exc:
        raise ProviderUnavailable(f"result download failed: {type(exc).__name__}: {exc}") from exc
    finally:
        response.close()


def _check_body_headers(response: httpx.Response, max_bytes: int) -> None:
    declared = response.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise InvalidProviderResult(
            f"result image is {declared} bytes, above the {max_bytes}-byte limit"
        )
    encoding = response.headers.get("content-encoding", "identity").strip().lower()
    if encoding not in ("", "identity"):
        # We asked for identity; decoding here could inflate past max_bytes in one chunk.
        raise InvalidProviderResult(f"result sent with Content-Encoding {encoding!r}")


def _read_capped(response: httpx.Response, *, deadline: float, max_bytes: int) -> bytes:
    # The per-read timeout alone would let a slow sender drip bytes forever; the deadline is
    # checked after every chunk, so the total is bounded by the deadline plus one read timeout.
    buffer = bytearray()
    for chunk in response.iter_bytes():  # identity encoding (checked), so nothing is inflated
        buffer += chunk
        if len(buffer) > max_bytes:
            raise InvalidProviderResult(f"result image is above the {max_bytes}-byte limit")
        if time.monotonic() > deadline:
            raise ProviderUnavailable("result download timed out")
    return bytes(buffer)


def _verify_image(data: bytes) -> None:
    from PIL import Image  # lazy: Pillow is heavy and only this step needs it here

    if not data:
        raise InvalidProviderResult("result image is empty")
    try:
        with Image.open(io.BytesIO(data), formats=ALLOWED_FORMATS) as image:
            image.verify()
    except Exception as exc:  # Pillow raises many types (OSError, SyntaxError, bomb errors...)
        raise InvalidProviderResult(f"result is not a readable image: {exc}") from exc
