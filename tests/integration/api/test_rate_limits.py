"""Rate limits answer 429 with Retry-After: per key, per address for wrong keys (guessing keys
gets nowhere fast), per address for keyless requests; /health tells a stranger only up or down."""

import pytest

from tests.integration.api.conftest import Api


@pytest.fixture
def api_settings() -> dict[str, object]:
    return {"api_rate_limit": "5/minute", "api_anonymous_rate_limit": "4/minute"}


def _retry_after(response) -> int:  # noqa: ANN001
    assert response.status_code == 429, response.text
    wait = int(response.headers["Retry-After"])
    assert 1 <= wait <= 60
    return wait


def test_each_key_has_its_own_limit(api: Api) -> None:
    with api.client("app") as app_client:
        answers = [app_client.get("/v1/licenses").status_code for _ in range(7)]
        assert answers[:5] == [200] * 5 and answers[5:] == [429, 429]
        refused = app_client.get("/v1/licenses")
        _retry_after(refused)
        assert "API_RATE_LIMIT" in refused.json()["detail"]
    with api.client("steward") as steward:  # another key, untouched by the first one's use
        assert steward.get("/v1/licenses").status_code == 200


def test_wrong_keys_from_one_address_get_429(api: Api) -> None:
    with api.client(None) as guesser:
        answers = [
            guesser.get("/v1/licenses", headers={"X-API-Key": f"asif_guess_{i}"}).status_code
            for i in range(300)
        ]
        assert answers[:30] == [401] * 30, "the first API_AUTH_FAILURE_LIMIT are plain 401s"
        assert set(answers[30:]) == {429}
        refused = guesser.get("/v1/licenses", headers={"X-API-Key": api.keys["admin"]})
        # Past the limit even a right key is refused from that address: a guess that lands
        # looks like every other guess.
        _retry_after(refused)
        assert "API_AUTH_FAILURE_LIMIT" in refused.json()["detail"]
        _retry_after(guesser.get("/v1/licenses"))


def test_health_without_a_key_says_only_up_and_is_rate_limited(api: Api) -> None:
    with api.client(None) as anonymous:
        answers = [anonymous.get("/health") for _ in range(4)]
        assert all(a.status_code == 200 and a.json() == {"ok": True} for a in answers)
        assert api.platform.settings.data_dir.name not in answers[0].text
        _retry_after(anonymous.get("/health"))
    with api.client("app") as app_client:  # a key, but not an operator's: still up or down
        assert app_client.get("/health").json() == {"ok": True}
    with api.client("admin") as admin:
        report = admin.get("/health").json()
        assert report["ok"] and report["database"]["server_version"]
        assert {"migrations", "broker", "model"} <= set(report)
    with api.client(None) as forged:
        forged.headers["X-API-Key"] = "asif_00000000_not-a-real-key"
        assert forged.get("/health").status_code == 401
