"""The SiliconFlow stand-in honours the contract: auth, validation, trace ids, results, expiry."""

from __future__ import annotations

import base64
import io
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from PIL import Image, ImageStat

from photo_restore_tools.local.siliconflow_standin import (
    Behaviour,
    SiliconFlowStandIn,
    restore_image,
    result_size,
)


def _jpeg(size: tuple[int, int] = (64, 48)) -> bytes:
    image = Image.new("RGB", size)
    # A faded, warm-tinted gradient: something autocontrast and the balance visibly change.
    image.putdata(
        [(120 + x % 60, 100 + y % 40, 80) for y in range(size[1]) for x in range(size[0])]
    )
    buf = io.BytesIO()
    image.save(buf, format="JPEG")
    return buf.getvalue()


def _data_uri(data: bytes) -> str:
    return "data:image/jpeg;base64," + base64.b64encode(data).decode()


def _body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": "Qwen/Qwen-Image-Edit",
        "prompt": "restore",
        "image": _data_uri(_jpeg()),
        "num_inference_steps": 20,
        "cfg": 4.0,
    }
    body.update(overrides)
    return {k: v for k, v in body.items() if v is not None}


AUTH = {"Authorization": "Bearer any-key"}


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(scope="module")
def server(clock: FakeClock) -> Iterator[SiliconFlowStandIn]:
    with SiliconFlowStandIn(result_ttl_seconds=60, clock=clock) as standin:
        yield standin


@pytest.fixture
def standin(server: SiliconFlowStandIn) -> Iterator[SiliconFlowStandIn]:
    server.reset()
    yield server
    server.reset()


@pytest.fixture(scope="module")
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=5) as client:
        yield client


def _post(
    http: httpx.Client, standin: SiliconFlowStandIn, body: object, headers: dict[str, str] = AUTH
) -> httpx.Response:
    return http.post(f"{standin.base_url}/images/generations", json=body, headers=headers)


def test_base_url_and_success_shape(standin: SiliconFlowStandIn, http: httpx.Client) -> None:
    assert standin.base_url == f"http://127.0.0.1:{standin.port}/v1" and standin.port > 0
    response = _post(http, standin, _body(seed=5))
    assert response.status_code == 200
    payload = response.json()
    assert payload["seed"] == 5
    assert isinstance(payload["timings"]["inference"], float)
    (image,) = payload["images"]
    assert image["url"].startswith(f"http://127.0.0.1:{standin.port}/results/")
    assert response.headers["x-siliconcloud-trace-id"].startswith("ti_")


def test_results_are_near_one_megapixel_keeping_the_aspect_and_visibly_changed(
    standin: SiliconFlowStandIn, http: httpx.Client
) -> None:
    """Our assumption of the service's output size: the reference pipeline's ~1 MP."""
    original = _jpeg((64, 48))
    url = _post(http, standin, _body(image=_data_uri(original))).json()["images"][0]["url"]
    result = http.get(url)
    assert result.status_code == 200 and result.headers["content-type"] == "image/jpeg"
    assert result.headers["x-siliconcloud-trace-id"]
    with Image.open(io.BytesIO(result.content)) as out, Image.open(io.BytesIO(original)) as src:
        assert out.size == result_size(64, 48) == (1184, 896)
        assert abs(out.width / out.height - 64 / 48) < 0.02
        before, after = ImageStat.Stat(src), ImageStat.Stat(out.convert("RGB"))
        # Autocontrast stretches the range; the balance narrows the red/blue gap.
        assert (
            after.extrema[0][1] - after.extrema[0][0] > before.extrema[0][1] - before.extrema[0][0]
        )
        assert abs(after.mean[0] - after.mean[2]) < abs(before.mean[0] - before.mean[2])
    assert result_size(3584, 2688) == (1184, 896)  # a 12 MP submission comes back this small


def test_restore_is_deterministic() -> None:
    data = _jpeg()
    assert restore_image(data) == restore_image(data)


def test_seed_generated_when_absent(standin: SiliconFlowStandIn, http: httpx.Client) -> None:
    seed = _post(http, standin, _body()).json()["seed"]
    assert isinstance(seed, int) and 0 <= seed <= 9_999_999_999


def test_input_fetched_from_http_url(standin: SiliconFlowStandIn, http: httpx.Client) -> None:
    # The stand-in's own result URL plays the presigned S3 URL here.
    first = _post(http, standin, _body()).json()["images"][0]["url"]
    response = _post(http, standin, _body(image=first))
    assert response.status_code == 200
    unreachable = _post(http, standin, _body(image=standin.root_url + "/results/missing.jpg"))
    assert unreachable.status_code == 400
    assert "failed to download image" in unreachable.json()["message"]


@pytest.mark.parametrize(
    ("headers", "status"),
    [({}, 401), ({"Authorization": "Bearer"}, 401), ({"Authorization": "Basic abc"}, 401)],
)
def test_missing_or_wrong_auth(
    standin: SiliconFlowStandIn, http: httpx.Client, headers: dict[str, str], status: int
) -> None:
    response = _post(http, standin, _body(), headers=headers)
    assert response.status_code == status
    # The service answers 401 in plain text, not its JSON error shape.
    assert response.text == "Invalid token"
    assert response.headers["content-type"].startswith("text/plain")
    assert response.headers["x-siliconcloud-trace-id"]


def test_required_api_key(http: httpx.Client) -> None:
    with SiliconFlowStandIn(api_key="right") as strict:
        assert _post(http, strict, _body(), {"Authorization": "Bearer wrong"}).status_code == 401
        assert _post(http, strict, _body(), {"Authorization": "Bearer right"}).status_code == 200


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        ({"prompt": ""}, "prompt"),
        ({"prompt": None}, "prompt"),
        ({"model": None}, "model"),
        ({"image": None}, "image is required"),
        ({"num_inference_steps": 0}, "num_inference_steps"),
        ({"num_inference_steps": 101}, "num_inference_steps"),
        ({"cfg": 20.5}, "cfg must be a number in [0.1, 20]"),
        ({"cfg": 0.05}, "cfg"),
        # Kolors' fields, refused for Qwen-Image-Edit as the reference says.
        ({"guidance_scale": 7.5}, "guidance_scale is not supported by Qwen/Qwen-Image-Edit"),
        ({"image_size": "1024x1024"}, "image_size is not supported"),
        ({"batch_size": 1}, "batch_size is not supported"),
        ({"seed": -1}, "seed"),
        ({"seed": 10_000_000_000}, "seed"),
        ({"negative_prompt": 3}, "negative_prompt"),
        ({"image": "data:image/jpeg;base64,@@@"}, "base64"),
        ({"image": "ftp://x/y.jpg"}, "http(s) URL or a data URI"),
        ({"image": _data_uri(b"not a jpeg")}, "could not be decoded"),
    ],
)
def test_validation_errors(
    standin: SiliconFlowStandIn, http: httpx.Client, overrides: dict[str, Any], fragment: str
) -> None:
    response = _post(http, standin, _body(**overrides))
    assert response.status_code == 400
    payload = response.json()
    assert fragment in payload["message"] and payload["code"] == 20015
    assert payload["data"] is None
    assert response.headers["x-siliconcloud-trace-id"]


def test_an_unknown_model_is_code_20012(standin: SiliconFlowStandIn, http: httpx.Client) -> None:
    response = _post(http, standin, _body(model="Qwen/Qwen-Image-Edit-9999"))
    assert response.status_code == 400
    assert response.json() == {
        "code": 20012,
        "message": "Model does not exist. Please check it carefully.",
        "data": None,
    }


def test_kolors_takes_guidance_scale_and_batch_size(
    standin: SiliconFlowStandIn, http: httpx.Client
) -> None:
    body = _body(model="Kwai-Kolors/Kolors", cfg=None, guidance_scale=7.5, batch_size=1)
    assert _post(http, standin, body).status_code == 200
    assert _post(http, standin, {**body, "guidance_scale": 21}).status_code == 400


def test_non_json_body_is_400(standin: SiliconFlowStandIn, http: httpx.Client) -> None:
    response = http.post(f"{standin.base_url}/images/generations", content=b"{oops", headers=AUTH)
    assert response.status_code == 400
    assert standin.requests == [{"_raw": "{oops"}]


def test_unknown_paths_404_in_plain_text_with_trace_id(
    standin: SiliconFlowStandIn, http: httpx.Client
) -> None:
    for response in (
        http.get(standin.root_url + "/results/unknown.jpg"),
        http.get(standin.root_url + "/nothing"),
        http.post(standin.base_url + "/chat/completions", json={}, headers=AUTH),
    ):
        assert response.status_code == 404 and response.text == "404 page not found"
        assert response.headers["x-siliconcloud-trace-id"]


def test_result_urls_carry_their_expiry_and_expire(
    standin: SiliconFlowStandIn, http: httpx.Client, clock: FakeClock
) -> None:
    url = _post(http, standin, _body()).json()["images"][0]["url"]
    assert "?expires=" in url and "&signature=" in url
    assert http.get(url.split("&signature=")[0] + "&signature=forged").status_code == 403
    clock.now += 59
    assert http.get(url).status_code == 200
    clock.now += 2
    expired = http.get(url)
    assert (expired.status_code, expired.text) == (403, "Request has expired")


def test_requests_recorded_with_short_image(
    standin: SiliconFlowStandIn, http: httpx.Client
) -> None:
    _post(http, standin, _body(seed=1))
    (recorded,) = standin.requests
    assert recorded["seed"] == 1 and recorded["prompt"] == "restore"
    assert len(recorded["image"]) < 100 and recorded["image"].startswith("data:image/jpeg")


def test_behaviours_are_one_shot_and_in_order(
    standin: SiliconFlowStandIn, http: httpx.Client
) -> None:
    standin.enqueue(Behaviour.rate_limited(retry_after=2), Behaviour.error(503, message="busy"))
    limited = _post(http, standin, _body())
    assert limited.status_code == 429 and limited.headers["retry-after"] == "2"
    busy = _post(http, standin, _body())
    assert busy.status_code == 503 and busy.json()["message"] == "busy"
    assert _post(http, standin, _body()).status_code == 200
    assert standin.pending_behaviours == 0


@pytest.mark.parametrize(
    ("behaviour", "status", "body"),
    [
        (Behaviour.rate_limited(limit="IPD"), 429,
         {"message": "Request was rejected due to rate limiting. Details: IPD limit reached.",
          "data": None}),
        (Behaviour.model_not_found(), 400,
         {"code": 20012, "message": "Model does not exist. Please check it carefully.",
          "data": None}),
        (Behaviour.overloaded(), 503,
         {"code": 50505, "message": "Model service overloaded. Please try again later.",
          "data": None}),
        (Behaviour.content_refused(), 400,
         {"code": 20015, "message": "The input image contains sensitive content.", "data": None}),
        (Behaviour.error(504), 504, "upstream request timeout"),
        (Behaviour.error(404), 404, "404 page not found"),
    ],
    ids=["429-daily", "400-20012", "503-50505", "400-content", "504-text", "404-text"],
)  # fmt: skip
def test_every_error_shape_of_the_service_can_be_scripted(
    standin: SiliconFlowStandIn, http: httpx.Client, behaviour: Behaviour, status: int, body: Any
) -> None:
    standin.enqueue(behaviour)
    response = _post(http, standin, _body())
    assert response.status_code == status
    assert (response.json() if isinstance(body, dict) else response.text) == body
    assert "retry-after" not in response.headers  # the service rarely sends one


def test_unauthenticated_request_does_not_consume_behaviour(
    standin: SiliconFlowStandIn, http: httpx.Client
) -> None:
    standin.enqueue(Behaviour.error(500))
    assert _post(http, standin, _body(), headers={}).status_code == 401
    assert _post(http, standin, _body()).status_code == 500


def test_result_shaping_behaviours(standin: SiliconFlowStandIn, http: httpx.Client) -> None:
    standin.enqueue(
        Behaviour.malformed_body(),
        Behaviour.empty_images(),
        Behaviour.result_url("http://10.0.0.1/x.png"),
        Behaviour.not_an_image_result(),
    )
    malformed = _post(http, standin, _body())
    assert malformed.status_code == 200 and malformed.text.startswith("<html>")
    assert _post(http, standin, _body()).json()["images"] == []
    assert _post(http, standin, _body()).json()["images"] == [{"url": "http://10.0.0.1/x.png"}]
    url = _post(http, standin, _body()).json()["images"][0]["url"]
    assert http.get(url).content == b"this is not an image"


def test_delay_and_latency(standin: SiliconFlowStandIn, http: httpx.Client) -> None:
    standin.enqueue(Behaviour.delay(0.2))
    assert _post(http, standin, _body()).json()["timings"]["inference"] >= 0.2
    standin.latency_seconds = 0.1
    try:
        assert _post(http, standin, _body()).json()["timings"]["inference"] >= 0.1
    finally:
        standin.latency_seconds = 0.0


def test_hang_drops_the_connection_after_silence(
    standin: SiliconFlowStandIn, http: httpx.Client
) -> None:
    standin.enqueue(Behaviour.hang(5))
    with pytest.raises(httpx.ReadTimeout):
        http.post(f"{standin.base_url}/images/generations", json=_body(), headers=AUTH, timeout=0.2)
    standin.reset()  # wakes the sleeping handler at once
    standin.enqueue(Behaviour.hang(0.1))
    with pytest.raises(httpx.RemoteProtocolError):
        _post(http, standin, _body())


def test_a_held_answer_waits_for_the_client_to_give_up_or_the_test_to_release_it(
    standin: SiliconFlowStandIn, http: httpx.Client
) -> None:
    standin.enqueue(Behaviour.held())
    with pytest.raises(httpx.TimeoutException):  # nothing comes, however long it waits
        http.post(f"{standin.base_url}/images/generations", json=_body(), headers=AUTH, timeout=0.2)
    assert standin.wait_for_abandoned(1)  # the stand-in saw the client leave

    standin.enqueue(Behaviour.held())
    with ThreadPoolExecutor(1) as pool:
        answer = pool.submit(_post, http, standin, _body())
        assert standin.wait_for_held(2)
        standin.release_held()
        assert answer.result(timeout=60).status_code == 200
    assert standin.wait_for_abandoned(1, timeout=0)


def test_reset_clears_everything(standin: SiliconFlowStandIn, http: httpx.Client) -> None:
    url = _post(http, standin, _body()).json()["images"][0]["url"]
    standin.enqueue(Behaviour.error(500))
    standin.reset()
    assert standin.requests == [] and standin.pending_behaviours == 0
    assert http.get(url).status_code == 404


def test_public_base_url_used_in_result_urls(http: httpx.Client) -> None:
    with SiliconFlowStandIn(public_base_url="http://host.docker.internal:9999/") as standin:
        response = http.post(
            f"http://127.0.0.1:{standin.port}/v1/images/generations", json=_body(), headers=AUTH
        )
        assert response.json()["images"][0]["url"].startswith(
            "http://host.docker.internal:9999/results/"
        )


def test_module_runs_alone_and_says_it_is_not_the_model() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "photo_restore_tools.local.siliconflow_standin", "--port", "0"],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stderr is not None
        line = process.stderr.readline()
    finally:
        process.terminate()
        process.wait(timeout=5)
    assert "NOT the Qwen-Image-Edit model" in line and "listening on http://127.0.0.1:" in line
