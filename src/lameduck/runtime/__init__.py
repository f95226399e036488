"""The asyncio driver: the only place where the core's actions become effects."""
