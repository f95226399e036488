"""The sans-I/O lifecycle core: it decides, drivers act.

May import only pure standard-library modules and ``lameduck.errors`` (enforced by tests/unit/test_layering.py).
Time is always an argument: nothing here reads a clock.
"""
