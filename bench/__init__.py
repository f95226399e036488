"""lameduck's benchmark suite: lameduck serve against bare uvicorn, same app, same run.

Run everything with ``./scripts/bench`` (or ``python -m bench``); see ``python -m bench --help``.
"""
