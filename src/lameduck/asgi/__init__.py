"""Framework-agnostic ASGI parts: the middleware, the probes and lifespan handling. Imports no framework."""
