"""benchmarks.scale's figures from loss.jsonl rows (the run itself is `python -m benchmarks.scale`; no timing is
asserted on these noisy machines)."""

import pytest

from benchmarks.scale import summary, table


def test_summary_leaves_the_warm_up_step_out_and_shares_the_all_reduce():
    rows = [{"seconds": 9.0, "all_reduce_seconds": 5.0}, {"seconds": 2.0, "all_reduce_seconds": 0.1},
            {"seconds": 2.0, "all_reduce_seconds": 0.3}]
    result = summary(2, rows)
    assert result["steps_timed"] == 2 and result["steps_per_second"] == pytest.approx(0.5)
    assert result["all_reduce_share"] == pytest.approx(0.1)
    one = summary(1, [{"seconds": 4.0, "all_reduce_seconds": 0.0}] * 2)
    text = table([one, result])
    assert "2.00x" in text and "10.0%" in text
