"""The OpenAPI document is the contract: generated requests find no 5xx and no response outside the schema.

Every operation gets a few Hypothesis-generated requests with a valid token
(bounded: 6 examples each, no deadline), checked by schemathesis.
"""

from __future__ import annotations

from typing import Any

import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


def test_no_server_error_and_no_response_outside_the_schema(app: FastAPI, tokens: dict[str, str]) -> None:
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    headers = {"Authorization": f"Bearer {tokens['alice']}"}
    operations = [result.ok() for result in schema.get_all_operations()]  # type: ignore[union-attr]
    seen: list[int] = []
    assert len(operations) >= 25
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=6,
            deadline=None,
            derandomize=True,
            database=None,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        def check(case: Any) -> None:
            response = case.call_and_validate(headers=headers, checks=CHECKS)
            seen.append(response.status_code)

        check()
    assert len(seen) >= 2 * len(operations)
    assert 201 in seen or 200 in seen
