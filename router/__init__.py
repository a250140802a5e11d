"""router: a smart-routing LLM API gateway."""

__version__ = "0.1.0"
