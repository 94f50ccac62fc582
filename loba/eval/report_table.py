"""The report's numbers as rows, shared by the HTML page and the node's report image (so both show the same)."""

from __future__ import annotations

from collections.abc import Iterator


def fmt(figure: dict) -> str:
    if figure["mean"] is None:
        return "n/a"
    return f"{figure['mean']:.4f} [{figure['low']:.4f}, {figure['high']:.4f}]"


def summary_rows(metrics: dict) -> Iterator[tuple[str, str, str, list[str]]]:
    """(role, evaluator, metric, one 'mean [low, high]' cell per weight) for every pooled figure."""
    for role, evaluators in metrics["summary"].items():
        for name, by_metric in evaluators.items():
            for metric, by_weight in by_metric.items():
                yield role, name, metric, [fmt(by_weight[w]) for w in metrics["weights"]]


def series(metrics: dict) -> dict[tuple[str, str], dict[str, list]]:
    """(evaluator, metric) -> role -> [(weight, mean, low, high)] for the plots (undefined means left out)."""
    plots: dict[tuple[str, str], dict[str, list]] = {}
    for role, evaluators in metrics["summary"].items():
        for name, by_metric in evaluators.items():
            for metric, by_weight in by_metric.items():
                points = [(float(w), f["mean"], f["low"], f["high"]) for w, f in by_weight.items() if f["mean"] is not None]
                plots.setdefault((name, metric), {})[role] = points
    return plots


def settings_rows(metrics: dict) -> list[tuple[str, str]]:
    spec = metrics["spec"]
    rows = [(key, str(metrics[key])) for key in ("model", "slider", "host") if key in metrics]
    rows += [(key, str(spec[key])) for key in ("sampler", "scheduler", "steps", "cfg", "width", "height", "negative_prompt")]
    rows += [("weights", ", ".join(metrics["weights"])), ("seeds", ", ".join(str(s) for s in metrics["seeds"]))]
    rows += [(f"evaluator {name}", ", ".join(f"{k}={v}" for k, v in settings.items()) or "defaults")
             for name, settings in spec["evaluators"].items()]
    return rows
