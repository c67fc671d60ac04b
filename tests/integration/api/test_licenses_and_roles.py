"""Keys and roles guard every route; licences are created, revoked with a reason, restored."""

from sqlalchemy import text

from tests.integration.api.conftest import Api


def test_no_key_is_401_and_a_wrong_role_is_403(api: Api) -> None:
    with api.client(None) as anonymous:
        response = anonymous.get("/v1/licenses")
        assert response.status_code == 401
        assert "X-API-Key" in response.json()["detail"]
    with api.client(None) as forged:
        forged.headers["X-API-Key"] = "asif_00000000_not-a-real-key"
        assert forged.get("/v1/licenses").status_code == 401
    with api.client("app") as app_client:
        assert app_client.get("/v1/licenses").status_code == 200
        denied = app_client.post("/v1/licenses", json={"name": "x"})
        assert denied.status_code == 403
        assert "steward" in denied.json()["detail"]
    with api.client("auditor") as auditor:
        assert auditor.post("/v1/licenses/1/revoke", json={"reason": "r"}).status_code == 403


def test_revoke_needs_a_reason_and_is_audited(api: Api) -> None:
    with api.client("steward") as steward:
        created = steward.post("/v1/licenses", json={"name": "stock-2024", "holder": "Stock Co"})
        assert created.status_code == 201
        lic = created.json()["id"]
        assert steward.post("/v1/licenses", json={"name": "stock-2024"}).status_code == 409

        no_reason = steward.post(f"/v1/licenses/{lic}/revoke", json={})
        assert no_reason.status_code == 422
        blank = steward.post(f"/v1/licenses/{lic}/revoke", json={"reason": "  "})
        assert blank.status_code == 422

        revoked = steward.post(f"/v1/licenses/{lic}/revoke", json={"reason": "contract ended"})
        assert revoked.status_code == 200 and revoked.json()["status"] == "revoked"
        assert (
            steward.post(f"/v1/licenses/{lic}/revoke", json={"reason": "again"}).status_code == 409
        )
        listed = {row["name"]: row for row in steward.get("/v1/licenses").json()}
        assert listed["stock-2024"]["status"] == "revoked"
        assert listed["stock-2024"]["reason"] == "contract ended"

        restored = steward.post(f"/v1/licenses/{lic}/restore")
        assert restored.status_code == 200 and restored.json()["status"] == "active"
        assert steward.post("/v1/licenses/999/restore").status_code == 404

    with api.platform.sessions() as session:
        events = session.execute(
            text(
                "SELECT actor, action, reason FROM audit_events WHERE target_type = 'license' "
                "ORDER BY id"
            )
        ).all()
    assert [tuple(e) for e in events] == [
        ("steward-key", "license.create", None),
        ("steward-key", "license.revoke", "contract ended"),
        ("steward-key", "license.restore", None),
    ]


def test_unknown_ids_are_404_with_a_message(api: Api) -> None:
    with api.client("admin") as admin:
        for path in ("/v1/pairs/12345", "/v1/jobs/12345"):
            response = admin.get(path)
            assert response.status_code == 404 and "12345" in response.json()["detail"]
        assert admin.get("/v1/pairs/not-a-number").status_code == 422
