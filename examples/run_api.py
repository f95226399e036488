"""Serving from Python with ``lameduck.run()`` instead of the CLI: same settings, same behaviour.

Run it:  python examples/run_api.py          (http://127.0.0.1:8000; LAMEDUCK_* variables apply, e.g.
         LAMEDUCK_PORT=0 picks a free port)
"""

from __future__ import annotations

import sys

import lameduck
from hello import app  # examples/hello.py: run as a script, this folder is on sys.path

if __name__ == "__main__":
    # Keyword settings are the CLI flags' names; run() returns the exit code and never calls sys.exit itself.
    sys.exit(lameduck.run(app, grace=30, cleanup_timeout=2))
