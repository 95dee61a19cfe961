"""API fuzzing: schemathesis generates requests from the server's own OpenAPI document
(GET /api/v1/openapi.json) and sends them to the Flask app (WSGI) with a valid token
of each role. Valid and invalid inputs alike must never get a 5xx, and every reply
must match what the document declares (status code, content type, JSON schema).

Each operation gets a handful of examples, half of them aimed at real objects of the
caller's firm (so requests get past the 404 and reach the code behind it), the rest
random. Set GED_FUZZ_EXAMPLES to try more; GED_FUZZ_RANDOM=1 draws new examples on
every run instead of the same reproducible ones.
"""

from __future__ import annotations

import os

import pytest

from fixtures.estates import estate

EXAMPLES = int(os.environ.get("GED_FUZZ_EXAMPLES", "4"))
ROLES = ("admin", "staff", "client")
# Path parameter -> the kind of object it names (the first segment decides for {id}).
KIND_BY_SEGMENT = {"companies": "company", "folders": "folder", "documents": "document",
                   "connections": "connection", "deliveries": "delivery", "tokens": "token",
                   "users": "user", "integrations": "integration", "requests": "request"}


@pytest.fixture
def real_ids(app, world, webhook_receiver, run_jobs):
    """Objects of company A (staff and client_a may see it): real ids to aim at; their
    text extracted and indexed, so search answers from a real index."""
    ids = estate(world, world.company_a, world.client_a, "fuzz", url=webhook_receiver.hook())
    run_jobs()
    return ids


def _real_path_parameters(path: str, ids: dict) -> dict:
    import re

    first = path.removeprefix("/api/v1/").split("/")[0]
    params = {}
    for name in re.findall(r"\{(\w+)\}", path):
        kind = KIND_BY_SEGMENT.get(first) if name == "id" else name.removesuffix("_id")
        if kind in ids:
            params[name] = ids[kind]
    return params


def _checks():
    from schemathesis.checks import not_a_server_error
    from schemathesis.specs.openapi.checks import (content_type_conformance,
                                                   response_schema_conformance,
                                                   status_code_conformance)

    return [not_a_server_error, status_code_conformance, content_type_conformance,
            response_schema_conformance]


@pytest.mark.parametrize("role", ROLES)
def test_the_api_survives_fuzzing_by_each_role(app, world, real_ids, role, tally):
    import schemathesis
    from hypothesis import HealthCheck, Phase, given, settings, strategies as st
    from schemathesis import GenerationMode

    from ged.api import ROUTES

    roles_of = {(r.method, "/api/v1" + r.path): r.roles for r in ROUTES}

    actor = {"admin": world.admin, "staff": world.staff, "client": world.client_a}[role]
    headers = dict(actor.headers)
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)
    checks = _checks()
    failures: list[str] = []
    sent = 0
    # Reads first and deletions last, so the real objects live through most examples.
    order = {"GET": 0, "DELETE": 2}
    operations = sorted((r.ok() for r in schema.get_all_operations()),
                        key=lambda op: (order.get(op.method.upper(), 1), op.path))
    for operation in operations:
        real = _real_path_parameters(operation.path, real_ids)
        strategies = [operation.as_strategy(mode) for mode in
                      (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)]
        if real:
            strategies += [operation.as_strategy(mode, path_parameters=real) for mode in
                           (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)]
        problems: list[str] = []
        # A route the role may not use answers 403/404 at once: fewer examples there.
        allowed = role in roles_of.get((operation.method.upper(), operation.path), ROLES)
        examples = (EXAMPLES * (2 if real else 1)) if allowed else max(2, EXAMPLES // 2)

        @settings(max_examples=examples, deadline=None, database=None,
                  derandomize=os.environ.get("GED_FUZZ_RANDOM") != "1",
                  suppress_health_check=list(HealthCheck), phases=[Phase.explicit, Phase.generate],
                  report_multiple_bugs=False)
        # Requests without a token are refused before anything runs (tested elsewhere):
        # keep the examples for requests that reach the code.
        @given(case=st.one_of(strategies).filter(
            lambda c: not schema.is_security_param_negated(c)))
        def fuzz(case):
            nonlocal sent
            response = case.call(headers=headers)
            sent += 1
            try:
                case.validate_response(response, checks=checks, headers=headers)
            except (Exception, BaseExceptionGroup) as exc:  # noqa: BLE001 - reported below
                if len(problems) < 2:
                    problems.append(f"{operation.label}: {str(exc)[:1500]}")

        fuzz()
        failures += problems
    tally.add("fuzz", sent)
    assert sent >= 30 * EXAMPLES
    assert not failures, "\n\n".join(failures)
