"""One cluster query worker: its read service, its registration, its lease and its loads.

``WorkerRuntime.start`` binds the read service (worker_service.py) on a free port of the
configured host (in a Ray actor: its node's address, reachable from other nodes), registers
the worker in the catalog with that address and its memory budget (``register_worker``:
a new worker id, or, when this worker's state dir remembers one, the same id again: a
restarted worker is a new incarnation of the same node, its acks cleared, and it reloads what
is placed on it), opens its view of the data (engine/distribution/worker_view.py) and starts
serving. A heartbeat thread then, every ``HEARTBEAT_S``:

- renews the worker's lease with its used bytes (``renew_worker``; unknown: registers again),
- takes the placement again when its version moved (the view installs and retires segments),
- acks every assigned segment the view has installed (``ack_segment``).

``stop`` stops the thread, the service and the view. A killed worker simply stops renewing:
the coordinator sees its lease lapse.

Threads: ``sheafdb-worker-heartbeat`` (the loop above); the read service's gRPC pool; the
view's loader and search pools. The catalog connection is used by the heartbeat thread and by
the view's placement reads (the catalog serialises its own calls).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time

from sheafdb.api.cluster.worker_config import WorkerConfig
from sheafdb.api.cluster.worker_service import WorkerService
from sheafdb.engine.access import AccessControl
from sheafdb.engine.distribution.read_calls import ReadAnswer, ReadCall
from sheafdb.engine.distribution.worker_view import WorkerView
from sheafdb.engine.follower import FollowerConfig
from sheafdb.errors import ReplicaNotAvailable
from sheafdb.storage.catalog import Catalog, open_catalog
from sheafdb.storage.credentials import open_credentials
from sheafdb.storage.placement_rows import WorkerRecord

log = logging.getLogger("sheafdb.cluster.worker")

# The lease: renewed every HEARTBEAT_S, lapsed after LEASE_TTL_S without a renewal.
HEARTBEAT_S = 0.5
LEASE_TTL_S = 3.0
# Where a worker remembers its id across restarts, in its state dir.
WORKER_ID_FILE = "worker_id"
LOOPBACK = "127.0.0.1"


class WorkerRuntime:
    def __init__(self, config: WorkerConfig) -> None:
        self.config = config
        self.worker_id = 0
        self.incarnation = 0
        self._catalog: Catalog | None = None
        self._view: WorkerView | None = None
        self._service: WorkerService | None = None
        self._access: AccessControl | None = None
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def address(self) -> str:
        return "" if self._service is None else self._service.address

    @property
    def view(self) -> WorkerView:
        assert self._view is not None, "the worker is not started"
        return self._view

    def start(self) -> str:
        """Register, load what is placed here, serve; the read service's address."""
        config = self.config
        config.state_dir.mkdir(parents=True, exist_ok=True)
        followed = FollowerConfig(
            config.data_dir or config.state_dir,
            config.catalog_url,
            config.objects_url,
            config.object_cache_bytes,
        )
        catalog = self._catalog = open_catalog(config.catalog_url, followed.data_dir)
        if config.auth_enabled:
            store = open_credentials(config.catalog_url, followed.data_dir, read_only=True)
            self._access = AccessControl(store, enabled=True)
        service = self._service = WorkerService(
            self._answer,
            catalog.cluster_secret,
            access=self._access,
            host=config.host or LOOPBACK,
            port=config.port,
            max_workers=config.max_workers,
        )
        self._register()
        self._view = WorkerView(followed, catalog, self.worker_id, budget_bytes=config.budget_bytes)
        if self._access is not None:  # the reads' statements carry the credentials' counter
            self._view.on_credential_counter = self._access.saw_store_version
        service.start()
        self._thread = threading.Thread(target=self._heartbeat, name="sheafdb-worker-heartbeat", daemon=True)
        self._thread.start()
        log.info(
            "query worker %d (incarnation %d, pid %d) serves on %s",
            self.worker_id,
            self.incarnation,
            os.getpid(),
            service.address,
        )
        return service.address

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join()
        if self._service is not None:
            self._service.stop()
        if self._view is not None:
            self._view.close()
        if self._access is not None:
            self._access.close()
        if self._catalog is not None:
            self._catalog.close()

    def _answer(self, call: ReadCall) -> ReadAnswer:
        view = self._view
        if view is None or self._stopping.is_set():
            unavailable = ReplicaNotAvailable(
                f"replica not available: worker {self.worker_id} is not serving"
            )
            return ReadAnswer(None, unavailable.code, unavailable.message)
        return view.read(call)

    # -- registration and lease ------------------------------------------------------------
    def _remembered_id(self) -> int:
        try:
            return int((self.config.state_dir / WORKER_ID_FILE).read_text().strip() or 0)
        except (FileNotFoundError, ValueError):
            return 0

    def _register(self) -> None:
        assert self._catalog is not None and self._service is not None
        config = self.config
        record = self._catalog.register_worker(
            WorkerRecord(
                worker_id=self.worker_id or self._remembered_id(),
                address=self._service.address,
                hostname=socket.gethostname(),
                ray_node_id=config.ray_node_id,
                resource_group=config.resource_group,
                budget_bytes=config.budget_bytes,
                used_bytes=0 if self._view is None else self._view.used_bytes(),
                expires_at=time.time() + LEASE_TTL_S,
            )
        )
        self.worker_id, self.incarnation = record.worker_id, record.incarnation
        (config.state_dir / WORKER_ID_FILE).write_text(str(record.worker_id))

    def _heartbeat(self) -> None:
        while not self._stopping.wait(HEARTBEAT_S):
            try:
                self._beat()
            except Exception:  # noqa: BLE001 - a lost catalog connection must not end the loop
                log.exception("query worker %d: heartbeat failed", self.worker_id)

    def _beat(self) -> None:
        catalog, view = self._catalog, self._view
        assert catalog is not None and view is not None
        if not catalog.renew_worker(self.worker_id, view.used_bytes(), time.time() + LEASE_TTL_S):
            log.warning("query worker %d was removed from the catalog: registering again", self.worker_id)
            self._register()
        view.apply_placement()
        for collection_id, replica_id, segment_id in view.unacked():
            catalog.ack_segment(collection_id, replica_id, segment_id, self.worker_id)
        view.apply_placement()  # the acks moved the version: applied now, not on the next call
