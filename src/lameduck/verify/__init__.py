"""Proving graceful shutdown from the outside: an exact HTTP/1.1 client (and, later, scenarios and reports).

Library code never imports this package; tests, benchmarks and the ``verify``/``rollout`` commands do.
"""
