"""``python -m asset_ledger.cli`` is the ``asset-ledger`` command."""

from asset_ledger.cli.main import main

main()
