"""A property-based fuzz of the API from its own OpenAPI schema (schemathesis): no input,
valid or not, with or without the API key, makes the service answer 5xx.

(schemathesis's pytest integration does not work with pytest 9, so its strategies are drawn
by Hypothesis directly.)
"""

from __future__ import annotations

from pathlib import Path

import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.api import create_app
from tests.service.conftest import AUTH, build_runtime


def test_no_request_makes_the_service_fail(tmp_path: Path) -> None:
    runtime = build_runtime(tmp_path)
    schema = schemathesis.openapi.from_asgi("/openapi.json", create_app(runtime))
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 10
    seen: set[str] = set()

    @given(case=st.one_of([operation.as_strategy() for operation in operations]))
    @settings(max_examples=400, deadline=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
    def fuzz(case: schemathesis.Case) -> None:
        seen.add(f"{case.method} {case.operation.path}")
        for headers in (AUTH, {}):
            response = case.call(headers={**(case.headers or {}), **headers})
            assert response.status_code < 500, (case.method, case.path, case.body,
                                                response.text[:300])

    try:
        fuzz()
    finally:
        runtime.database.dispose()
    assert len(seen) == len(operations)  # every operation was exercised
