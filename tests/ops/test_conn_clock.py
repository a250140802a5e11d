"""The read deadlines of one client connection, with times passed in (no sockets, no sleeps)."""

from __future__ import annotations

from router.ops.conn_clock import INF, ConnectionStats, Expiry, Phase, ReadClock

HEADER, BODY, IDLE = 10.0, 30.0, 65.0


def clock(now: float = 100.0) -> ReadClock:
    return ReadClock(HEADER, BODY, IDLE, now)


def test_a_new_connection_has_the_header_timeout_from_its_open_whatever_it_sends():
    c = clock(100.0)
    assert c.expired(109.9, False) is None
    assert c.expired(110.0, False) is Expiry.IDLE, "nothing sent: idle, closed silently"
    c = clock(100.0)
    c.begin(105.0, owed=False)  # the first byte, late: no new allowance
    assert c.phase is Phase.HEAD and c.deadline == 110.0
    assert c.expired(110.0, False) is Expiry.HEADER


def test_body_bytes_move_the_body_deadline_and_silence_expires_it():
    c = clock(100.0)
    c.begin(100.0, owed=False)
    c.headers_done(101.0)
    assert c.phase is Phase.BODY and c.deadline == 131.0
    for t in (120.0, 140.0, 160.0):  # a slow upload, never 30 s silent
        c.progress(t)
        assert c.expired(t + 29.0, False) is None
    assert c.expired(190.0, False) is Expiry.BODY


def test_while_the_app_does_not_read_the_body_silence_is_not_the_clients():
    c = clock(100.0)
    c.begin(100.0, owed=False)
    c.headers_done(100.0)
    assert c.expired(130.0, read_paused=True) is None
    assert c.deadline == 160.0
    assert c.expired(160.0, read_paused=False) is Expiry.BODY


def test_keep_alive_starts_when_the_response_ends_and_the_next_headers_at_their_first_byte():
    c = clock(100.0)
    c.begin(100.0, owed=False)
    c.headers_done(100.0)
    c.message_done(100.5, owed=True)
    assert c.phase is Phase.IDLE and c.deadline == INF, "the app is answering: no read deadline"
    assert c.expired(1000.0, False) is None
    c.answered(1000.0)
    assert c.deadline == 1000.0 + IDLE
    c.begin(1060.0, owed=False)
    assert c.deadline == 1060.0 + HEADER
    c = clock(100.0)
    c.message_done(100.0, owed=False)  # answered before the request was whole (a 413)
    assert c.deadline == 100.0 + IDLE
    assert c.expired(100.0 + IDLE, False) is Expiry.IDLE


def test_a_pipelined_request_gets_its_header_time_from_the_previous_responses_end():
    c = clock(100.0)
    c.begin(100.0, owed=False)
    c.headers_done(100.0)
    c.message_done(100.0, owed=True)
    c.begin(101.0, owed=True)
    assert c.phase is Phase.HEAD and c.deadline == INF
    c.answered(500.0)
    assert c.deadline == 500.0 + HEADER


def test_a_response_ending_before_its_body_keeps_the_body_deadline():
    c = clock(100.0)
    c.begin(100.0, owed=False)
    c.headers_done(100.0)
    c.answered(101.0)
    assert c.phase is Phase.BODY and c.deadline == 130.0


def test_a_timer_firing_a_hair_early_counts_as_expired():
    c = clock(100.0)
    assert c.expired(110.0 - 0.001, False) is Expiry.IDLE
    assert clock(100.0).expired(110.0 - 0.01, False) is None


def test_connection_stats_rows_name_every_reason():
    stats = ConnectionStats()
    stats.open = 3
    stats.closed["header_timeout"] += 2
    rows = stats.rows()
    assert rows["client_connections"] == [[3.0]]
    closed = {reason: n for reason, n in rows["client_closed"]}
    assert closed["header_timeout"] == 2.0 and closed["refused"] == 0.0
    assert set(closed) == {"idle", "header_timeout", "body_timeout", "refused", "header_too_large", "malformed"}
