"""Erasure over HTTP: stewards and admins only, the licence's name typed again, a typed report
whose checks found the bytes before and not after (real server files), stored for auditors."""

import tarfile
from pathlib import Path

import pytest

from tests.conftest import server_folder
from tests.integration.api.conftest import Api
from tests.samples import copy_samples, ingest_now


@pytest.fixture
def api_settings(db_url: str) -> dict[str, object]:
    return {"server_data_dir": server_folder(db_url)}


def test_only_a_steward_erases_a_revoked_licence_confirmed_by_name(
    api: Api, tmp_path: Path, shared_data: Path
) -> None:
    folder = tmp_path / "wds"
    folder.mkdir()
    with tarfile.open(folder / "00000.tar", "w") as tar:
        copy_samples(shared_data, tar, 6)
    ingest_now(api.platform, folder, "stock-2024")
    lic = 1
    body = {"reason": "the holder withdrew consent", "confirm": "stock-2024"}
    with api.client("steward") as steward:
        early = steward.post(f"/v1/licenses/{lic}/erase", json=body)
        assert early.status_code == 409 and "revoke it first" in early.json()["detail"]
        assert steward.post(f"/v1/licenses/{lic}/revoke", json={"reason": "r"}).status_code == 200
        preview = steward.get(f"/v1/licenses/{lic}/erasure-preview").json()
        assert preview["pairs"] == 6 and preview["erasable"]
        for role in ("app", "annotator", "auditor"):
            with api.client(role) as other:
                assert other.post(f"/v1/licenses/{lic}/erase", json=body).status_code == 403
        with api.client(None) as anonymous:
            assert anonymous.post(f"/v1/licenses/{lic}/erase", json=body).status_code == 401
        wrong = steward.post(f"/v1/licenses/{lic}/erase", json={**body, "confirm": "stock"})
        assert wrong.status_code == 422 and "stock-2024" in wrong.json()["detail"]
        assert steward.post(f"/v1/licenses/{lic}/erase", json={"confirm": "x"}).status_code == 422
        assert steward.get(f"/v1/licenses/{lic}/erasure-report").status_code == 404

        done = steward.post(f"/v1/licenses/{lic}/erase", json=body)
        assert done.status_code == 200, done.text
        report = done.json()
        assert report["passed"] and report["status"] == "complete"
        assert report["removed"]["pairs"] == 6 and report["removed"]["blobs_removed"] == 6
        found = {c["name"]: c for c in report["checks"]}
        in_files = found["the erased bytes absent from the table files"]
        assert in_files["found_before"] > 0 and in_files["found_after"] == 0
        assert any("backups" in line for line in report["not_erased"])
        again = steward.post(f"/v1/licenses/{lic}/erase", json=body)
        assert again.status_code == 409
        restore = steward.post(f"/v1/licenses/{lic}/restore")
        assert restore.status_code == 409 and "irreversible" in restore.json()["detail"]
    with api.client("auditor") as auditor:
        stored = auditor.get(f"/v1/licenses/{lic}/erasure-report")
        assert stored.status_code == 200 and stored.json() == report
        listed = {r["name"]: r for r in auditor.get("/v1/licenses").json()}
        assert listed["stock-2024"]["status"] == "erased"
        assert listed["stock-2024"]["pairs"] == 0
