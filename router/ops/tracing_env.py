"""Whether to trace, from the standard OpenTelemetry variables (docs/tracing.md), decided without
importing OpenTelemetry: with tracing off the router never loads it, and with it asked for but
the `router[otel]` extra missing, one warning and the router runs without.

Off by default. On when OTEL_TRACES_EXPORTER names an exporter the router has ("otlp",
"console"), or, with OTEL_TRACES_EXPORTER unset, when OTEL_EXPORTER_OTLP_TRACES_ENDPOINT or
OTEL_EXPORTER_OTLP_ENDPOINT is set (then "otlp"). Off when OTEL_SDK_DISABLED is "true" or
OTEL_TRACES_EXPORTER includes "none". OTLP goes over HTTP (http/protobuf) only.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import structlog

if TYPE_CHECKING:
    from router.ops.tracing import Tracing

log = structlog.get_logger("router.ops.tracing")

EXPORTERS = ("otlp", "console")
OTLP_PROTOCOL = "http/protobuf"  # the exporter the extra ships; grpc would pull in grpcio


def exporters_asked(environ: Mapping[str, str]) -> tuple[tuple[str, ...], list[str]]:
    """The span exporters the OTEL_* variables ask for (empty: tracing off), and each setting
    the router cannot honour, as a sentence for the log."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return (), []
    problems: list[str] = []
    named = environ.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if named:
        asked = [n.strip() for n in named.split(",") if n.strip()]
        if "none" in asked:
            return (), []
        for n in asked:
            if n not in EXPORTERS:
                problems.append(f"OTEL_TRACES_EXPORTER: exporter {n!r} is not available (only otlp, console)")
        wanted = tuple(dict.fromkeys(n for n in asked if n in EXPORTERS))
    elif (
        environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "").strip()
        or environ.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip()
    ):
        wanted = ("otlp",)
    else:
        return (), []
    if "otlp" in wanted:
        var = next(
            (v for v in ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL") if environ.get(v)),
            None,
        )
        protocol = environ[var].strip().lower() if var else OTLP_PROTOCOL
        if protocol != OTLP_PROTOCOL:
            problems.append(f"{var}: protocol {protocol!r} is not available (only {OTLP_PROTOCOL}); no OTLP export")
            wanted = tuple(n for n in wanted if n != "otlp")
    return wanted, problems


def from_env(environ: Mapping[str, str]) -> Tracing | None:
    """Tracing as the variables ask (None: off), logging what cannot be done."""
    exporters, problems = exporters_asked(environ)
    for problem in problems:
        log.warning("tracing_setting_ignored", problem=problem)
    if not exporters:
        return None
    try:
        from router.ops.tracing import Tracing
    except ModuleNotFoundError as exc:
        if not (exc.name or "").startswith("opentelemetry"):
            raise
        log.warning(
            "tracing_unavailable",
            reason=f"OTEL_* variables ask for traces but {exc.name} is not installed: pip install 'router[otel]'",
            note="running without tracing",
        )
        return None
    tracing = Tracing.from_exporters(exporters)
    log.info("tracing_on", exporters=list(exporters), service=tracing.service)
    return tracing
