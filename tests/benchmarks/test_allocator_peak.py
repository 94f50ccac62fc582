"""The CPU allocator's peak (benchmarks/allocator_peak.py) counts live tensor bytes, frees included, by range."""

import torch

from benchmarks.allocator_peak import AllocatorTrace, live_bytes, open_at, peak_between

MB = 1_000_000


def test_the_peak_is_the_most_bytes_live_at_once_not_the_sum_of_allocations():
    with AllocatorTrace() as trace:
        kept = torch.empty(MB, dtype=torch.uint8)  # 1 MB, alive to the end
        with trace.range("work"):
            a = torch.empty(4 * MB, dtype=torch.uint8)
            b = torch.empty(8 * MB, dtype=torch.uint8)  # 13 MB live: the peak
            del a, b
            c = torch.empty(2 * MB, dtype=torch.uint8)
            del c
        with trace.range("later"):
            d = torch.empty(3 * MB, dtype=torch.uint8)
    summary = trace.summary()
    assert summary["peak_bytes"] == 13 * MB
    assert summary["peak_in"][0] == "loba::work"
    assert summary["range_peaks"] == {"work": 13 * MB, "later": 4 * MB}
    assert summary["range_start_bytes"] == {"work": MB, "later": MB}
    assert summary["end_bytes"] == 4 * MB
    del kept, d


def test_a_name_used_many_times_reports_its_highest_peak_and_first_start():
    with AllocatorTrace() as trace:
        for size in (2, 6, 3):
            with trace.range("step"):
                block = torch.empty(size * MB, dtype=torch.uint8)
                del block
    summary = trace.summary()
    assert summary["range_peaks"] == {"step": 6 * MB} and summary["range_start_bytes"] == {"step": 0}


def test_a_mark_measures_what_comes_after_it():
    with AllocatorTrace() as trace:
        setup = torch.empty(9 * MB, dtype=torch.uint8)
        del setup
        kept = torch.empty(2 * MB, dtype=torch.uint8)
        trace.mark("loaded")
        work = torch.empty(5 * MB, dtype=torch.uint8)
        del work
    summary = trace.summary()
    assert summary["peak_bytes"] == 9 * MB, "the setup's transient is the overall peak"
    assert summary["peak_after_mark"] == {"loaded": 7 * MB} and summary["bytes_at_mark"] == {"loaded": 2 * MB}
    del kept


def test_the_running_sum_and_the_window_peak_by_hand():
    times, live = live_bytes([(1, 5), (2, 7), (3, -5), (4, 2), (5, -9)])
    assert live == [5, 12, 7, 9, 0]
    assert peak_between(times, live, 3, 4) == 9 and peak_between(times, live, 2, 2) == 12
    assert peak_between(times, live, 6, 9) == 0, "an empty window holds what was live before it"
    assert open_at([(0, 10, "outer"), (2, 4, "inner"), (5, 6, "later")], 3) == ["outer", "inner"]
