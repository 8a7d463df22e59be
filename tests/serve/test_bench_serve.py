"""`tinylm bench serve --quick` runs end to end: every request answered in full (speed is the benchmark's job)."""

from __future__ import annotations

from tinylm.bench import BENCHMARKS, get


def test_quick_load_test_has_no_errors():
    assert BENCHMARKS["serve"] == "tinylm.bench.serve"
    result = get("serve")(quick=True)
    assert [level["clients"] for level in result["levels"]] == [1, 4, 16]
    assert result["errors"] == 0
    for level in result["levels"]:
        assert level["tokens"] == level["requests"] * result["max_tokens"]
        assert 0 < level["latency_p50_s"] <= level["latency_p99_s"]
    assert result["peak_batch_rows"] > 1  # concurrent requests shared decode steps
