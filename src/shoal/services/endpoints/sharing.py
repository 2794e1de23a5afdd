"""Online endpoints across several servers on one database: instances run once, every router
reaches them.

One server at a time holds the ``endpoints`` duty (a ``cluster_lease`` row, as the job
controllers' duty: ``store/servers.hold_duty``, renewed every third of the lease). The holder's
supervisor runs every deployment's instances and stores their addresses on the deployment row
(``served_by``, ``instances``: host, port, ready, pid). Every server, holder or not, reads the
endpoints and deployments once a second (``REFRESH_PERIOD``) into memory: keys and traffic for
its router (a change made through another server arrives within that second), and on a
non-holder the stored addresses as a *remote pool* its router forwards to. No request reads the
database.

A deployment created or updated through a non-holder is stored ``Creating``/``Updating``; the
holder sees the new generation at its next refresh and rolls it out, and the client waits for
``Succeeded`` as always. When the holder stops renewing (killed, cut off), its lease lapses and
another server takes the duty: it rolls every deployment out on itself and stores the new
addresses; the old instances ended with their server (they die with it). A holder that finds
it lost the duty stops its instances."""

from __future__ import annotations

import logging
import time
from typing import Any, Protocol

from shoal.entities.endpoint import ProbeSettings
from shoal.services.endpoints.pools import Deployment, Instance, Key, Pool
from shoal.services.jobs import state as job_state
from shoal.store import endpoints as rows
from shoal.store import servers as server_rows


class Supervisor(Protocol):
    """What sharing uses of ``supervisor.Supervisor`` (which imports this module)."""

    ctx: Any
    deployments: dict[Key, Deployment]
    endpoints: dict[tuple[str, str], Any]

    def set_endpoint(
        self, workspace: str, name: str, spec: dict[str, Any], keys: dict[str, str], *, read_at: float | None = None
    ) -> None: ...
    def remove(self, key: Key) -> None: ...
    def deployment(self, key: Key) -> Deployment: ...
    def stop_local(self) -> None: ...
    def rollout(self, key: Key, generation: int, resolved: dict[str, Any], *, row_id: int | None = None) -> None: ...


logger = logging.getLogger(__name__)

DUTY = "endpoints"
REFRESH_PERIOD = 1.0
# How long a holder keeps an old pool serving after storing the new addresses, so the other
# servers' routers (refreshing every REFRESH_PERIOD) have moved to the new ones first.
PEER_GRACE = 2.5 * REFRESH_PERIOD


class Sharing:
    def __init__(self, sup: Supervisor, server_id: str, lease_seconds: float, host: str, *, shared: bool) -> None:
        self.sup = sup
        # False for an app without a listening server (in-process tests): it alone runs the
        # instances, with no duty to hold (and no periodic write).
        self.shared = shared
        self.server_id = server_id
        self.lease_seconds = max(1.0, lease_seconds)
        self.host = host
        self.holder = False
        self.peers = False  # other live servers seen at the last refresh
        self._duty_at = 0.0
        self._refresh_at = 0.0

    # -- the duty ------------------------------------------------------------------------------

    def renew(self) -> None:
        """Take or keep the duty; a holder that lost it stops its instances."""
        if not self.shared:
            self.holder = True
            self._duty_at = time.monotonic()
            return
        now = job_state.now()
        with self.sup.ctx.db.write() as session:
            held = server_rows.hold_duty(session, DUTY, self.server_id, now=now, ttl=self.lease_seconds)
        self._duty_at = time.monotonic()
        if self.holder and not held:
            logger.warning("this server lost the endpoints duty: stopping its scoring instances")
            self.sup.stop_local()
        elif held and not self.holder:
            logger.info("this server holds the endpoints duty: it runs the scoring instances")
        self.holder = held

    def tick(self) -> None:
        """From the supervisor's monitor thread, every MONITOR_PERIOD."""
        now = time.monotonic()
        if now - self._duty_at >= self.lease_seconds / 3:
            self.renew()
        if now - self._refresh_at >= REFRESH_PERIOD:
            self.refresh()

    # -- what is stored ------------------------------------------------------------------------

    def refresh(self) -> None:
        """Read every endpoint and deployment; bring this server's view (and, on the holder, its
        instances) in line with them."""
        self._refresh_at = read_at = time.monotonic()
        known = list(self.sup.deployments)  # before the read: see Supervisor's note on ordering
        known_endpoints = list(self.sup.endpoints)
        with self.sup.ctx.db.read() as session:
            endpoints = [(ws, ep.name, ep.spec, ep.keys) for ws, ep in rows.all_endpoints(session)]
            stored = {}
            if endpoints or known:  # most servers have none: one cheap query a second
                stored = {
                    (ws, ep.name, dep.name): (dep.id, dep.generation, dep.resolved, dep.served_by, dep.instances)
                    for ws, ep, dep in rows.all_live_deployments(session)
                }
            if self.shared and self.holder and stored:  # only the holder's rollouts wait for peers
                self.peers = bool(server_rows.live(session, job_state.now()) - {self.server_id})
        for ws, name, spec, keys in endpoints:
            # An endpoint this server changed while the read ran keeps the newer view.
            self.sup.set_endpoint(ws, name, spec, self.sup.ctx.secrets.decrypt(keys), read_at=read_at)
        names = {(ws, name) for ws, name, _, _ in endpoints}
        for key in [k for k in known_endpoints if k not in names]:
            self.sup.endpoints.pop(key, None)
        for key in [k for k in known if k not in stored]:
            logger.info("deployment %s is no longer stored: stopping its instances", key)
            self.sup.remove(key)
        for key, (row_id, generation, resolved, served_by, instances) in stored.items():
            if self.holder:
                self._run(key, row_id, generation, resolved)
            else:
                self._follow(key, row_id, resolved, served_by, instances or [])
        if self.holder:
            for dep in list(self.sup.deployments.values()):
                self.publish(dep)

    def _run(self, key: Key, row_id: int, generation: int, resolved: dict[str, Any]) -> None:
        dep = self.sup.deployments.get(key)
        if dep is not None and dep.row_id not in (None, row_id):
            self.sup.remove(key)  # deleted and made again under the same name
            dep = None
        if dep is not None:
            dep.row_id = row_id
        # A remote pool (this server took the duty over) has wanted 0: it is rolled out here too.
        if dep is None or generation > dep.wanted:
            self.sup.rollout(key, generation, resolved, row_id=row_id)

    def _follow(
        self, key: Key, row_id: int, resolved: dict[str, Any], served_by: str | None, stored: list[dict[str, Any]]
    ) -> None:
        dep = self.sup.deployment(key)
        dep.row_id = row_id
        pool = dep.pool
        if pool is not None and pool.files is not None:
            return  # this server's own instances (it held the duty until a moment ago)
        by_address = {(i.host, i.port): i for i in (pool.instances if pool else [])}
        instances = []
        for item in stored:
            address = (str(item.get("host") or "127.0.0.1"), item.get("port"))
            inst = by_address.get(address) or Instance(None, host=address[0], remote_port=address[1])
            inst.ready = bool(item.get("ready")) and address[1] is not None
            inst.remote_pid = item.get("pid")
            inst.index = int(item.get("index") or 0)
            inst.restarts = int(item.get("restarts") or 0)
            instances.append(inst)
        settings = resolved.get("request_settings") or {}
        liveness = ProbeSettings(**(resolved.get("liveness_probe") or {}))
        generation = int(stored[0].get("generation") or 0) if stored else 0
        dep.pool = Pool(generation, None, instances, {}, settings, liveness, served_by=served_by)

    def publish(self, dep: Deployment) -> None:
        """Store where ``dep``'s instances listen, when that changed since the last time."""
        pool = dep.pool
        if pool is None or pool.files is None or dep.row_id is None:
            return
        snapshot = [
            {
                "index": inst.process.index if inst.process else inst.index,
                "host": self.host,
                "port": inst.port,
                "ready": inst.ready,
                "pid": inst.process.pid if inst.process else None,
                "restarts": inst.restarts,
                "generation": pool.generation,
            }
            for inst in pool.instances
        ]
        if snapshot == dep.published:
            return
        try:
            with self.sup.ctx.db.write() as session:
                rows.publish_instances(session, dep.row_id, self.server_id, snapshot)
        except Exception:  # noqa: BLE001 - the next refresh tries again
            logger.exception("storing the instances of %s", dep.key)
            return
        dep.published = snapshot
