"""What the dispatcher tells a backend about a compute (its type and one node of its ``size``),
and a job its backend can never place: it stays ``Queued`` with the backend's reason, nobody
overtakes it, and it starts (the reason gone) once the backend can place it."""

from __future__ import annotations

from datetime import timedelta

from shoal.compute import NodeResources, RunnerAttempt, resources_for
from shoal.services.jobs import state as job_service
from shoal.services.jobs.dispatcher import Dispatcher
from tests.api.test_jobs_api import FakeBackend, job, submitted


class SmallNodes(FakeBackend):
    """Nodes of ``cpus`` CPUs: a bigger node size can never be placed."""

    def __init__(self, cpus: float) -> None:
        super().__init__()
        self.cpus = cpus
        self.asked: list[RunnerAttempt] = []

    def unplaceable(self, attempt: RunnerAttempt) -> str | None:
        self.asked.append(attempt)
        need = attempt.resources
        if need is not None and need.cpus > self.cpus:
            return f"no node offers {need.describe()}"
        return None


def test_a_job_no_node_fits_stays_queued_with_the_reason_until_one_does(api):
    backend = SmallNodes(cpus=2)
    d = Dispatcher(api.app.state.ctx, "http://testserver", api.app.state.job_signer, backend=backend)
    d._started_at = job_service.now() - timedelta(hours=1)
    for name, size in (("big", "Standard_DS3_v2"), ("small", "standard_ds1_v2")):
        body = {"type": "amlcompute", "size": size, "max_instances": 4}
        assert api.http.put(api.url(f"/computes/{name}"), json=body).status_code == 200
    first = submitted(api, name="first", compute="big")["name"]
    second = submitted(api, name="second", compute="big")["name"]
    other = submitted(api, name="other", compute="small")["name"]
    d.tick()
    shown = job(api, first)
    assert shown["status"] == "Queued"
    assert shown["properties"]["shoal.queue_reason"] == "no node offers 4 CPUs and 14 GiB"
    # First in, first out: the second job on that compute waits behind it, without a reason.
    assert job(api, second)["status"] == "Queued"
    assert "shoal.queue_reason" not in job(api, second)["properties"]
    assert job(api, other)["status"] == "Preparing"
    launched = next(a for a in backend.launched if a.job == other)
    assert launched.compute_type == "amlcompute"
    assert launched.resources == NodeResources(size="Standard_DS1_v2", cpus=1, memory_gib=3.5)
    # A node that fits joins: the job starts and its reason is gone.
    backend.cpus = 8
    d.tick()
    shown = job(api, first)
    assert shown["status"] == "Preparing"
    assert "shoal.queue_reason" not in shown["properties"]


def test_vm_sizes_map_to_one_nodes_resources():
    assert resources_for("Standard_NC6s_v3") == NodeResources("Standard_NC6s_v3", 6, 112, 1)
    assert resources_for("STANDARD_DS3_V2").describe() == "4 CPUs and 14 GiB"
    assert resources_for("Standard_NC24ads_A100_v4").describe() == "24 CPUs, 220 GiB and 1 GPU"
    unknown = resources_for("Standard_Future_v9")
    assert (unknown.cpus, unknown.memory_gib, unknown.gpus, unknown.known) == (1, 0, 0, False)
    assert unknown.describe() == "1 CPU"
