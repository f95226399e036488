from lameduck.cli.main import entrypoint

entrypoint()
