"""Server engine adapters: the only code that touches a server's internals (each touch pinned by a test)."""
