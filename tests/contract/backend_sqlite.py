"""The contract suite's sqlite case (filled in with lameduck.workers' sqlite backend)."""

from __future__ import annotations

from tests.contract.base import Backend

BACKENDS: list[Backend] = []
