"""The one registry: gauges read from live workers, and the listener the brain and hands serve it on."""

from __future__ import annotations

import httpx

from services.core.metrics import REGISTRY, SLOTS_BUSY, SLOTS_TOTAL, Readings, exposition, serving


def test_readings_follow_the_worker_and_leave_with_it() -> None:
    busy = [0]
    readings = Readings("hands-test-readings").add(SLOTS_BUSY, lambda: busy[0]).add(SLOTS_TOTAL, lambda: 8)
    labels = {"hands_id": "hands-test-readings"}
    assert REGISTRY.get_sample_value("loopd_hands_slots_busy", labels) == 0
    busy[0] = 3
    assert REGISTRY.get_sample_value("loopd_hands_slots_busy", labels) == 3
    assert REGISTRY.get_sample_value("loopd_hands_slots_total", labels) == 8
    readings.close()
    assert REGISTRY.get_sample_value("loopd_hands_slots_busy", labels) is None
    assert b"hands-test-readings" not in exposition()[0]


def test_the_listener_serves_the_registry_on_a_free_port() -> None:
    with serving("test", "127.0.0.1", 0) as port:
        assert port > 0
        response = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5)
    assert response.status_code == 200
    assert "loopd_brain_step_commit_seconds_bucket" in response.text
    assert "process_cpu_seconds_total" in response.text
