"""The HTTP side: the ASGI app, middleware, endpoints, request parsing, responses, drain."""
