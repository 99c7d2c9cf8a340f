"""The ``asset-ledger`` command line; ``cli.main`` holds the click group ``cli``."""
