"""Whether to trace, from the OTEL_* variables (pure: no sockets, and OpenTelemetry imported only
where a test builds the tracing)."""

from __future__ import annotations

import sys

import pytest
from structlog.testing import capture_logs

from router.ops.tracing_env import exporters_asked, from_env

ENDPOINT = "http://collector:4318"


@pytest.mark.parametrize(
    ("env", "exporters"),
    [
        ({}, ()),
        ({"OTEL_SERVICE_NAME": "gw"}, ()),  # naming the service alone asks for nothing
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": ENDPOINT}, ("otlp",)),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": ENDPOINT + "/v1/traces"}, ("otlp",)),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": " "}, ()),
        ({"OTEL_TRACES_EXPORTER": "otlp"}, ("otlp",)),  # the exporter's default endpoint, localhost:4318
        ({"OTEL_TRACES_EXPORTER": "Console"}, ("console",)),
        ({"OTEL_TRACES_EXPORTER": "otlp, console,otlp"}, ("otlp", "console")),
        ({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": ENDPOINT}, ()),
        ({"OTEL_TRACES_EXPORTER": "otlp,none"}, ()),
        ({"OTEL_SDK_DISABLED": "true", "OTEL_EXPORTER_OTLP_ENDPOINT": ENDPOINT}, ()),
        ({"OTEL_SDK_DISABLED": "false", "OTEL_EXPORTER_OTLP_ENDPOINT": ENDPOINT}, ("otlp",)),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": ENDPOINT, "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"}, ("otlp",)),
    ],
)
def test_tracing_is_off_unless_an_exporter_or_an_endpoint_is_named(env, exporters):
    assert exporters_asked(env) == (exporters, [])


@pytest.mark.parametrize(
    ("env", "exporters", "named"),
    [
        ({"OTEL_TRACES_EXPORTER": "zipkin"}, (), "'zipkin'"),
        ({"OTEL_TRACES_EXPORTER": "jaeger,console"}, ("console",), "'jaeger'"),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": ENDPOINT, "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, (), "'grpc'"),
        (
            {"OTEL_TRACES_EXPORTER": "otlp,console", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/json"},
            ("console",),
            "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
        ),
    ],
)
def test_what_the_router_cannot_do_is_named_and_left_out(env, exporters, named):
    asked, problems = exporters_asked(env)
    assert asked == exporters
    [problem] = problems
    assert named in problem


def test_asked_for_without_the_extra_is_one_warning_and_no_tracing(monkeypatch):
    """OpenTelemetry not installed (as if): one warning naming the extra, and no tracing."""
    monkeypatch.delitem(sys.modules, "router.ops.tracing", raising=False)
    monkeypatch.setitem(sys.modules, "opentelemetry", None)  # importing it now fails
    with capture_logs() as logs:
        assert from_env({"OTEL_EXPORTER_OTLP_ENDPOINT": ENDPOINT}) is None
    [line] = logs
    assert line["event"] == "tracing_unavailable" and line["log_level"] == "warning"
    assert "router[otel]" in line["reason"]


def test_an_unavailable_setting_is_a_warning_at_start():
    with capture_logs() as logs:
        assert from_env({"OTEL_TRACES_EXPORTER": "zipkin"}) is None
    assert [(e["event"], e["log_level"]) for e in logs] == [("tracing_setting_ignored", "warning")]


@pytest.mark.parametrize(("service", "expected"), [(None, "router"), ("gateway-eu", "gateway-eu")])
def test_the_service_is_named_router_unless_the_variables_name_it(monkeypatch, service, expected):
    monkeypatch.delenv("OTEL_RESOURCE_ATTRIBUTES", raising=False)
    if service is None:
        monkeypatch.delenv("OTEL_SERVICE_NAME", raising=False)
    else:
        monkeypatch.setenv("OTEL_SERVICE_NAME", service)
    with capture_logs() as logs:
        tracing = from_env({"OTEL_TRACES_EXPORTER": "console"})
    assert tracing is not None
    try:
        assert tracing.provider.resource.attributes["service.name"] == expected
        [line] = logs
        assert (line["event"], line["exporters"], line["service"]) == ("tracing_on", ["console"], expected)
    finally:
        tracing.provider.shutdown()
