"""`/v1/curation` over real HTTP: roles, the mismatch list, reject with a reason, restore."""

import io
import socket
import threading
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn
from fastapi.testclient import TestClient

from asifdb.api.main import create_app
from asifdb.services.model import Encoders
from asifdb.settings import Settings
from tests.integration.curation.conftest import NOISY, K, Seeded


@pytest.fixture
def api(seeded: Seeded, tmp_path: Path, encoders: Encoders) -> Iterator[str]:
    data_dir = tmp_path / "data"
    (tmp_path / "allowed").mkdir()
    app = create_app(
        Settings(
            database_url=seeded.clone(data_dir),
            data_dir=data_dir,
            k=K,
            source_roots=[tmp_path / "allowed"],
        )
    )
    app.state.platform.__dict__["encoders"] = encoders
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline, "the API did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=30)


def _client(url: str, seeded: Seeded, role: str) -> httpx.Client:
    return httpx.Client(base_url=url, headers={"X-API-Key": seeded.keys[role]}, timeout=120)


def test_roles_lists_and_acts(api: str, seeded: Seeded) -> None:
    steward, auditor = _client(api, seeded, "steward"), _client(api, seeded, "auditor")
    annotator = _client(api, seeded, "annotator")
    assert annotator.get("/v1/curation/mismatches").status_code == 403
    assert auditor.post("/v1/curation/fit", json={}).status_code == 403

    assert steward.post("/v1/curation/fit", json={}).json()["scored"] == 65
    page = auditor.get("/v1/curation/mismatches", params={"limit": 5}).json()
    assert len(page["items"]) == 5 and page["scored"] == 65
    noisy = [r["pair_id"] for r in page["items"] if r["license"] == NOISY]
    assert len(noisy) == 3
    assert auditor.get("/v1/curation/mismatches", params={"limit": 501}).status_code == 422

    assert auditor.post("/v1/curation/reject", json={"pair_ids": noisy}).status_code == 403
    no_reason = steward.post("/v1/curation/reject", json={"pair_ids": noisy})
    assert no_reason.status_code == 422 and "reason" in no_reason.json()["detail"]
    done = steward.post(
        "/v1/curation/reject", json={"pair_ids": noisy, "reason": "wrong class"}
    ).json()
    assert done["pairs_removed"] == 3
    listed = auditor.get("/v1/curation/mismatches", params={"limit": 500}).json()["items"]
    assert not {r["pair_id"] for r in listed} & set(noisy)

    back = steward.post("/v1/curation/restore", json={"pair_ids": noisy}).json()
    assert back["pairs_returned"] == 3

    assert steward.post("/v1/curation/mark", json={"pair_ids": noisy[:1]}).json()["marked"] == 1
    assert auditor.get("/v1/curation/reviews").json()["total"] == 1

    assert steward.post("/v1/curation/duplicates", json={}).json()["groups"] == 2
    groups = auditor.get("/v1/curation/duplicates").json()
    assert groups["total_groups"] == 2
    assert all(sum(m["keeper"] for m in g["pairs"]) == 1 for g in groups["groups"])

    revoked = steward.post(
        "/v1/curation/revoke", json={"pair_ids": noisy[:1], "reason": "source unreliable"}
    ).json()
    assert [r["license"] for r in revoked["revoked"]] == [NOISY]


def _labelled(shared_data: Path, per_class: int = 4) -> list[tuple[str, tuple[str, bytes]]]:
    """Real CIFAR-10 test images of four classes: (class, (file name, bytes))."""
    return [
        (name, (image.name, image.read_bytes()))
        for name in ("cat", "truck", "airplane", "frog")
        for image in sorted((shared_data / "cifar10" / "test" / name).iterdir())[:per_class]
    ]


def test_pair_value_takes_uploads_and_refuses_server_paths(
    api: str, seeded: Seeded, tmp_path: Path, shared_data: Path
) -> None:
    labelled = _labelled(shared_data)
    with _client(api, seeded, "auditor") as client:
        before = client.get("/v1/curation/reviews").json()
        # The old request, a server folder by path: no field takes one any more.
        for folder in ("/etc", "/etc/shadow", str(tmp_path / "allowed"), "../../etc"):
            refused = client.post("/v1/curation/value", json={"folder": folder})
            assert refused.status_code == 422, refused.text
            assert "root:" not in refused.text and "shadow:" not in refused.text
        named = client.post(
            "/v1/curation/value", data={"classes": ["cat", "dog"], "folder": "/etc"}
        )
        assert named.status_code == 422 and "either images" in named.text

        files = [("images", file) for _, file in labelled]
        report = client.post(
            "/v1/curation/value",
            files=files,
            data={"classes": [name for name, _ in labelled], "counts": [0, 3], "top": 5},
        )
        assert report.status_code == 200, report.text
        body = report.json()
        assert sorted(body["classes"]) == ["airplane", "cat", "frog", "truck"]
        assert body["images_found_on"] == body["images_held_out"] == 8

        archive = io.BytesIO()
        with zipfile.ZipFile(archive, "w") as zipped:
            for name, (file, data) in labelled:
                zipped.writestr(f"set/{name}/{file}", data)
        zipped_report = client.post(
            "/v1/curation/value", files={"archive": ("set.zip", archive.getvalue())}
        )
        assert zipped_report.status_code == 200, zipped_report.text
        assert zipped_report.json()["images_found_on"] == 8

        not_image = client.post(
            "/v1/curation/value",
            files=[("images", ("a.png", b"root:x:0:0")), ("images", ("b.png", b"x"))],
            data={"classes": ["cat", "cat"]},
        )
        assert not_image.status_code == 422 and "root:" not in not_image.text
        assert client.get("/v1/curation/reviews").json() == before
    assert not list((tmp_path / "data" / "uploads").glob("*/*"))  # the zip left nothing behind


def test_pair_value_uploads_are_bounded(
    seeded: Seeded, tmp_path: Path, encoders: Encoders, shared_data: Path
) -> None:
    data_dir = tmp_path / "data"
    settings = Settings(
        database_url=seeded.clone(data_dir), data_dir=data_dir, k=K, max_value_images=3
    )
    app = create_app(settings)
    app.state.platform.__dict__["encoders"] = encoders
    labelled = _labelled(shared_data, per_class=1)
    with TestClient(app) as client:
        response = client.post(
            "/v1/curation/value",
            headers={"X-API-Key": seeded.keys["auditor"]},
            files=[("images", file) for _, file in labelled],
            data={"classes": [name for name, _ in labelled]},
        )
    assert response.status_code == 413 and "MAX_VALUE_IMAGES" in response.text
