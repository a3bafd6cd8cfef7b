"""Autoscaling on this one machine: Ray's fake multi-node provider adds workers for demand, removes them idle."""

from __future__ import annotations

import os
import secrets

import pytest

from cluster import autoscale_check, head


@pytest.fixture()
def autoscaling_head(tmp_path, monkeypatch):
    monkeypatch.setenv("DLWILD_HOME", str(tmp_path))
    monkeypatch.setenv("RAY_AUTH_MODE", "token")
    monkeypatch.setenv("RAY_AUTH_TOKEN", secrets.token_hex(16))
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    state, started = head.up(port=6393, dashboard_port=8278, autoscale=True)
    assert started
    yield state
    head.down()


def test_workers_come_for_cpu_and_gpu_demand_and_go_when_idle(autoscaling_head):
    assert autoscale_check.worker_nodes(autoscaling_head.dashboard_url) == 0
    result = autoscale_check.exercise(autoscaling_head, task_seconds=6, cpu_tasks=4)
    assert result["peak_workers"] >= 2, result  # at least one CPU worker and the GPU worker
    assert result["first_worker_s"] is not None
    assert result["gpu_ids"], "the GPU task ran without a GPU assigned"
    assert result["gpu_node"] not in result["cpu_nodes"] or len(result["cpu_nodes"]) > 1
    assert result["scale_down_s"] is not None, "idle workers were not removed"
    assert autoscale_check.worker_nodes(autoscaling_head.dashboard_url) == 0
    assert os.path.exists(head.state_file())
