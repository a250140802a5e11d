"""The Redis state backend (backend.py), its Lua scripts and packed commands (scripts.py), and the
process's one pipelined connection to Redis (link.py). The only package that imports redis-py."""

from router.billing.state.redis.backend import RedisBackend

__all__ = ["RedisBackend"]
