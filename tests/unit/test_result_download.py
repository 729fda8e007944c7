"""download_result_image on scripted transports: SSRF refusals, redirect re-checks, byte cap,
deadline, image check."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import httpx
import pytest

from photo_restore.errors import InvalidProviderResult, ProviderUnavailable
from photo_restore.result_download import download_result_image
from tests.helpers.images import png
from tests.helpers.provider import static_resolver

PUBLIC_IP = "93.184.216.34"


PNG = png()
_resolver = static_resolver


class Recorder:
    """A MockTransport handler that records requests and answers from a script."""

    def __init__(self, answer: Callable[[httpx.Request], httpx.Response]) -> None:
        self.answer = answer
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.answer(request)

    def client(self) -> httpx.Client:
        return httpx.Client(transport=httpx.MockTransport(self))


def _download(
    url: str,
    recorder: Recorder,
    *,
    resolve: dict[str, list[str]] | None = None,
    max_bytes: int = 1_000_000,
    timeout_seconds: float = 5.0,
    allow_private_urls: bool = False,
) -> bytes:
    return download_result_image(
        url,
        allow_private_urls=allow_private_urls,
        max_bytes=max_bytes,
        timeout_seconds=timeout_seconds,
        http_client=recorder.client(),
        resolve=_resolver(resolve or {"cdn.example": [PUBLIC_IP]}),
    )


def test_public_https_download_is_pinned_to_vetted_address() -> None:
    recorder = Recorder(lambda _: httpx.Response(200, content=PNG))
    assert _download("https://cdn.example/r/1.png?sig=abc", recorder) == PNG
    (request,) = recorder.requests
    assert request.url.host == PUBLIC_IP and request.url.query == b"sig=abc"
    assert request.headers["host"] == "cdn.example"
    assert request.extensions["sni_hostname"] == "cdn.example"
    assert request.headers["accept-encoding"] == "identity"


@pytest.mark.parametrize(
    "url",
    [
        "http://cdn.example/r.png",
        "ftp://cdn.example/r.png",
        "file:///etc/passwd",
        "https://user:pw@cdn.example/r.png",
        "https://user@cdn.example/r.png",
        "not a url",
    ],
)
def test_refused_urls(url: str) -> None:
    recorder = Recorder(lambda _: httpx.Response(200, content=PNG))
    with pytest.raises(InvalidProviderResult):
        _download(url, recorder)
    assert recorder.requests == []


@pytest.mark.parametrize(
    "addresses",
    [
        ["10.0.0.1"],
        ["127.0.0.1"],
        ["169.254.169.254"],
        ["::1"],
        ["::ffff:127.0.0.1"],
        ["fe80::1%eth0"],
        ["fd00::1"],
        ["0.0.0.0"],
        ["224.0.0.1"],
        ["100.64.0.1"],
        ["192.168.1.1"],
        ["240.0.0.1"],
        [PUBLIC_IP, "172.16.0.5"],  # any private answer is enough to refuse
    ],
)
def test_private_addresses_refused(addresses: list[str]) -> None:
    recorder = Recorder(lambda _: httpx.Response(200, content=PNG))
    with pytest.raises(InvalidProviderResult, match="non-public"):
        _download("https://cdn.example/r.png", recorder, resolve={"cdn.example": addresses})
    assert recorder.requests == []


@pytest.mark.parametrize("url", ["https://169.254.169.254/latest/meta-data", "https://[::1]/x"])
def test_ip_literal_hosts_refused_without_resolving(url: str) -> None:
    recorder = Recorder(lambda _: httpx.Response(200, content=PNG))
    with pytest.raises(InvalidProviderResult):
        _download(url, recorder, resolve={})  # an empty table: resolving would KeyError
    assert recorder.requests == []


@pytest.mark.parametrize("host", ["localhost", "127.1", "2130706433", "0x7f.0.0.1"])
def test_default_resolver_refuses_loopback_spellings(host: str) -> None:
    recorder = Recorder(lambda _: httpx.Response(200, content=PNG))
    with pytest.raises(InvalidProviderResult, match="non-public"):
        download_result_image(
            f"https://{host}/x.png",
            allow_private_urls=False,
            max_bytes=1000,
            timeout_seconds=2,
            http_client=recorder.client(),
        )
    assert recorder.requests == []


def test_unresolvable_host_is_transient() -> None:
    def fail(host: str) -> list[str]:
        raise OSError("Temporary failure in name resolution")

    with pytest.raises(ProviderUnavailable, match="resolve"):
        download_result_image(
            "https://cdn.example/x.png",
            allow_private_urls=False,
            max_bytes=1000,
            timeout_seconds=2,
            http_client=Recorder(lambda _: httpx.Response(200)).client(),
            resolve=fail,
        )


def _redirect(location: str, status: int = 302) -> httpx.Response:
    return httpx.Response(status, headers={"Location": location})


def test_redirect_to_private_address_refused() -> None:
    recorder = Recorder(lambda _: _redirect("https://internal.example/secret"))
    table = {"cdn.example": [PUBLIC_IP], "internal.example": ["10.1.2.3"]}
    with pytest.raises(InvalidProviderResult, match="non-public"):
        _download("https://cdn.example/r.png", recorder, resolve=table)
    assert len(recorder.requests) == 1


def test_redirect_to_metadata_ip_and_to_http_refused() -> None:
    for location in ("https://169.254.169.254/latest", "http://cdn.example/r.png"):
        recorder = Recorder(lambda _, loc=location: _redirect(loc))  # type: ignore[misc]
        with pytest.raises(InvalidProviderResult):
            _download("https://cdn.example/r.png", recorder)
        assert len(recorder.requests) == 1


def test_public_redirects_are_rechecked_and_followed() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        if request.headers["host"] == "cdn.example":
            return _redirect("https://img.example/final.png", 307)
        return httpx.Response(200, content=PNG)

    recorder = Recorder(answer)
    table = {"cdn.example": [PUBLIC_IP], "img.example": ["8.8.8.8"]}
    assert _download("https://cdn.example/r.png", recorder, resolve=table) == PNG
    assert [r.url.host for r in recorder.requests] == [PUBLIC_IP, "8.8.8.8"]
    assert recorder.requests[1].headers["host"] == "img.example"


def test_relative_redirect_resolved_against_current_url() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/a/r.png":
            return _redirect("../b/final.png")
        return httpx.Response(200, content=PNG)

    recorder = Recorder(answer)
    assert _download("https://cdn.example/a/r.png", recorder) == PNG
    assert recorder.requests[1].url.path == "/b/final.png"


def test_too_many_redirects_refused() -> None:
    recorder = Recorder(lambda r: _redirect(f"/hop{len(recorder.requests)}"))
    with pytest.raises(InvalidProviderResult, match="redirected more than 3"):
        _download("https://cdn.example/r.png", recorder)
    assert len(recorder.requests) == 4  # the first request plus 3 followed hops


def test_content_length_above_cap_refused() -> None:
    recorder = Recorder(lambda _: httpx.Response(200, content=b"x" * 5000))
    with pytest.raises(InvalidProviderResult, match="5000 bytes"):
        _download("https://cdn.example/r.png", recorder, max_bytes=4096)


def test_streamed_body_without_length_capped() -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(100):
            yield b"x" * 1024

    def answer(_: httpx.Request) -> httpx.Response:
        response = httpx.Response(200, content=chunks())
        assert "content-length" not in response.headers
        return response

    with pytest.raises(InvalidProviderResult, match="4096-byte limit"):
        _download("https://cdn.example/r.png", Recorder(answer), max_bytes=4096)


def test_overall_deadline_on_slow_sender() -> None:
    sent: list[bytes] = []

    def drip() -> Iterator[bytes]:
        for _ in range(50):  # 2.5 s at least, however loaded the machine: past the deadline
            time.sleep(0.05)
            sent.append(b"x")
            yield b"x"

    with pytest.raises(ProviderUnavailable, match="timed out"):
        _download(
            "https://cdn.example/r.png",
            Recorder(lambda _: httpx.Response(200, content=drip())),
            timeout_seconds=0.3,
        )
    assert len(sent) < 50  # cut off while the sender was still sending, not at its end


def test_compressed_body_refused() -> None:
    recorder = Recorder(
        lambda _: httpx.Response(200, content=b"\x1f\x8b", headers={"Content-Encoding": "gzip"})
    )
    with pytest.raises(InvalidProviderResult, match="Content-Encoding"):
        _download("https://cdn.example/r.png", recorder)


@pytest.mark.parametrize(("status", "error"), [(404, InvalidProviderResult),
                                              (403, InvalidProviderResult),
                                              (500, ProviderUnavailable),
                                              (503, ProviderUnavailable)])  # fmt: skip
def test_http_errors(status: int, error: type[Exception]) -> None:
    with pytest.raises(error, match=str(status)):
        _download("https://cdn.example/r.png", Recorder(lambda _: httpx.Response(status)))


def test_transport_error_is_unavailable() -> None:
    def fail(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    with pytest.raises(ProviderUnavailable, match="ConnectError"):
        _download("https://cdn.example/r.png", Recorder(fail))


# --- Over loopback against the stand-in ---------------------------------------------------
