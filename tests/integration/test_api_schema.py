"""The OpenAPI document tells the truth (issue 12): Schemathesis generates requests from
`/openapi.json` and sends them to the live app (uvicorn, with the Dropbox sandbox and a
callback receiver), with a real credential, and in half the cases the ids of a real instance
with events, deliveries and a configuration key of the client's own.

Every answer must be documented (status code, content type, headers, body schema), none may
be a 5xx, and no request the schema allows may be refused as invalid: a 400 to a
schema-valid request passes only when the operation documents that refusal (a code Dropbox
refuses, a configuration that the stored one leaves incomplete, a page token this server did
not give) and the message is that refusal. Destructive calls (`DELETE /instances/{id}`) get
an instance of their own each time. Deterministic: Hypothesis derandomized, no database.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from relaybox.core.instance_config import config_id
from relaybox.gdrive_sandbox.app import create_app as create_gdrive
from tests.support.servers import serving
from tests.support.stack import APP_KEY, APP_SECRET, AUTH, OAUTH_CALLBACK, running_stack

GOOGLE_HOSTS = ("api", "oauth", "accounts")

EXAMPLES = 45
"""Generated schema-valid cases per operation; operations with few possible inputs get fewer."""
NEGATIVE_EXAMPLES = 15
"""Generated cases per operation that break the schema (a 4xx is expected, never a 5xx)."""
QUERY_TEXT = re.compile(r"query: violates `(additionalProperties|type)`|in query - violates `type`")
"""Query parameters the document does not name are ignored, as HTTP APIs do, not refused;
and a query string carries text, so `tags=6357` is the tag "6357" whatever type Schemathesis
meant (and `since` also takes Unix seconds, as pydantic reads times)."""


def only_query_text(failure: str) -> bool:
    """Whether every way a negative case broke the schema is one of `QUERY_TEXT`."""
    broken = [line for line in failure.splitlines() if "violates `" in line]
    return bool(broken) and all(QUERY_TEXT.search(line) for line in broken)


MINIMUM_REQUESTS = 1000
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
CLIENT_KEY = "filter.response.nulls"
"""A configuration key of the client's own, set on the real instance: any value is valid."""

SEMANTIC_REFUSALS = re.compile(
    "|".join(
        (
            r"(Dropbox|Google Drive) refused",
            r"the code belongs to another (Dropbox|Google Drive) account",
            r"has no longpoll; use webhooks or polling",
            r"element\.key must be '\w+' here",
            r"is required for (oauth2|apiKey) instances",
            r"oauth\.api\.secret is required to verify webhooks",
            r"event\.notification\.callback\.url is required when events are enabled",
            r"providerData\.code is required (to re-authenticate|for oauth2)",
            r"callback URL host .* (does not resolve|resolves to)",
            r"nextPage: not a page token from this server",
            r"^key: configuration \d+ is '.*', not ",
        )
    )
)
"""The 400s a schema cannot rule out, as their messages say them. An operation may answer
one to a schema-valid request only when its 400 documents such refusals ("Also when")."""


@dataclass
class Real:
    """What the generated requests address when they take a real id."""

    instance_id: int
    event_id: str
    delivery_id: str
    config_id: int
    new_instance: Callable[[], int]
    new_code: Callable[[], str]


@dataclass
class Report:
    requests: int = 0
    created: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)


def refused_valid_input(operation: Any, response: requests.Response) -> str | None:
    """Why a 400 to a schema-valid request is a fault, or None when it is a documented one."""
    if response.status_code not in (400, 422):
        return None
    documented = operation.definition.raw.get("responses", {}).get("400", {})
    message = response.json().get("message", "")
    if "Also when" in documented.get("description", "") and SEMANTIC_REFUSALS.search(message):
        return None
    return f"schema-valid request refused: {response.status_code} {message}"


def deleting(case: Any, real: Real) -> bool:
    """`DELETE /instances/{id}` with a valid id deletes a fresh instance (not the real one,
    which the other operations use); True when the case is one."""
    path = case.path_parameters or {}
    if case.method != "DELETE" or not case.operation.path.endswith("{instance_id}"):
        return False
    value = path.get("instance_id")
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 2**63 - 1:
        return False  # the part that breaks the schema: sent as generated
    path["instance_id"] = real.new_instance()
    return True


def substitute(case: Any, real: Real, use_real: bool) -> None:
    """Put real ids in the path (when `use_real`), and a fresh instance for a DELETE."""
    path = case.path_parameters or {}
    if "instance_id" in path and not deleting(case, real) and use_real:
        path["instance_id"] = real.instance_id
    if use_real:
        for name, value in (
            ("event_id", real.event_id),
            ("delivery_id", real.delivery_id),
            ("config_id", real.config_id),
        ):
            if name in path:
                path[name] = value
        creating = case.method == "POST" and case.operation.path.endswith("/instances")
        configuration = case.body.get("configuration", {}) if creating else {}
        if creating and str(configuration.get("authentication.type", "oauth2")).strip() == "oauth2":
            # An oauth2 create with a code the sandbox really issued, for the app it was
            # issued to: the rest of the body stays as generated.
            case.body["providerData"]["code"] = real.new_code()
            case.body["configuration"].update(
                {
                    "oauth.api.key": APP_KEY,
                    "oauth.api.secret": APP_SECRET,
                    "oauth.callback.url": OAUTH_CALLBACK,
                }
            )


def run_operation(
    operation: Any,
    mode: GenerationMode,
    base_url: str,
    real: Real,
    session: requests.Session,
    report: Report,
) -> None:
    """Generated cases of one operation, each sent and checked: schema-valid ones
    (`EXAMPLES`), or ones that break the schema somewhere (`NEGATIVE_EXAMPLES`)."""
    positive = mode == GenerationMode.POSITIVE

    @settings(
        max_examples=EXAMPLES if positive else NEGATIVE_EXAMPLES,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode), use_real=st.booleans())
    def run(case: Any, use_real: bool) -> None:
        if positive:
            substitute(case, real, use_real)
        else:
            deleting(case, real)
        # The credential where the case has the header (a negative case may leave it out).
        credential = AUTH if positive or "Authorization" in (case.headers or {}) else None
        response = case.call(base_url=base_url, session=session, headers=credential)
        report.requests += 1
        if positive and case.method == "POST" and case.operation.path.endswith("/instances"):
            report.created += response.status_code == 200
        report.statuses[response.status_code] = report.statuses.get(response.status_code, 0) + 1
        problems = []
        try:
            checks = CHECKS if positive else [*CHECKS, negative_data_rejection]
            case.validate_response(response, checks=checks, headers=credential)
        except (AssertionError, BaseExceptionGroup) as exc:  # FailureGroup: the checks' findings
            if positive or not only_query_text(str(exc)):
                problems.append(str(exc))
        refused = refused_valid_input(operation, response) if positive else None
        if refused:
            problems.append(refused)
        for problem in problems:
            report.failures.append(
                f"{mode} {case.method} {case.formatted_path} {case.query or ''} "
                f"{str(case.body)[:300]}\n  -> {response.status_code} "
                f"{response.text[:300]}\n  {problem[:1500]}"
            )

    try:
        run()
    except Unsatisfiable:
        # Nothing to break in an operation without parameters or body.
        assert not positive and not operation.definition.raw.get("parameters"), operation.label


def fuzz(base_url: str, real: Real) -> Report:
    """Every operation of the document, `EXAMPLES` cases each, checked; runs in a thread
    (the servers run in the test's event loop)."""
    schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json")
    report = Report()
    session = requests.Session()

    operations = [result.ok() for result in schema.get_all_operations()]
    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):  # DELETEs last of all
        for operation in operations:
            run_operation(operation, mode, base_url, real, session, report)
    return report


async def test_generated_requests_get_documented_answers(tmp_path: Path) -> None:
    database_url = f"sqlite+aiosqlite:///{tmp_path / 'relaybox.db'}"
    # Google Drive instances are created against the Drive sandbox: Google answers at once.
    async with (
        serving(create_gdrive()) as google,
        running_stack(
            tmp_path, database_url, **{f"googledrive_{h}_url": google for h in GOOGLE_HOSTS}
        ) as stack,
    ):
        account = await stack.new_account("fuzz@example.com")
        instance = await stack.connect(account, **{CLIENT_KEY: "true"})
        await stack.upload(account, "/a.txt", b"a")
        await stack.upload(account, "/b.txt", b"b")
        await stack.receiver.wait_for(lambda receiver: len(receiver.events()) >= 2)
        deliveries = await stack.deliveries(instance["id"])
        loop = asyncio.get_running_loop()
        spare = await stack.new_account("spare@example.com")

        def new_instance() -> int:
            created = asyncio.run_coroutine_threadsafe(stack.connect(spare, "spare"), loop)
            return int(created.result(timeout=30)["id"])

        def new_code() -> str:
            code = asyncio.run_coroutine_threadsafe(stack.authorize_in_browser(spare), loop)
            return code.result(timeout=30)

        real = Real(
            instance_id=instance["id"],
            event_id=deliveries[0]["id"],
            delivery_id=deliveries[0]["id"],
            config_id=config_id(CLIENT_KEY),
            new_instance=new_instance,
            new_code=new_code,
        )
        report = await asyncio.to_thread(fuzz, stack.relaybox, real)
        # Generated instances may use longpoll: answer those the sandbox holds, so that it
        # stops at once.
        stack.sandbox_app.state.sandbox.stop_waiting()
    assert not report.failures, "\n\n".join(report.failures[:30])
    assert report.requests >= MINIMUM_REQUESTS, report
    assert report.created > 0, report  # schema-valid creates with a real code succeed
    assert 200 in report.statuses and 404 in report.statuses, report.statuses


pytestmark = pytest.mark.timeout(300)
