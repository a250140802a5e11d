"""Routing building blocks: latency estimates, selection, cooldowns, health and circuit breakers."""
