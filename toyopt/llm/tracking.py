"""Experiment trackers (``--report-to``): every metrics row of a run, also sent to TensorBoard
and/or Trackio, as TRL's ``report_to`` does.

Each tracker's library is imported only when a run asks for it (the ``track`` extra installs
both), only on the main process, and both write locally: TensorBoard event files under
``RUN_DIR/tensorboard/``, Trackio's SQLite database under ``$TRACKIO_DIR`` (Trackio's default,
``~/.cache/huggingface/trackio``), project ``$TRACKIO_PROJECT`` or ``toyopt``. Nothing is sent
over the network unless Trackio's own ``TRACKIO_SPACE_ID``/``TRACKIO_SERVER_URL`` say so.

What is logged, at the row's ``step``:

- step rows as ``train/loss_sft``, ``train/loss_dpo``, ``train/value_*`` (MAXRIGHT), ``train/lr``,
  ``train/step_seconds``, ``train/wall_time``, and the objective the rule chose as
  ``train/on_sft`` and ``train/on_dpo`` (1 when the step took that objective's gradient; a Mix
  step takes both); a run with K sources logs ``loss_NAME``, ``on_NAME``, ``eval/NAME`` and
  ``gap_NAME`` per objective, and ``f_mix`` = Σ_k λ_k f_k;
- evaluation rows as ``eval/sft``, ``eval/dpo``, ``eval/f_mix`` (λ·f_dpo + (1 − λ)·f_sft) and,
  when the run has optima (``--optima``; a sweep always has), ``eval/gap_sft``, ``eval/gap_dpo``
  and ``eval/ideal_distance`` (as the sweep's table computes them), with the memory columns;
- once, the run's name (its directory), the resolved config and the provenance record
  (:mod:`toyopt.provenance`).
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import math
import os
import sys
from pathlib import Path

from toyopt.rules import two_weights

TRACKERS = {"tensorboard": "tensorboard", "trackio": "trackio"}  # name -> the module it needs


def parse(spec: str) -> list[str]:
    """``--report-to``: ``none``, a tracker, or a comma list of trackers; checked, not imported."""
    names = [s.strip() for s in str(spec).split(",") if s.strip()]
    for name in names:
        if name != "none" and name not in TRACKERS:
            raise ValueError(
                f"--report-to: unknown tracker {name!r}; choose none, {', '.join(TRACKERS)}"
            )
    if "none" in names and len(names) > 1:
        raise ValueError(f"--report-to {spec!r}: 'none' cannot be combined with a tracker")
    if not names:
        raise ValueError("--report-to: give none, or one or more of " + ", ".join(TRACKERS))
    for name in names:
        if name != "none" and importlib.util.find_spec(TRACKERS[name]) is None:
            raise ValueError(
                f"--report-to {name}: the {name} package is not installed"
                ' (pip install -e ".[track]")'
            )
    return [n for n in names if n != "none"]


def ideal_point(spec: str, names=("sft", "dpo")) -> dict[str, float] | None:
    """The reference point of the gaps: the optima file's held-out values (``eval_sft``,
    ``eval_dpo``, as the sweep's table uses) where it has them, else its ``sft``/``dpo`` (for K
    sources: per objective name); zero for ``zero``; None without optima."""
    if not spec:
        return None
    if spec == "zero":
        return dict.fromkeys(names, 0.0)
    data = json.loads(Path(spec).read_text())
    return {k: float(data.get(f"eval_{k}", data[k])) for k in names}


def scalars(row: dict, lam, ideal: dict[str, float] | None) -> dict[str, float]:
    """A metrics row as tracker scalars (see the module docstring for the names); ``lam`` is λ
    (the weight of dpo) or the weights of K named objectives."""
    weights = lam if isinstance(lam, dict) else two_weights(lam)
    if "objective" in row:  # a step row
        out = {f"train/{k}": float(v) for k, v in row.items() if k not in ("step", "objective")}
        for k in weights:
            out[f"train/on_{k}"] = float(row["objective"] in (k, "mix"))
        return out
    out = {f"eval/{k.removeprefix('eval_')}": float(v) for k, v in row.items() if k != "step"}
    out["eval/f_mix"] = sum(w * row[f"eval_{k}"] for k, w in reversed(weights.items()))
    if ideal is not None:
        gaps = {k: row[f"eval_{k}"] - ideal[k] for k in weights}
        out.update({f"eval/gap_{k}": g for k, g in gaps.items()})
        out["eval/ideal_distance"] = math.hypot(*gaps.values())
    return out


class TensorBoard:
    """Event files under ``RUN_DIR/tensorboard`` (``tensorboard --logdir RUN_DIR``, or a sweep's
    directory to see its runs side by side). On resume, events from the checkpoint's step on are
    purged, as the metrics log is cut back there."""

    def __init__(self, run_dir: Path, name: str, config: dict, start: int):
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(str(run_dir / "tensorboard"), purge_step=start or None)
        if not start:
            self.writer.add_text("run", name, 0)
            self.writer.add_text("config", "```\n" + json.dumps(config, indent=1) + "\n```", 0)

    def log(self, values: dict[str, float], step: int) -> None:
        for k, v in values.items():
            self.writer.add_scalar(k, v, step)

    def close(self) -> None:
        self.writer.close()


class Trackio:
    """A Trackio run named after the run directory (resumed, not duplicated, on ``--resume``).
    Trackio's own messages go to stderr: stdout stays the command's result."""

    def __init__(self, run_dir: Path, name: str, config: dict, start: int):
        with contextlib.redirect_stdout(sys.stderr):
            import trackio

            self.run = trackio.init(
                project=os.environ.get("TRACKIO_PROJECT", "toyopt"), name=name, config=config,
                resume="allow" if start else "never", embed=False, auto_log_cpu=False,
                auto_log_gpu=False,
            )  # fmt: skip

    def log(self, values: dict[str, float], step: int) -> None:
        self.run.log(values, step=step)

    def close(self) -> None:
        import trackio

        with contextlib.redirect_stdout(sys.stderr):  # the module's finish: its run, and no
            trackio.finish()  # second finish (and message) at exit


KINDS = {"tensorboard": TensorBoard, "trackio": Trackio}


class Trackers:
    """The trackers a run reports to; with none, every call does nothing."""

    def __init__(self, trackers: list | None = None, lam: float | dict = 0.5, ideal=None):
        self.open, self.lam, self.ideal = list(trackers or []), lam, ideal

    def log(self, row: dict) -> None:
        """Send one metrics row (a step row or an evaluation row) to every tracker."""
        if self.open:
            values = scalars(row, self.lam, self.ideal)
            for tracker in self.open:
                tracker.log(values, row["step"])

    def close(self) -> None:
        while self.open:
            self.open.pop().close()


def start(cfg, run_dir: Path, step: int = 0) -> Trackers:
    """Open the trackers ``cfg.report_to`` names for the run in ``run_dir``, which starts (or
    resumes) at ``step``; the config they record carries the provenance record. Importing a
    tracker's library happens here, and only for the trackers asked for."""
    names = parse(cfg.report_to)
    if not names:
        return Trackers()
    from toyopt.provenance import provenance

    config = {**cfg.to_dict(), "provenance": provenance(cfg.threads or None)}
    name = str(Path(cfg.output_dir))
    from toyopt.llm import objectives

    opened = Trackers([], objectives.weights(cfg), ideal_point(cfg.optima, objectives.names(cfg)))
    try:
        for n in names:
            opened.open.append(KINDS[n](run_dir, name, config, step))
    except BaseException:
        opened.close()
        raise
    return opened
