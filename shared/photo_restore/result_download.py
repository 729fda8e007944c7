"""Downloads the provider's result image: a security boundary against SSRF, oversized bodies and
slow senders. Whether the bytes are an image is decided by `result_image`, which decodes them."""

from __future__ import annotations

import contextvars
import ipaddress
import logging
import socket
import ssl
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from contextlib import contextmanager
from typing import Any

import httpcore
import httpx

from photo_restore.errors import InvalidProviderResult, ProviderUnavailable

logger = logging.getLogger(__name__)

MAX_REDIRECTS = 3
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# The wall-clock deadline (time.monotonic) of the exchange running in this context: a result
# download, or a provider call (siliconflow.py uses the same transport).
_deadline: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "result_download_deadline", default=None
)
# getaddrinfo has no timeout of its own: it runs here, and the caller waits only until its deadline.
_resolver_threads = ThreadPoolExecutor(max_workers=2, thread_name_prefix="deadline-dns")


class ResultDownloader:
    """One per container: the HTTP client (and its TLS context, ~40 ms to build) is reused.

    Connections are not kept alive between downloads: a pooled TLS connection is keyed by the
    pinned IP, and must never carry another host name than the one its certificate was
    verified for.
    """

    def __init__(
        self,
        *,
        allow_private_urls: bool,
        max_bytes: int,
        timeout_seconds: float,
        verify: ssl.SSLContext | bool = True,
        resolve: Callable[[str], list[str]] | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._allow_private_urls = allow_private_urls
        self._max_bytes = max_bytes
        self._timeout_seconds = timeout_seconds
        self._resolve = resolve
        self._client = httpx.Client(
            transport=transport or deadline_transport(verify=verify),
            follow_redirects=False,
            # Proxy variables from the environment would bypass the address checks.
            trust_env=False,
        )

    def download(self, url: str) -> bytes:
        return download_result_image(
            url,
            allow_private_urls=self._allow_private_urls,
            max_bytes=self._max_bytes,
            timeout_seconds=self._timeout_seconds,
            http_client=self._client,
            resolve=self._resolve,
        )

    def close(self) -> None:
        self._client.close()


def download_result_image(
    url: str,
    *,
    allow_private_urls: bool,
    max_bytes: int,
    timeout_seconds: float,
    http_client: httpx.Client,
    resolve: Callable[[str], list[str]] | None = None,
) -> bytes:
    """The bytes at `url`, re-checking every redirect hop (at most 3), within `timeout_seconds`
    of wall time for the whole exchange: DNS, connect, TLS, headers and body.

    Refusals raise InvalidProviderResult; network errors, timeouts and 5xx raise
    ProviderUnavailable. `allow_private_urls` (local runs only) permits http and private hosts.
    """
    deadline = time.monotonic() + timeout_seconds
    resolver = resolve or _resolve_with_getaddrinfo
    with wall_time_deadline(deadline):
        current = _parse_url(url)
        for hop in range(MAX_REDIRECTS + 1):
            target = _checked_target(
                current, allow_private_urls=allow_private_urls, resolve=resolver
            )
            result = _fetch(http_client, current, target, deadline=deadline, max_bytes=max_bytes)
            if isinstance(result, bytes):
                if not result:
                    raise InvalidProviderResult("result image is empty")
                return result
            if hop == MAX_REDIRECTS:
                break
            try:
                current = current.join(result)
            except (httpx.InvalidURL, ValueError) as exc:
                raise InvalidProviderResult(f"result redirect Location is invalid: {exc}") from exc
            logger.info("result download redirected to host %s", current.host)
    raise InvalidProviderResult(f"result URL redirected more than {MAX_REDIRECTS} times")


@contextmanager
def wall_time_deadline(deadline: float) -> Iterator[None]:
    """Every socket operation of a deadline_transport in this block ends by `deadline`
    (time.monotonic), whatever per-read timeouts say."""
    token = _deadline.set(deadline)
    try:
        yield
    finally:
        _deadline.reset(token)


def _remaining(
    timeout: float | None, expired: type[httpcore.TimeoutException] = httpcore.ReadTimeout
) -> float | None:
    """`timeout` shortened to what is left before this context's deadline; past it, `expired`
    (the phase's own timeout, so a caller can tell a request never sent from one sent)."""
    deadline = _deadline.get()
    if deadline is None:
        return timeout
    left = deadline - time.monotonic()
    if left <= 0:
        raise expired("the wall-time deadline has passed")
    return left if timeout is None else min(timeout, left)


class _DeadlineStream(httpcore.NetworkStream):
    """Every read, write and TLS handshake gets only the time left: a sender that drips one
    header byte per second can no longer reset a per-read timeout forever."""

    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, _remaining(timeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, _remaining(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        upgraded = self._inner.start_tls(
            ssl_context, server_hostname, _remaining(timeout, httpcore.ConnectTimeout)
        )
        return _DeadlineStream(upgraded)

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class _DeadlineBackend(httpcore.NetworkBackend):
    def __init__(
        self, inner: httpcore.NetworkBackend, resolve: Callable[[str], list[str]] | None = None
    ) -> None:
        self._inner = inner
        self._resolve = resolve or _getaddrinfo

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        addresses = [host]
        if _deadline.get() is not None and _parse_ip(host) is None:
            # The inner backend's getaddrinfo has no timeout: resolve here, within the deadline
            # (the TLS server name stays the host's: httpcore passes it to start_tls itself).
            try:
                addresses = _resolve_by_deadline(self._resolve, host)
            except OSError as exc:
                raise httpcore.ConnectError(f"could not resolve {host!r}: {exc}") from exc
        failure: Exception = httpcore.ConnectError(f"{host!r} resolved to no address")
        for address in addresses:
            try:
                stream = self._inner.connect_tcp(
                    address,
                    port,
                    _remaining(timeout, httpcore.ConnectTimeout),
                    local_address,
                    socket_options,
                )
            except httpcore.ConnectError as exc:
                failure = exc  # the next address may answer, as socket.create_connection does
                continue
            return _DeadlineStream(stream)
        raise failure

    def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        return _DeadlineStream(
            self._inner.connect_unix_socket(
                path, _remaining(timeout, httpcore.ConnectTimeout), socket_options
            )
        )

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


def deadline_transport(
    *,
    verify: ssl.SSLContext | bool = True,
    resolve: Callable[[str], list[str]] | None = None,
) -> httpx.HTTPTransport:
    """httpx's own transport, its network backend wrapped so the context's deadline bounds every
    socket operation, name resolution included (`resolve`: getaddrinfo by default). httpx does
    not expose the backend: it is swapped on its pool (tested)."""
    transport = httpx.HTTPTransport(verify=verify, limits=httpx.Limits(max_keepalive_connections=0))
    pool: Any = transport._pool
    pool._network_backend = _DeadlineBackend(pool._network_backend, resolve)
    return transport


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


def _getaddrinfo(host: str) -> list[str]:
    infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def _resolve_by_deadline(resolve: Callable[[str], list[str]], host: str) -> list[str]:
    """`resolve(host)` in a thread of its own, waited for only until this context's deadline;
    OSError when it fails or takes longer."""
    try:
        return _resolver_threads.submit(resolve, host).result(timeout=_remaining(None))
    except (FutureTimeout, httpcore.TimeoutException) as exc:
        raise OSError(f"resolving {host!r} took longer than the deadline") from exc


def _resolve_with_getaddrinfo(host: str) -> list[str]:
    return _resolve_by_deadline(_getaddrinfo, host)


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
    except (httpx.TransportError, httpcore.TimeoutException) as exc:
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
    except (httpx.TransportError, httpcore.TimeoutException) as exc:
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
    # The deadline transport bounds each read; checking between chunks too keeps any other
    # transport (a test's, say) from letting a slow sender drip bytes forever.
    buffer = bytearray()
    for chunk in response.iter_bytes():  # identity encoding (checked), so nothing is inflated
        buffer += chunk
        if len(buffer) > max_bytes:
            raise InvalidProviderResult(f"result image is above the {max_bytes}-byte limit")
        if time.monotonic() > deadline:
            raise ProviderUnavailable("result download timed out")
    return bytes(buffer)
