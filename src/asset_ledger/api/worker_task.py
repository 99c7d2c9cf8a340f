"""The worker embedded in ``asset-ledger serve``: a thread executing queued runs beside the web server.

Collectors run their own event loop, so the worker lives in a thread of its own, never on the server's loop.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from asset_ledger.core.queue import Worker


@asynccontextmanager
async def embedded_worker(app: FastAPI) -> AsyncIterator[None]:
    """Run a worker for the app's lifetime when its options ask for one."""
    options = app.state.options
    if not options.embedded_worker:
        yield
        return
    worker = Worker(app.state.ledger, poll_s=options.worker_poll_s)
    thread = threading.Thread(target=worker.serve, name="ledger-worker", daemon=True)
    app.state.worker = worker
    thread.start()
    try:
        yield
    finally:
        worker.stop()
        thread.join(timeout=30)
