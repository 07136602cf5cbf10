"""The ``camdock`` commands, one module per command group: its options and its run (cli.py
parses the command line and dispatches to them)."""
