"""The command line: argument parsing, terminal output and the only ``sys.exit`` in lameduck."""
