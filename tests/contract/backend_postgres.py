"""The contract suite's postgres case (filled in with lameduck.workers' postgres backend)."""

from __future__ import annotations

from tests.contract.base import Backend

BACKENDS: list[Backend] = []
