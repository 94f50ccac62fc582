"""The CPU allocator's peak: what torch.cuda.max_memory_allocated measures on a GPU, counted on a CPU.

Peak RSS (getrusage) includes the interpreter, the libraries and what glibc keeps of freed blocks, so it
overstates what a card would need. torch keeps no peak statistics for CPU tensors, but its profiler with
profile_memory=True records every allocation and free of tensor memory; summed in time order they give the
bytes held by live tensors at each moment. AllocatorTrace runs the profiler over a block of code, and reports
the peak of those live bytes, when it happened (the profiler ranges open at that moment: the step's phase
and the innermost op) and the peak inside each named range (for a name used many times, the highest; its first start).

    with AllocatorTrace() as trace:
        with trace.range("training"):
            train()
    trace.summary()   # {"peak_bytes": ..., "peak_in": [...], "range_peaks": {"training": ...}, ...}

Only tensors allocated inside the block count (start it before the model is built to count the weights).
"""

from __future__ import annotations

import bisect
import contextlib

from torch.profiler import ProfilerActivity, profile, record_function

RANGE_PREFIX = "loba::"
MARK_PREFIX = "loba-mark::"


class AllocatorTrace:
    def __init__(self):
        self._profile = profile(activities=[ProfilerActivity.CPU], profile_memory=True)

    def __enter__(self) -> AllocatorTrace:
        self._profile.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self._profile.__exit__(*exc)

    @staticmethod
    @contextlib.contextmanager
    def range(name: str):
        """A named range whose own peak summary() reports (and that names the moment of the overall peak)."""
        with record_function(RANGE_PREFIX + name):
            yield

    @staticmethod
    def mark(name: str) -> None:
        """A moment (an empty range) after which summary() reports the peak: code that cannot be wrapped in a
        range, such as a peer's training loop, is measured from where its setup ends."""
        with record_function(MARK_PREFIX + name):
            pass

    def summary(self) -> dict:
        events = self._profile.profiler.kineto_results.events()
        memory = sorted((e.start_ns(), e.nbytes()) for e in events
                        if e.name() == "[memory]" and str(e.device_type()).endswith("CPU"))
        times, live = live_bytes(memory)
        ops = [(e.start_ns(), e.end_ns(), e.name()) for e in events if e.name() != "[memory]"]
        if not live:
            return {"peak_bytes": 0, "end_bytes": 0, "peak_in": [], "range_peaks": {}, "range_start_bytes": {},
                    "peak_after_mark": {}, "bytes_at_mark": {}}
        at = max(range(len(live)), key=live.__getitem__)
        ranges = [op for op in ops if op[2].startswith(RANGE_PREFIX)]
        peaks, starts = {}, {}
        for start, end, name in sorted(ranges):  # a name used many times (a phase of every step): its highest
            name = name[len(RANGE_PREFIX):]
            peaks[name] = max(peaks.get(name, 0), peak_between(times, live, start, end))
            starts.setdefault(name, bytes_before(times, live, start))
        marks = {name[len(MARK_PREFIX):]: start for start, _, name in ops if name.startswith(MARK_PREFIX)}
        return {"peak_bytes": live[at], "end_bytes": live[-1], "peak_in": open_at(ops, times[at]),
                "range_peaks": peaks, "range_start_bytes": starts,
                "peak_after_mark": {name: peak_between(times, live, start, times[-1]) for name, start in marks.items()},
                "bytes_at_mark": {name: bytes_before(times, live, start) for name, start in marks.items()}}


def live_bytes(memory: list[tuple[int, int]]) -> tuple[list[int], list[int]]:
    """Running sum of allocations (+) and frees (-): the bytes live tensors hold after each event."""
    times, live, total = [], [], 0
    for time_ns, nbytes in memory:
        total += nbytes
        times.append(time_ns)
        live.append(total)
    return times, live


def peak_between(times: list[int], live: list[int], start: int, end: int) -> int:
    low, high = bisect.bisect_left(times, start), bisect.bisect_right(times, end)
    inside = live[low:high]
    return max(inside) if inside else bytes_before(times, live, start)


def bytes_before(times: list[int], live: list[int], start: int) -> int:
    index = bisect.bisect_left(times, start)
    return live[index - 1] if index else 0


def open_at(ops: list[tuple[int, int, str]], time_ns: int) -> list[str]:
    """The ranges and ops running at a moment, outermost first (a few names, enough to tell the phase)."""
    running = sorted((op for op in ops if op[0] <= time_ns <= op[1]), key=lambda op: (op[0], -op[1]))
    names = [name for _, _, name in running]
    return names[:3] + (["..."] if len(names) > 6 else []) + names[max(3, len(names) - 3):]


def figures_after_mark(summary: dict, mark: str, weights: int) -> dict:
    """A peer's allocator figures, counted from the mark at the end of its setup (its load is not training)."""
    peak = summary["peak_after_mark"][mark]
    return {"allocator_peak_bytes": peak, "allocator_peak_over_weights_bytes": peak - weights,
            "allocator_loaded_bytes": summary["bytes_at_mark"][mark], "allocator_setup_peak_bytes": summary["peak_bytes"],
            "allocator_peak_in": summary["peak_in"]}


def with_allocator_figures(plain: dict, traced: dict) -> dict:
    """An untraced run's figures (its RSS is not inflated by the profiler's records) with the traced run's
    allocator_* figures; a traced run that failed is kept as allocator_error."""
    if "error" in traced:
        return {**plain, "allocator_error": traced["error"]}
    return {**plain, **{key: value for key, value in traced.items() if key.startswith("allocator_")},
            "traced_seconds": traced.get("seconds")}
