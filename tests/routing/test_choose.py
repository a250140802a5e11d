"""Tests for router.routing.choose: cost and power-of-two-choices selection."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from router.routing.choose import DEFAULT_RTT_S, NATIVE_TIE, Candidate, choose, cost


def _simulate(specs: dict[str, tuple[float, float]], rounds: int, concurrency: int, seed: int) -> Counter[str]:
    """Closed-loop run: choose, add in-flight load, retire random requests to keep `concurrency`."""
    rng = random.Random(seed)
    inflight = dict.fromkeys(specs, 0)
    picks: Counter[str] = Counter()
    for _ in range(rounds):
        cands = [
            Candidate(item=name, ewma_s=ewma, inflight=inflight[name], weight=weight)
            for name, (ewma, weight) in specs.items()
        ]
        name = choose(cands, rng).item
        picks[name] += 1
        inflight[name] += 1
        if sum(inflight.values()) > concurrency:
            # Retire a uniformly random outstanding request; ignoring that faster
            # routes finish sooner only makes the latency test harder to pass.
            outstanding = [n for n, k in inflight.items() for _ in range(k)]
            inflight[rng.choice(outstanding)] -= 1
    return picks


def test_empty_raises() -> None:
    """No candidates is an error."""
    with pytest.raises(ValueError):
        choose([], random.Random(0))


def test_single_candidate_returned() -> None:
    """A lone candidate is returned whatever its state."""
    only = Candidate(item="a", ewma_s=9.0, inflight=50, weight=1.0)
    assert choose([only], random.Random(0)) is only


def test_cost_formula() -> None:
    """cost = ewma_or_default * (inflight + 1) / weight."""
    assert cost(Candidate("a", 0.5, 3, 2.0), default_rtt_s=9.0) == pytest.approx(1.0)
    assert cost(Candidate("a", None, 1, 1.0), default_rtt_s=0.25) == pytest.approx(0.5)


def test_fast_route_gets_most_traffic() -> None:
    """With EWMA 0.05 vs 0.5, the fast route wins at least 80% of 1000 choices under load."""
    picks = _simulate({"fast": (0.05, 1.0), "slow": (0.5, 1.0)}, 1000, concurrency=8, seed=1)
    assert picks["fast"] >= 800


def test_fast_route_wins_among_many() -> None:
    """Among several slow routes, one fast route still draws a large share."""
    rng = random.Random(2)
    cands = [Candidate("fast", 0.05, 0, 1.0)] + [Candidate(f"s{i}", 0.5, 0, 1.0) for i in range(3)]
    picks = Counter(choose(cands, rng).item for _ in range(1000))
    # P2C: the fast one wins whenever it is drawn, i.e. with probability 1/2 here.
    assert 430 <= picks["fast"] <= 570


def test_weight_shifts_share() -> None:
    """Weight 2 vs 1 at equal EWMA gives the heavier route more than 55% of traffic."""
    picks = _simulate({"heavy": (0.2, 2.0), "light": (0.2, 1.0)}, 1000, concurrency=8, seed=3)
    share = picks["heavy"] / 1000
    assert share > 0.55
    # Weight biases rather than monopolises: in-flight load still spills over.
    assert picks["light"] > 0


def test_inflight_penalises() -> None:
    """At equal EWMA and weight, the idle route beats the busy one."""
    busy = Candidate("busy", 0.1, 3, 1.0)
    idle = Candidate("idle", 0.1, 0, 1.0)
    rng = random.Random(4)
    assert all(choose([busy, idle], rng) is idle for _ in range(100))


def test_inflight_outweighs_small_latency_edge() -> None:
    """A slightly faster but busy route loses to a slightly slower idle one."""
    busy_fast = Candidate("busy_fast", 0.1, 4, 1.0)
    idle_slow = Candidate("idle_slow", 0.2, 0, 1.0)
    assert choose([busy_fast, idle_slow], random.Random(5)) is idle_slow


def test_unmeasured_idle_taken_first() -> None:
    """A never-measured idle route is chosen before any measured one."""
    rng = random.Random(6)
    measured = [Candidate(f"m{i}", 0.01, 0, 5.0) for i in range(4)]
    fresh = Candidate("fresh", None, 0, 1.0, native=False)
    assert all(choose([*measured, fresh], rng) is fresh for _ in range(100))


def test_unmeasured_idle_random_among_several() -> None:
    """Several never-measured idle routes share the exploration picks."""
    rng = random.Random(7)
    cands = [Candidate("m", 0.01, 0, 1.0), Candidate("u1", None, 0, 1.0), Candidate("u2", None, 0, 1.0)]
    picks = Counter(choose(cands, rng).item for _ in range(400))
    assert set(picks) == {"u1", "u2"}
    assert 150 <= picks["u1"] <= 250


def test_unmeasured_busy_costed_at_mean_of_measured() -> None:
    """A never-measured route with load is costed at the measured mean, not preferred."""
    rng = random.Random(8)
    # Mean of measured EWMAs is 0.3, so the unmeasured one costs 0.3 * 2 = 0.6 > 0.5.
    a = Candidate("a", 0.5, 0, 1.0)
    b = Candidate("b", 0.1, 4, 1.0)  # cost 0.5
    u = Candidate("u", None, 1, 1.0)
    picks = Counter(choose([a, b, u], rng).item for _ in range(300))
    assert picks["u"] == 0


def test_all_unmeasured_busy_uses_default() -> None:
    """With nothing measured, busy unmeasured routes fall back to DEFAULT_RTT_S and inflight decides."""
    assert DEFAULT_RTT_S > 0
    light = Candidate("light", None, 1, 1.0)
    heavy = Candidate("heavy", None, 5, 1.0)
    assert choose([heavy, light], random.Random(9)) is light


def test_native_breaks_exact_tie() -> None:
    """On an exact cost tie the native candidate wins regardless of draw order."""
    rng = random.Random(10)
    foreign = Candidate("foreign", 0.2, 1, 1.0, native=False)
    native = Candidate("native", 0.2, 1, 1.0, native=True)
    assert all(choose([foreign, native], rng) is native for _ in range(100))
    assert all(choose([native, foreign], rng) is native for _ in range(100))


def test_native_wins_within_the_tie_tolerance_only() -> None:
    """Costs within NATIVE_TIE count as a tie the native route wins; just past it, the cheaper wins."""
    rng = random.Random(13)
    inside = 0.2 * (1 - NATIVE_TIE / 2)
    foreign = Candidate("foreign", inside, 0, 1.0, native=False)
    native = Candidate("native", 0.2, 0, 1.0, native=True)
    assert all(choose([foreign, native], rng) is native for _ in range(50))
    outside = 0.2 * (1 - NATIVE_TIE * 1.5)
    cheaper = Candidate("cheaper", outside, 0, 1.0, native=False)
    assert all(choose([native, cheaper], rng) is cheaper for _ in range(50))


def test_unmeasured_translated_route_is_still_tried_first() -> None:
    """The native preference never starves a route that has not been measured yet."""
    native = Candidate("native", 0.01, 0, 1.0, native=True)
    fresh = Candidate("fresh", None, 0, 1.0, native=False)
    assert choose([native, fresh], random.Random(14)) is fresh


def test_tie_between_natives_is_first_drawn() -> None:
    """Exact ties between equally native candidates split roughly evenly (first drawn wins)."""
    rng = random.Random(11)
    cands = [Candidate("a", 0.2, 0, 1.0), Candidate("b", 0.2, 0, 1.0)]
    picks = Counter(choose(cands, rng).item for _ in range(1000))
    assert 400 <= picks["a"] <= 600


def test_native_does_not_beat_lower_cost() -> None:
    """Native only breaks ties; a cheaper non-native candidate still wins."""
    foreign = Candidate("foreign", 0.1, 0, 1.0, native=False)
    native = Candidate("native", 0.2, 0, 1.0, native=True)
    assert choose([native, foreign], random.Random(12)) is foreign


@pytest.mark.parametrize(("weight", "inflight"), [(0.0, 0), (-1.0, 0), (1.0, -1)])
def test_candidate_validation(weight: float, inflight: int) -> None:
    """Non-positive weight or negative inflight is rejected at construction."""
    with pytest.raises(ValueError):
        Candidate("x", 0.1, inflight, weight)
