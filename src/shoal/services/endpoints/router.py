"""The scoring router: one stable URL per endpoint in front of its deployments' instances.

Per request (authenticated before: ``server/scoring_path.py``, ``routes/endpoints.EndpointKey``): the deployment (the
``azureml-model-deployment`` header, else a weighted draw over ``traffic``), then an instance of
that deployment with a free slot (``max_concurrent_requests_per_instance``), waiting at most
``max_queue_wait_ms`` for one (429), then the request forwarded on a kept-alive connection (``upstream.py``) and
answered within ``request_timeout_ms`` (408). No ready instance is a 503. A share of requests
is copied to the ``mirror_traffic`` deployments, their answers dropped. Answers as Azure's:
the status and body of the scoring script, with the ``azureml-model-deployment`` header."""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections import deque
from dataclasses import dataclass, field

from shoal.services.endpoints.pools import Deployment, EndpointView, Instance, Key
from shoal.services.endpoints.supervisor import Supervisor
from shoal.services.endpoints.upstream import UpstreamError, UpstreamPool

DEPLOYMENT_HEADER = "azureml-model-deployment"
RETRY_CONNECT = 2  # an instance that vanished (restarted, rolled out) is retried on another
QUEUE_RECHECK = 0.05  # a queued request looks again this often (a rollout may have added instances)


@dataclass
class Answer:
    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)
    media_type: str = "application/json"


def _error(status: int, message: str, deployment: str | None = None) -> Answer:
    headers = {DEPLOYMENT_HEADER: deployment} if deployment else {}
    return Answer(status, json.dumps({"message": message}).encode(), headers)


class Router:
    def __init__(self, supervisor: Supervisor) -> None:
        self.supervisor = supervisor
        self.upstream = UpstreamPool()
        self._background: set[asyncio.Task[None]] = set()
        # Requests waiting for a free slot of a deployment, first come first served.
        self._waiters: dict[Key, deque[asyncio.Future[None]]] = {}
        self._turn = 0

    async def close(self) -> None:
        await self.upstream.close()

    # -- the request ---------------------------------------------------------------------------

    def choose(self, workspace: str, endpoint: str, view: EndpointView, pinned: str | None) -> str | Answer:
        if pinned:
            if (workspace, endpoint, pinned) not in self.supervisor.deployments:
                return _error(
                    404, f"deployment '{pinned}' (header {DEPLOYMENT_HEADER}) is not in endpoint '{endpoint}'"
                )
            return pinned
        weights = [(name, pct) for name, pct in view.traffic.items() if pct > 0]
        if not weights:
            return _error(
                404,
                "No valid deployments to route to. Please check that the endpoint has at least one deployment "
                f"with positive weight values or use a deployment specific header ({DEPLOYMENT_HEADER}) to route.",
            )
        names, pcts = zip(*weights, strict=True)
        return random.choices(names, weights=pcts)[0]

    async def score(
        self,
        workspace: str,
        endpoint: str,
        body: bytes,
        content_type: str,
        *,
        pinned: str | None,
    ) -> Answer:
        """Route one request; the caller has authenticated it (:meth:`authenticate`)."""
        view = self.supervisor.endpoints.get((workspace, endpoint))
        if view is None:
            return _error(404, f"online endpoint '{endpoint}' not found in workspace '{workspace}'")
        chosen = self.choose(workspace, endpoint, view, pinned)
        if isinstance(chosen, Answer):
            return chosen
        if not pinned:
            for name, pct in view.mirror_traffic.items():
                if pct > 0 and random.random() * 100 < pct:
                    self._mirror(workspace, endpoint, name, body, content_type)
        return await self.forward(
            self.supervisor.deployments.get((workspace, endpoint, chosen)), chosen, body, content_type
        )

    def _mirror(self, workspace: str, endpoint: str, name: str, body: bytes, content_type: str) -> None:
        dep = self.supervisor.deployments.get((workspace, endpoint, name))
        if dep is None:
            return
        task = asyncio.get_running_loop().create_task(self._mirrored(dep, name, body, content_type))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _mirrored(self, dep: Deployment, name: str, body: bytes, content_type: str) -> None:
        await self.forward(dep, name, body, content_type, mirror=True)

    async def forward(
        self, dep: Deployment | None, name: str, body: bytes, content_type: str, *, mirror: bool = False
    ) -> Answer:
        started = time.perf_counter()
        answer = await self._forward(dep, name, body, content_type)
        if dep is not None:
            dep.metrics.record(answer.status, time.perf_counter() - started, mirror=mirror)
        return answer

    async def _forward(self, dep: Deployment | None, name: str, body: bytes, content_type: str) -> Answer:
        if dep is None or dep.pool is None:
            return _error(503, f"deployment '{name}' has no instance ready to serve", name)
        settings = dep.pool.request_settings
        timeout = float(settings.get("request_timeout_ms") or 5000) / 1000
        queue_wait = float(settings.get("max_queue_wait_ms") if settings.get("max_queue_wait_ms") is not None else 500)
        per_instance = int(settings.get("max_concurrent_requests_per_instance") or 1)
        deadline = time.monotonic() + timeout
        for _ in range(RETRY_CONNECT + 1):
            inst = await self._acquire(dep, per_instance, queue_wait / 1000)
            if isinstance(inst, Answer):
                inst.headers[DEPLOYMENT_HEADER] = name
                return inst
            port = inst.port
            try:
                if port is None:
                    raise UpstreamError("the instance has no port yet")
                async with asyncio.timeout(max(0.001, deadline - time.monotonic())):
                    reply = await self.upstream.post(
                        inst.host, port, "/score", body, content_type or "application/json"
                    )
            except TimeoutError:
                return _error(408, f"the request took longer than request_timeout_ms ({int(timeout * 1000)})", name)
            except UpstreamError:
                if not inst.alive():
                    inst.ready = False
                if port is not None:
                    self.upstream.forget(inst.host, port)
                if time.monotonic() >= deadline:
                    return _error(408, f"the request took longer than request_timeout_ms ({int(timeout * 1000)})", name)
                continue  # the instance went away: another one, if any
            finally:
                self._release(dep, inst)
            return Answer(reply.status, reply.body, {DEPLOYMENT_HEADER: name}, reply.content_type)
        return _error(503, f"deployment '{name}': no instance answered", name)

    def _release(self, dep: Deployment, inst: Instance) -> None:
        inst.inflight -= 1
        waiters = self._waiters.get(dep.key)
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                break

    async def _acquire(self, dep: Deployment, per_instance: int, queue_wait: float) -> Instance | Answer:
        """An instance with a free slot, its ``inflight`` already counted (no await in between).
        A request that finds every slot taken waits in line (first come, first served) and is
        woken by the request that frees one; it rechecks now and then for instances that a
        rollout or a restart made ready meanwhile."""
        give_up = time.monotonic() + queue_wait
        while True:
            pool = dep.pool
            best: Instance | None = None
            any_ready = False
            instances = pool.instances if pool else []
            # The least busy instance; among equals, the next in turn (requests one at a time
            # spread over every instance rather than all going to the first).
            self._turn += 1
            start = self._turn % len(instances) if instances else 0
            for inst in instances[start:] + instances[:start]:
                if inst.ready and inst.port is not None:
                    any_ready = True
                    if inst.inflight < per_instance and (best is None or inst.inflight < best.inflight):
                        best = inst
            if best is not None:
                best.inflight += 1
                return best
            if not any_ready:
                return _error(503, "no instance of this deployment is ready (starting, or restarting after a crash)")
            left = give_up - time.monotonic()
            if left <= 0:
                return _error(
                    429,
                    f"too many requests: every instance is serving max_concurrent_requests_per_instance "
                    f"({per_instance}) and none freed up within max_queue_wait_ms",
                )
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.setdefault(dep.key, deque()).append(waiter)
            try:
                await asyncio.wait_for(waiter, min(left, QUEUE_RECHECK))
            except TimeoutError:
                pass
            finally:
                if not waiter.done():
                    waiter.cancel()
