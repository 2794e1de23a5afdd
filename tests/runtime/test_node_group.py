"""A runner's node of a job on several Ray nodes: its ranks from the rendezvous table, and the
job's error from the other nodes' outcomes (the files its Ray actor writes; no Ray needed here)."""

from __future__ import annotations

import json
import threading

import pytest

from shoal.runtime.node_group import GROUP_FILE, PEERS_FILE, GroupFailed, NodeGroup

TABLE = [
    {"ip": "10.0.0.1", "ports": [2001, 2002, 2003], "host": "a", "node_id": "n0"},
    {"ip": "10.0.0.2", "ports": [3001, 3002, 3003], "host": "b", "node_id": "n1"},
]


def group(tmp_path, rank: int) -> NodeGroup:
    (tmp_path / GROUP_FILE).write_text(json.dumps({"nodes": TABLE}))
    return NodeGroup(tmp_path, rank, 2)


def test_pytorch_ranks_of_node_1_point_at_node_0(tmp_path):
    ranks = group(tmp_path, 1).plan({"type": "pytorch", "process_count_per_instance": 2}, tmp_path, threading.Event())
    assert [r.env["RANK"] for r in ranks] == ["2", "3"]
    assert [r.env["LOCAL_RANK"] for r in ranks] == ["0", "1"]
    assert {r.env["MASTER_ADDR"] for r in ranks} == {"10.0.0.1"}
    assert {r.env["MASTER_PORT"] for r in ranks} == {"2001"}
    assert {(r.env["WORLD_SIZE"], r.env["NODE_RANK"], r.env["LOCAL_WORLD_SIZE"]) for r in ranks} == {("4", "1", "2")}
    assert [r.log.name for r in ranks] == ["std_log_process_2.txt", "std_log_process_3.txt"]


def test_tensorflow_workers_get_every_nodes_real_address(tmp_path):
    (rank,) = group(tmp_path, 1).plan({"type": "tensorflow"}, tmp_path, threading.Event())
    config = json.loads(rank.env["TF_CONFIG"])
    assert config["cluster"] == {"worker": ["10.0.0.1:2002", "10.0.0.2:3002"]}
    assert config["task"] == {"type": "worker", "index": 1}


def test_mpi_ranks_and_no_distribution(tmp_path):
    ranks = group(tmp_path, 1).plan({"type": "mpi"}, tmp_path, threading.Event())
    assert [(r.env["OMPI_COMM_WORLD_RANK"], r.env["OMPI_COMM_WORLD_SIZE"]) for r in ranks] == [("1", "2")]
    assert group(tmp_path, 1).plan(None, tmp_path, threading.Event()) == []
    assert len(group(tmp_path, 0).plan(None, tmp_path, threading.Event())) == 1


def test_a_failed_rendezvous_and_a_failed_peer_are_the_jobs_error(tmp_path):
    (tmp_path / GROUP_FILE).write_text(json.dumps({"error": "nodes [1] never answered the rendezvous"}))
    with pytest.raises(GroupFailed) as info:
        NodeGroup(tmp_path, 0, 2).plan({"type": "pytorch"}, tmp_path, threading.Event())
    assert info.value.code == "RENDEZVOUS_FAILED"
    g = group(tmp_path, 0)
    peer = {"alive": False, "exit_code": 3, "host": "b", "node_id": "n1", "result": {"rank": 1, "exit_code": 3}}
    (tmp_path / PEERS_FILE).write_text(json.dumps({"1": peer}))
    assert g.peer_failure().message == "rank 1 on node 1 (host b, Ray node id n1) exited with code 3"
    lost = {"alive": False, "lost": "ActorDiedError", "node_dead": True, "host": "b", "node_id": "n1"}
    (tmp_path / PEERS_FILE).write_text(json.dumps({"1": lost}))
    assert g.peer_failure().code == "NODE_LOST"
