"""The OpenAPI document (streaming/gateway/openapi.py) is valid, and the live service keeps to it under Schemathesis.

The document comes from the running service's GET /openapi.json (which Schemathesis also loads and validates).
The live service must serve it: anything but a 200 with the in-process document fails the test.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import unquote

import pytest
import requests
import schemathesis
from flask import Flask
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from app import create_app
from config import Settings
from streaming.gateway import openapi
from streaming.gateway.openapi import openapi_document
from tests.e2e.process import ServiceProcess
from tests.fakes.binance import FakeBinance
from tests.helpers import scaled, wait_for

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]
# Status endpoints answer 503 with their own body (what is wrong), not the error body.
STATUS_PATHS = {"/health": "#/components/schemas/Health", "/ready": "#/components/schemas/Ready"}
DOCUMENTED = {"/", "/health", "/ready", "/stats", "/symbols", "/price/{symbol}", "/book/{symbol}", "/trades/{symbol}",
              "/history/{symbol}",
              "/metrics", "/openapi.json"}
REQUEST_TIMEOUT = 10.0
MAX_EXAMPLES = 50  # per operation and strategy
DEADLINE_MS = 3000  # per example
PRICE = "/price/{symbol}"
# The look-up routes: the same symbol validation, limits and errors
LOOKUPS = (PRICE, "/book/{symbol}", "/trades/{symbol}", "/history/{symbol}")
OPENAPI_JSON = "/openapi.json"
# Values a person would try first; Hypothesis adds its own. Cache hit, REST fallback, case, blanks, 400s, 404s.
PRICE_EXAMPLES = ("BTCUSDT", "LINKUSDT", "ethusdt", " SOLUSDT ", "NOTACOINUSDT", "BTCUSDT_260327", "BTC-USDT",
                  "A" * 300, "\x00", "%", "?x=1", "#", "é", "a/b", "btcusdt\n")
# Percent-encoded symbols sent as they are (Schemathesis does not encode '/', '?' or '#' in path parameters):
# a malformed symbol is a JSON 400 whatever it contains.
# ("..": HTTP clients resolve /price/.. to /, the dashboard; sent encoded, it reaches /price.)
RAW_PRICE_SYMBOLS = ("%2E%2E", "%2FBTCUSDT", "%2F%2FBTCUSDT", "BTC%2F%2FUSDT", "%3Fx%3D1", "%23", "%25", "%ff",
                     "%C0%AF", "%E2%80%AE", "%20")
HYPOTHESIS = settings(
    max_examples=MAX_EXAMPLES,
    deadline=scaled(DEADLINE_MS),
    database=None,  # no example database: a failure prints its example (.hypothesis/ keeps only caches)
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _refs(item)


def _resolve(document: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), f"only local references are used: {ref}"
    node: Any = document
    for part in ref[2:].split("/"):
        assert isinstance(node, dict) and part in node, f"unresolvable reference {ref}"
        node = node[part]
    return node


# -- the document ---------------------------------------------------------------------------------------------


def test_document_is_valid_openapi_3_0() -> None:
    document = openapi_document()
    assert document["openapi"] == "3.0.3"
    schema = schemathesis.openapi.from_dict(document)
    schema.validate()  # against the OpenAPI 3.0 meta-schema; raises on the first violation
    assert {result.ok().path for result in schema.get_all_operations()} == DOCUMENTED


def test_document_is_self_consistent() -> None:
    document = openapi_document("9.9.9")
    assert document["info"]["version"] == "9.9.9"
    assert set(document["paths"]) == DOCUMENTED
    for ref in set(_refs(document)):
        _resolve(document, ref)
    operation_ids = [op["operationId"] for item in document["paths"].values() for op in item.values()]
    assert len(operation_ids) == len(set(operation_ids))
    for path, item in document["paths"].items():
        for method, operation in item.items():
            declared = {p["name"] for p in operation.get("parameters", []) if p["in"] == "path"}
            assert declared == set(re.findall(r"{(\w+)}", path)), f"{method} {path}: path parameters"
            assert "200" in operation["responses"] and "default" not in operation["responses"], f"{method} {path}"
            for status, response in operation["responses"].items():
                response = _resolve(document, response["$ref"]) if "$ref" in response else response
                if path in STATUS_PATHS and status == "503":  # the status body, with what is wrong
                    schema = response["content"]["application/json"]["schema"]
                    assert list(_refs(schema)) == [STATUS_PATHS[path]], f"{method} {path} {status}"
                elif path == "/" and status == "401":  # the dashboard's sign-in form, for a browser
                    assert list(response["content"]) == ["text/html"]
                elif status.startswith(("4", "5")):  # every error answer is the JSON error body
                    schema = response["content"]["application/json"]["schema"]
                    assert set(_refs(schema)) & {"#/components/schemas/Error",
                                                 "#/components/schemas/PriceUnavailable"}, f"{method} {path} {status}"


def test_document_is_a_fresh_dict_for_every_call() -> None:
    first = openapi_document()
    first["paths"].clear()
    assert set(openapi_document()["paths"]) == DOCUMENTED


# -- the live service -----------------------------------------------------------------------------------------


@pytest.fixture
def live_service(start_service, fake_bybit) -> ServiceProcess:
    """Both exchanges on: the documented `?exchange=` values are all served."""
    service = start_service(EXCHANGES="binance,bybit", BYBIT_WS_URL=fake_bybit.ws_url,
                            BYBIT_REST_URL=fake_bybit.rest_url)
    # The default symbols stream, so /price of them is served from the cache as in production.
    wait_for(lambda: service.get("/price/BTCUSDT").json().get("source") == "cache", timeout=10)
    return service


def _in_process(fake: FakeBinance, **overrides: Any) -> Flask:
    """The real app factory (no background tasks started, no Redis); it registers the document's blueprint."""
    app = create_app(Settings(async_mode="threading", redis_enabled=False, binance_ws_url=fake.ws_url,
                              binance_rest_url=fake.rest_url, **overrides))
    assert openapi.blueprint.name in app.blueprints, "create_app registers the OpenAPI blueprint"
    return app


@pytest.fixture
def in_process_app(fake_binance: FakeBinance) -> Iterator[Flask]:
    app = _in_process(fake_binance)
    yield app
    app.extensions["streaming"].rest.close()


def _price_cases(operation: Any, symbols: list[str]) -> st.SearchStrategy:
    """Well-formed symbols, known or not, in any case and with blanks: the 200 and 404 answers of /price."""
    known = st.sampled_from(symbols)
    made_up = st.from_regex(r"[A-Z0-9][A-Z0-9_]{1,31}", fullmatch=True)
    spelled = st.tuples(st.one_of(known, made_up), st.sampled_from(["upper", "lower", "swapcase"]),
                        st.sampled_from(["", " ", "\t"]))
    return spelled.map(lambda t: operation.Case(path_parameters={"symbol": t[2] + getattr(t[0], t[1])() + t[2]}))


def _steps(operation: Any, base_url: str | None, symbols: list[str]) -> dict[str, Callable[[], None]]:
    """One operation's checks against the service, by name; each raises on its first failure."""
    # Over HTTP, redirects are not followed: what the service answers is what is checked.
    transport = {"timeout": REQUEST_TIMEOUT, "max_redirects": 0} if base_url else {}

    def check(case: schemathesis.Case) -> None:
        case.call_and_validate(base_url=base_url, checks=CHECKS, **transport)

    def examples() -> None:
        fixed = [operation.Case()]
        if operation.path in LOOKUPS:
            fixed = [operation.Case(path_parameters={"symbol": value}) for value in PRICE_EXAMPLES]
        for case in fixed:
            check(case)

    def raw_symbols() -> None:
        failed = []
        for raw in RAW_PRICE_SYMBOLS:
            response = requests.get(base_url + operation.path.replace("{symbol}", raw), timeout=REQUEST_TIMEOUT,
                                    allow_redirects=False)
            case = operation.Case(path_parameters={"symbol": unquote(raw, errors="replace")})
            try:
                case.validate_response(response, checks=CHECKS)
            except schemathesis.errors.FailureGroup as exc:  # the request Schemathesis would print is not this one
                failed.append(f"GET {response.url} -> {response.status_code} {response.headers.get('Content-Type')}"
                              f"\n{exc}")
        assert not failed, "\n".join(failed)

    steps = {
        "examples": examples,
        # Schemathesis' own generation from the schema
        "generated": HYPOTHESIS(given(case=operation.as_strategy())(check)),
    }
    if operation.path in LOOKUPS:
        steps["generated symbols"] = HYPOTHESIS(given(case=_price_cases(operation, symbols))(check))
        if base_url:
            steps["percent-encoded symbols"] = raw_symbols
    return steps


def _run(operations: list[Any], base_url: str | None, symbols: list[str]) -> dict[str, str]:
    """Every step of every operation; the failures by ``"GET /path [step]"``."""
    failures: dict[str, str] = {}
    for operation in operations:
        for name, step in _steps(operation, base_url, symbols).items():
            try:
                step()
            # Schemathesis' FailureGroup is a BaseExceptionGroup, not an Exception
            except (Exception, schemathesis.errors.FailureGroup) as exc:
                failures[f"{operation.label} [{name}]"] = f"{type(exc).__name__}: {exc}"
    return failures


@pytest.mark.timeout(scaled(120))
def test_live_service_conforms_to_its_openapi_document(live_service: ServiceProcess) -> None:
    """Schemathesis against the live service: no 5xx, documented status codes, content types, bodies, headers."""
    url = live_service.url + OPENAPI_JSON
    served = requests.get(url, timeout=REQUEST_TIMEOUT)
    assert served.status_code == 200, f"GET {OPENAPI_JSON} answered {served.status_code}: {served.text[:200]}"
    assert served.headers["Content-Type"].startswith("application/json")
    document = served.json()
    assert {k: v for k, v in document.items() if k != "info"} == {
        k: v for k, v in openapi_document().items() if k != "info"}
    # Schemathesis loads it from the running service (and, by design, leaves out the operation that served it:
    # the operations below come from the same document, loaded as a dict, so GET /openapi.json is kept)
    schemathesis.openapi.from_url(url, timeout=REQUEST_TIMEOUT).validate()
    schema = schemathesis.openapi.from_dict(document)
    schema.config.update(base_url=live_service.url)
    schema.validate()
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {operation.path for operation in operations} == DOCUMENTED
    symbols = live_service.get("/symbols").json()["data"]["available_symbols"]
    assert symbols, "the fake exchange's symbols are loaded"

    failures = _run(operations, live_service.url, symbols)

    assert live_service.get("/health").status_code == 200
    assert not failures, "\n\n".join(f"== {label}\n{text}" for label, text in failures.items())


def test_openapi_json_route_serves_the_document(in_process_app: Flask) -> None:
    response = in_process_app.test_client().get(OPENAPI_JSON)
    assert response.status_code == 200 and response.mimetype == "application/json"
    assert response.get_json() == openapi_document()


@pytest.mark.parametrize("overrides, answers", [
    ({"auth_tokens": ("secret",), "protect_ops_endpoints": True}, {"/stats": 401, "/metrics": 401, "/": 401}),
    ({"prometheus_enabled": False}, {"/metrics": 404}),
    ({"dashboard_enabled": False}, {"/": 404}),
])
def test_answers_of_optional_settings_conform(fake_binance: FakeBinance, overrides: dict[str, Any],
                                              answers: dict[str, int]) -> None:
    """The 401 of PROTECT_OPS_ENDPOINTS and of the dashboard with authentication on, and the 404 of a disabled
    /metrics or dashboard, as documented (in-process app)."""
    app = _in_process(fake_binance, **overrides)
    try:
        schema = schemathesis.openapi.from_wsgi(OPENAPI_JSON, app)
        for path, status in answers.items():
            response = schema[path]["GET"].Case().call_and_validate(checks=CHECKS)
            assert response.status_code == status, response.text
        if "auth_tokens" in overrides:
            response = schema["/stats"]["GET"].Case(headers={"Authorization": "Bearer secret"}).call_and_validate(
                checks=CHECKS)
            assert response.status_code == 200
    finally:
        app.extensions["streaming"].rest.close()
