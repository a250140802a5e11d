"""Reasoning effort <-> Anthropic thinking budget: the thresholds, in one place.

OpenAI formats name an effort (`reasoning_effort`, `reasoning.effort`); Anthropic takes either
`thinking: {type: enabled, budget_tokens}` (older models) or `thinking: {type: adaptive}` with
`output_config.effort` (newer ones). Effort -> budget uses the table below; budget -> effort picks
the highest effort whose budget the given budget reaches, so a round trip keeps the effort.
"""

from __future__ import annotations

from router.formats.codec.ir import Effort

# Effort -> thinking budget tokens for `thinking: enabled`. Anthropic's minimum budget is 1024.
BUDGETS: dict[Effort, int] = {
    "minimal": 1024,
    "low": 2048,
    "medium": 8192,
    "high": 16384,
    "xhigh": 32768,
    "max": 65536,
}
MIN_BUDGET = 1024
# Adaptive thinking's output_config.effort takes low|medium|high|xhigh|max.
_ADAPTIVE: dict[Effort, str] = {
    "minimal": "low",
    "low": "low",
    "medium": "medium",
    "high": "high",
    "xhigh": "xhigh",
    "max": "max",
}
ADAPTIVE_DEFAULT: Effort = "medium"  # adaptive thinking without an explicit effort


def budget_for(effort: Effort, max_tokens: int) -> int | None:
    """The budget for an effort, at most half of max_tokens (Anthropic counts thinking inside
    max_tokens, and the answer needs room too); None when that is below the minimum budget
    (thinking is then left off)."""
    if effort == "none":
        return None
    budget = min(BUDGETS[effort], max_tokens // 2)
    return budget if budget >= MIN_BUDGET else None


def effort_for(budget_tokens: int) -> Effort:
    """The highest effort whose budget `budget_tokens` reaches (below the minimum: minimal)."""
    chosen: Effort = "minimal"
    for effort, budget in BUDGETS.items():
        if budget_tokens >= budget:
            chosen = effort
    return chosen


def adaptive_effort(effort: Effort) -> str:
    """OpenAI effort -> output_config.effort for adaptive thinking ("none" is not asked here)."""
    return _ADAPTIVE.get(effort, ADAPTIVE_DEFAULT)
