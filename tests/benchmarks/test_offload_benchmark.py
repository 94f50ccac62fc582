"""benchmarks.offload reports every mode's seconds per step, its ratio to none and whether its losses equal none's
(no timing is asserted: these machines are noisy and CPU offload figures say nothing about a GPU)."""

import json

from benchmarks.offload import MODES, main


def test_offload_benchmark_reports_each_mode_with_equal_losses(tmp_path):
    out = tmp_path / "offload.json"
    assert main(["--out", str(out), "--steps", "2", "--rounds", "1"]) == 0
    data = json.loads(out.read_text())
    assert set(data["seconds_per_step"]) == set(MODES) and data["ratio_to_none"]["none"] == 1.0
    assert data["same_loss_as_none"] == {mode: True for mode in MODES}
    assert "only the hooks' bookkeeping" in data["note"]
