"""The capacity hints a Shoal server sends to a Ray autoscaler (``shoal.compute.ray_cluster``):
the bundles of one ``request_resources`` call, and how an autoscaler is told apart from Ray's
read-only monitor. The no-autoscaler case runs for real in tests/e2e/test_ray_compute.py; no real
autoscaler can run on the test machine (it launches nodes), so here are the call's arguments."""

from __future__ import annotations

import json

from shoal.compute.ray_cluster import CapacityHint, Holds, has_autoscaler
from shoal.compute.sizes import GIB, resources_for

DS1 = resources_for("Standard_DS1_v2")
NC6 = resources_for("Standard_NC6s_v3")


def test_a_bundle_is_one_node_of_the_size():
    assert DS1.ray_bundle() == {"CPU": 1.0, "memory": 3.5 * GIB}
    assert NC6.ray_bundle()["GPU"] == 1.0


def test_min_instances_bundles_for_every_compute_in_one_request():
    holds = Holds()
    hints = [
        CapacityHint("default/gpu", NC6, min_instances=1, idle_seconds=120),
        CapacityHint("default/cpu", DS1, min_instances=2, idle_seconds=120),
        CapacityHint("default/none", DS1, min_instances=0, idle_seconds=120),
    ]
    assert holds.bundles(hints, now=0.0) == [DS1.ray_bundle()] * 2 + [NC6.ray_bundle()]


def test_nodes_in_use_stay_requested_for_idle_time_before_scale_down():
    holds = Holds()

    def wanted(busy: int, now: float) -> int:
        return len(holds.bundles([CapacityHint("ws/c", DS1, min_instances=1, idle_seconds=60, busy=busy)], now=now))

    assert wanted(0, 0) == 1  # min_instances alone
    assert wanted(3, 10) == 3  # three jobs' nodes
    assert wanted(1, 20) == 3  # jobs ended: the nodes are kept...
    assert wanted(0, 69) == 3  # ...until 60 s after the last time all three were busy
    assert wanted(0, 71) == 1  # then back to min_instances
    assert wanted(2, 80) == 2


def _status(types: list[str]) -> str:
    return json.dumps({"autoscaler_report": {"active_nodes": dict.fromkeys(types, 1), "pending_launches": {}}})


def test_rays_read_only_monitor_is_no_autoscaler():
    mirror = "node_" + "ab12" * 14  # `ray start` without --autoscaling-config: each node mirrored
    assert not has_autoscaler(None)
    assert not has_autoscaler(_status([mirror, mirror.replace("a", "c")]))
    assert has_autoscaler(_status(["ray.head.default", "cpu_worker"]))
    assert not has_autoscaler("not json")
