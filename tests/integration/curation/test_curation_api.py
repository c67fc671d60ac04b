"""`/v1/curation` over real HTTP: roles, the mismatch list, reject with a reason, restore."""

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn

from asifdb.api.main import create_app
from asifdb.services.model import Encoders
from asifdb.settings import Settings
from tests.integration.curation.conftest import NOISY, K, Seeded


@pytest.fixture
def api(seeded: Seeded, tmp_path: Path, encoders: Encoders) -> Iterator[str]:
    data_dir = tmp_path / "data"
    roots = [tmp_path / "allowed"]
    roots[0].mkdir()
    app = create_app(
        Settings(database_url=seeded.clone(data_dir), data_dir=data_dir, k=K, source_roots=roots)
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
    noisy = [r["pair_id"] for r in page["items"] if r["licence"] == NOISY]
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


def test_pair_value_refuses_bad_folders_fast_and_records_nothing(
    api: str, seeded: Seeded, tmp_path: Path
) -> None:
    allowed = tmp_path / "allowed"  # the server's SOURCE_ROOTS (the api fixture)
    not_images = allowed / "not-images" / "cat"
    not_images.mkdir(parents=True)
    (not_images / "a.jpg").write_text("this is not a JPEG")
    secret = tmp_path / "secret" / "cat"
    secret.mkdir(parents=True)
    (secret / "a.png").write_bytes(b"not yours")
    (allowed / "escape").symlink_to(tmp_path / "secret")
    bad = {
        "": (422, "at least"),
        "relative/folder": (422, "pattern"),
        str(allowed / "not-images"): (422, None),
        "/": (422, "at least"),
        "/proc": (403, "SOURCE_ROOTS"),
        "/etc/shadow": (403, "SOURCE_ROOTS"),
        str(tmp_path / "secret"): (403, "SOURCE_ROOTS"),
        str(allowed / "escape"): (403, "SOURCE_ROOTS"),  # a symlink out of the root
        str(allowed / ".." / "secret"): (403, "SOURCE_ROOTS"),
        str(allowed / "missing"): (403, "SOURCE_ROOTS"),
    }
    with _client(api, seeded, "auditor") as client:
        before = client.get("/v1/curation/reviews").json()
        for folder, (status, words) in bad.items():
            started = time.monotonic()
            response = client.post("/v1/curation/value", json={"folder": folder})
            assert response.status_code == status, (folder, response.text)
            assert time.monotonic() - started < 10, folder
            if words:
                assert words in response.text
            if status == 403:  # never the refused path, nor what lies outside the roots
                assert "secret" not in response.text and "shadow" not in response.text
        classnames = {"folder": str(allowed / "not-images"), "classnames": "/etc/passwd"}
        refused = client.post("/v1/curation/value", json=classnames)
        assert refused.status_code == 403 and "root:" not in refused.text
        assert client.get("/v1/curation/reviews").json() == before
