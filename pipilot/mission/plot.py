"""Plot a flown mission: the trajectory and the setpoints over time (SVG/PNG/PDF)."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

from pipilot.errors import ConfigError
from pipilot.mission.events import EventKind, MissionEvent


def plot_mission(samples: list[dict[str, float]], events: list[MissionEvent], out: str | Path, *,
                 title: str = "mission") -> Path:
    """Trajectory (when there is ground truth), sticks, and drift trims with speed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(out)
    if path.suffix.lower() not in (".svg", ".png", ".pdf"):
        raise ConfigError("--plot", "the file name must end in .svg, .png or .pdf")
    truth = [r for r in samples if "north" in r]
    fig = plt.figure(figsize=(13, 7))
    grid = fig.add_gridspec(2, 2, width_ratios=(1, 1.6))
    ax_traj = fig.add_subplot(grid[:, 0])
    ax_sticks = fig.add_subplot(grid[0, 1])
    ax_trim = fig.add_subplot(grid[1, 1], sharex=ax_sticks)

    if truth:
        ax_traj.plot([r["east"] for r in truth], [r["north"] for r in truth], lw=1.2)
        ax_traj.plot([truth[0]["east"]], [truth[0]["north"]], "go", label="start")
        ax_traj.plot([truth[-1]["east"]], [truth[-1]["north"]], "rs", label="end")
        ax_traj.set_aspect("equal", adjustable="datalim")
        ax_traj.legend()
    else:
        ax_traj.text(0.5, 0.5, "no ground truth (real flight)", ha="center",
                     transform=ax_traj.transAxes)
    ax_traj.set_xlabel("east (m)")
    ax_traj.set_ylabel("north (m)")
    ax_traj.set_title("ground-truth trajectory")
    ax_traj.grid(True, alpha=0.3)

    t = [r["t"] for r in samples]

    def series(key: str) -> list[float]:
        return [r.get(key, math.nan) for r in samples]

    for key, label in (("throttle", "throttle"), ("roll", "roll"), ("pitch", "pitch"),
                       ("yaw", "yaw")):
        ax_sticks.plot(t, series(key), label=label, lw=1)
    ax_sticks.set_ylabel("mission setpoint (stick units)")
    ax_sticks.legend(loc="upper right", fontsize=8)
    ax_sticks.grid(True, alpha=0.3)

    ax_trim.plot(t, series("trim_roll_deg"), label="drift trim roll (deg)", lw=1)
    ax_trim.plot(t, series("trim_pitch_deg"), label="drift trim pitch (deg)", lw=1)
    ax_trim.set_ylabel("trim (deg)")
    ax_trim.set_xlabel("mission time (s)")
    ax_trim.grid(True, alpha=0.3)
    if len(truth) > 1:
        ax_speed = ax_trim.twinx()
        ts = [b["t"] for b in truth[1:]]
        speed = [math.hypot(b["north"] - a["north"], b["east"] - a["east"]) / (b["t"] - a["t"])
                 if b["t"] > a["t"] else math.nan for a, b in itertools.pairwise(truth)]
        ax_speed.plot(ts, speed, color="grey", lw=0.8, alpha=0.7, label="true speed (m/s)")
        ax_speed.set_ylabel("horizontal speed (m/s)")
        ax_speed.legend(loc="lower right", fontsize=8)
    ax_trim.legend(loc="upper right", fontsize=8)

    for ev in events:
        if ev.kind is EventKind.STEP_STARTED and ev.action is not None:
            for ax in (ax_sticks, ax_trim):
                ax.axvline(ev.t, color="grey", alpha=0.3)
            ax_sticks.text(ev.t, 1.01, ev.action, rotation=90, fontsize=7, va="bottom",
                           transform=ax_sticks.get_xaxis_transform())
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
