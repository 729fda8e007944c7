"""`photo-restore serve` as a user runs it: a fresh process on embedded defaults, a quiet start,
a restore from upload to the restored image over HTTP, and a clean stop on SIGTERM."""

from __future__ import annotations

import hashlib
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.helpers.images import old_photo

BANNER_END = "Ctrl-C stops everything."


@dataclass
class Served:
    url: str
    token: str
    output: list[str]
    errors: list[str]
    process: subprocess.Popen[str]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _collect(stream: object, into: list[str]) -> None:
    for line in stream:  # type: ignore[attr-defined]
        into.append(line.rstrip("\n"))


@pytest.fixture(scope="module")
def served() -> Iterator[Served]:
    port = _free_port()
    environment = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("AWS_", "DATABASE_", "SILICONFLOW_"))
    }
    process = subprocess.Popen(
        [str(Path(sys.executable).parent / "photo-restore"), "serve", "--port", str(port)],
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    output: list[str] = []
    errors: list[str] = []
    for stream, lines in ((process.stdout, output), (process.stderr, errors)):
        threading.Thread(target=_collect, args=(stream, lines), daemon=True).start()
    deadline = time.monotonic() + 90
    while BANNER_END not in output:
        assert process.poll() is None, "\n".join(output + errors)
        assert time.monotonic() < deadline, "\n".join(output + errors)
        time.sleep(0.2)
    [token] = [m.group(1) for line in output if (m := re.search(r"export TOKEN=(\S+)", line))]
    yield Served(f"http://127.0.0.1:{port}", token, output, errors, process)
    if process.poll() is None:
        process.terminate()
        process.wait(timeout=30)


def test_serve_starts_quietly_on_embedded_defaults(served: Served) -> None:
    # Only the local stack's own lines come before the banner: no initdb output.
    assert not any("initdb" in line or "Success. You can now" in line for line in served.errors)
    assert len(served.errors) < 10, "\n".join(served.errors)
    assert any("not the Qwen-Image-Edit model" in line for line in served.output)


def test_a_restore_through_serve_from_upload_to_the_restored_image(served: Served) -> None:
    auth = {"Authorization": f"Bearer {served.token}"}
    with httpx.Client(base_url=served.url, timeout=10) as client:
        uploaded = client.post("/local/photos", content=old_photo(), headers=auth)
        assert uploaded.status_code == 201, uploaded.text
        photo_id = uploaded.json()["photo_id"]
        assert client.post(f"/photos/{photo_id}/restore", headers=auth).status_code == 202
        deadline = time.monotonic() + 60
        while (view := client.get(f"/photos/{photo_id}", headers=auth).json())["status"] != "ready":
            assert time.monotonic() < deadline, view
            time.sleep(0.2)
        restored = httpx.get(view["restored_image_url"], timeout=10)
        assert restored.status_code == 200 and restored.content[:3] == b"\xff\xd8\xff"
        assert client.get(f"/photos/{photo_id}").status_code == 401


def wait_for_line(served: Served, text: str, timeout: float = 20) -> str:
    deadline = time.monotonic() + timeout
    while not (found := [line for line in served.output if text in line]):
        assert time.monotonic() < deadline, "\n".join(served.output[-20:])
        time.sleep(0.1)
    return found[0]


def test_the_frontend_walkthrough_through_serve(served: Served) -> None:
    """The README's curl walkthrough: a keyed request, its replay, before/after, the event."""
    auth = {"Authorization": f"Bearer {served.token}"}
    original = old_photo(seed=19)
    with httpx.Client(base_url=served.url, timeout=10) as client:
        # A real upload: declared, PUT to (moto's) S3 with the headers given, then ingested.
        declared = {
            "content_type": "image/jpeg",
            "size_bytes": len(original),
            "sha256": hashlib.sha256(original).hexdigest(),
        }
        upload = client.post("/uploads", json=declared, headers=auth).json()
        put = upload["upload"]
        headers = {k: v for k, v in put["headers"].items() if k != "Content-Length"}
        assert httpx.put(put["url"], content=original, headers=headers).status_code == 200
        photo_id = upload["photo_id"]
        deadline = time.monotonic() + 20
        while client.get(f"/uploads/{upload['upload_id']}", headers=auth).json()["status"] != (
            "accepted"
        ):
            assert time.monotonic() < deadline, "the ingest did not accept the upload"
            time.sleep(0.1)
        keyed = auth | {"Idempotency-Key": f"walkthrough-{photo_id}"}
        first = client.post(f"/photos/{photo_id}/restore", headers=keyed)
        again = client.post(f"/photos/{photo_id}/restore", headers=keyed)
        assert (first.status_code, again.status_code) == (202, 202)
        assert again.json() == first.json() and again.headers["idempotent-replayed"] == "true"
        attempt_id = first.json()["restore_attempt_id"]

        # Printed as published, from the bus's rule (an upload of the same bytes by the same
        # user is the same photo, so another test's restoration of it may be printed too).
        wait_for_line(served, f"event RestoreSucceeded: photo {photo_id} attempt {attempt_id}")
        view = client.get(f"/photos/{photo_id}", headers=auth).json()
        assert view["status"] == "ready" and view["selected_restore_id"] == attempt_id
        for image in (view["before"], view["after"]):
            fetched = httpx.get(image["url"], timeout=10)
            assert fetched.status_code == 200 and fetched.content[:3] == b"\xff\xd8\xff"

        # Cancel: a second restore, canceled at once, puts the photo back to ready.
        second = client.post(f"/photos/{photo_id}/restore", headers=auth)
        canceled = client.delete(f"/photos/{photo_id}/restore", headers=auth)
        assert canceled.status_code == 200, canceled.text
        assert canceled.json()["status"] == "ready"
        wait_for_line(served, f"event RestoreCanceled: photo {photo_id}")
        again_canceled = client.delete(f"/photos/{photo_id}/restore", headers=auth)
        assert (again_canceled.status_code, again_canceled.json()["error"]) == (
            409,
            "not_processing",
        )
        page = client.get(f"/photos/{photo_id}/restores?limit=1", headers=auth).json()
        assert [r["restore_attempt_id"] for r in page["restores"]] == [
            second.json()["restore_attempt_id"]
        ]
        assert page["next_cursor"]

        # The gallery, then the photo's end: archived, deleted, never served again.
        gallery = client.get("/photos", headers=auth).json()
        assert photo_id in [p["photo_id"] for p in gallery["photos"]]
        assert client.post(f"/photos/{photo_id}/archive", headers=auth).status_code == 200
        assert client.delete(f"/photos/{photo_id}", headers=auth).status_code == 200
        assert client.get(f"/photos/{photo_id}", headers=auth).status_code == 410
        wait_for_line(served, f"event PhotoDeleted: photo {photo_id}")


def test_serve_stops_cleanly_on_sigterm(served: Served) -> None:
    served.process.send_signal(signal.SIGTERM)
    assert served.process.wait(timeout=30) == 0
    assert "stopped" in served.output[-1]
