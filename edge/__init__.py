"""Runtime on the gateway: supervisor, bounded queue, writer, stores, ledger, CLI."""
