"""The OpenAPI contract, fuzzed: schemathesis sends schema-generated requests (valid and invalid)
to every operation of the real HTTP server; no request may crash the server (5xx), and every
response must match what /openapi.json documents (status codes, content types, bodies).

All operations run with an admin key (every route reachable) on one fresh database; examples
are derandomised so CI sends the same requests every run. Not checked: that every schema-valid
request is accepted. Some rules span fields and are enforced with a 422 and a reason (labels or
a label set, one caption per image, templates holding "{}"), which a form schema cannot say.
Every failing operation is reported, not only the first.
"""

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from tests.integration.api.conftest import Api

EXAMPLES = 12


@pytest.fixture
def api_settings() -> dict[str, object]:
    """No 429 midway: every operation is fuzzed, not answered by the admin key's rate limit."""
    return {"api_rate_limit": "1000000/minute"}


def _check(operation: schemathesis.APIOperation, base_url: str, headers: dict[str, str]) -> None:
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy())
    def run(case: schemathesis.Case) -> None:
        case.call_and_validate(
            base_url=base_url,
            headers=headers,
            excluded_checks=[schemathesis.checks.positive_data_acceptance],
        )

    run()


def _describe(error: BaseException) -> str:
    """The failure with its sub-exceptions (schemathesis groups what one operation broke)."""
    parts = [f"{type(error).__name__}: {error}"]
    for sub in getattr(error, "exceptions", ()):
        parts.append(f"  {type(sub).__name__}: {sub}")
    return "\n".join(parts)


def test_every_operation_honours_its_documented_contract(api: Api) -> None:
    schema = schemathesis.openapi.from_url(f"{api.url}/openapi.json")
    headers = {"X-API-Key": api.keys["admin"]}
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 15, [op.label for op in operations]
    failures: dict[str, str] = {}
    for operation in operations:
        try:
            _check(operation, api.url, headers)
        except (Exception, BaseExceptionGroup) as error:  # collected, reported together below
            failures[operation.label] = f"{type(error).__name__}: {error}"
    if failures:
        pytest.fail("\n\n".join(f"== {label}\n{why}" for label, why in failures.items()))
