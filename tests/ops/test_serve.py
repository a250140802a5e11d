"""`router serve`'s open-file limit, with the process limits faked (nothing is changed)."""

from __future__ import annotations

import resource

import pytest
from structlog.testing import capture_logs

from router.ops import serve


@pytest.mark.parametrize(
    ("limits", "expected_soft", "warned"),
    [
        ((1024, 1_048_576), 2 * 1024 + 256, False),  # systemd's default: raised to fit
        ((1024, 1500), 1500, True),  # as far as the hard limit allows, and said
        ((65536, 65536), 65536, False),  # already enough: untouched
        ((1024, resource.RLIM_INFINITY), 2 * 1024 + 256, False),
    ],
)
def test_the_soft_open_file_limit_is_raised_to_fit_max_connections(monkeypatch, limits, expected_soft, warned):
    set_to: list[tuple[int, int]] = []
    monkeypatch.setattr(resource, "getrlimit", lambda which: limits)
    monkeypatch.setattr(resource, "setrlimit", lambda which, value: set_to.append(value))
    with capture_logs() as logs:
        assert serve.raise_fd_limit(1024) == expected_soft
    assert set_to == ([] if expected_soft == limits[0] else [(expected_soft, limits[1])])
    assert any(e["event"] == "open_file_limit_low" for e in logs) == warned


@pytest.mark.parametrize(
    ("first_at", "now", "escalates"),
    [
        (None, 100.0, False),  # the first stop signal: drain
        (100.0, 100.0, False),  # the same stop, sent to the group and forwarded by the parent
        (100.0, 100.0 + serve.REPEAT_WINDOW_S - 0.001, False),
        (100.0, 100.0 + serve.REPEAT_WINDOW_S, True),  # a second stop: no more waiting
        (100.0, 130.0, True),
    ],
)
def test_only_a_later_stop_signal_ends_the_drain(first_at, now, escalates):
    assert serve.escalates(first_at, now) is escalates
