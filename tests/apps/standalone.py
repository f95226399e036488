"""The basic test app wrapped for a plain ``uvicorn`` command line (lameduck.wrap)."""

import lameduck
from tests.apps.basic import app as basic

app = lameduck.wrap(basic, lame_duck=1, grace=10, drain_timeout=2, log_format="json")
