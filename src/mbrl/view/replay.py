"""Replays: a finished run's MCAP episodes drawn by the live view's Scene, one after another.

Episodes come from `<run>/collector/episodes/` (the graph's own recording, position
commands) or, when there is none, `<run>/episodes/` (the report every run writes); a
directory of episodes or a single .mcap file works too. On the scene's timeline the episodes
follow each other with a gap of GAP seconds, each starting where its own first stamp is.
What the files hold is drawn: the arm at every recorded joint state, goal, cube, the path the
end effector took, and the commanded end-effector target where commands are joint
positions. Plans are not drawn: no node records them to disk (the live view shows them).
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from mbrl.data.episodes import Episode, EpisodeFileError, read_episode

GAP = 1.0  # s between episodes on the replay timeline


def episode_files(source: str | Path) -> list[Path]:
    """The .mcap files to replay for a run directory, an episode directory or one file.

    Raises FileNotFoundError naming the path and the places looked in.
    """
    source = Path(source)
    if source.is_file():
        return [source]
    for folder in (source / "collector" / "episodes", source / "episodes", source):
        files = sorted(folder.glob("*.mcap"))
        if files:
            return files
    raise FileNotFoundError(
        f"no MCAP episodes for {source}: looked in {source}/collector/episodes, "
        f"{source}/episodes and {source}"
    )


def replay(source: str | Path, scene) -> dict:
    """Draw every episode of `source` into `scene` (a mbrl.view.scene.Scene).

    Returns {"episodes": [(file name, joint states drawn)], "end_time": s, "skipped": [...]}:
    unreadable files are skipped with their error, never fatal for the others.
    """
    t0 = 0.0
    drawn, skipped = [], []
    for path in episode_files(source):
        try:
            episode = read_episode(path)
        except EpisodeFileError as exc:
            skipped.append(f"{path.name}: {exc}")
            scene.text(f"skipped {path.name}: {exc}", level="WARN")
            continue
        t0 = _draw_episode(scene, episode, t0) + GAP
        drawn.append((path.name, len(episode.state_stamps)))
    metrics = Path(source) / "metrics.csv"
    if metrics.is_file():
        _draw_metrics(scene, metrics)
    return {"episodes": drawn, "end_time": max(t0 - GAP, 0.0), "skipped": skipped}


def _draw_episode(scene, episode: Episode, t0: float) -> float:
    """Draws one episode starting at t0 on the timeline; returns its last time."""
    stamps = [episode.state_stamps, episode.command_stamps, episode.goal_stamps]
    first = min((float(s[0]) for s in stamps if len(s)), default=0.0)
    meta = episode.metadata
    scene.set_time(t0)
    episode_id = meta.get("episode_id", meta.get("episode", "?"))
    # Loop reports record normalised increments, not joint positions: no FK target for those.
    positions = "increment" not in meta.get("command_units", "")
    scene.text(
        f"episode {episode_id} ({meta.get('mode', meta.get('task', ''))}): "
        f"{len(episode.state_stamps)} joint states, {len(episode.commands)} commands"
        + ("" if episode.complete else " (file cut short)")
    )
    goal_i, command_i, object_i = 0, 0, 0
    trail: list[np.ndarray] = []
    last = t0
    for i, stamp in enumerate(episode.state_stamps):
        last = t0 + float(stamp) - first
        scene.set_time(last)
        while goal_i < len(episode.goal_stamps) and episode.goal_stamps[goal_i] <= stamp:
            scene.goal_point(episode.goals[goal_i])
            goal_i += 1
        while object_i < len(episode.object_stamps) and episode.object_stamps[object_i] <= stamp:
            pose = episode.object_poses[object_i]  # push task: the cube, (x, y, z, qx, qy, qz, qw)
            scene.cube(pose[:3], pose[3:])
            object_i += 1
        while (
            command_i < len(episode.command_stamps) and episode.command_stamps[command_i] <= stamp
        ):
            if positions:
                target = dict(zip(episode.joint_names, episode.commands[command_i], strict=True))
                scene.target(scene.chain.ee_position(target))
            command_i += 1
        trail.append(scene.arm(episode.joint_names, episode.positions[i]))
        scene.trail(np.array(trail))
    for command in (
        episode.commands[command_i:] if positions else ()
    ):  # sent after the last recorded state
        scene.target(scene.chain.ee_position(dict(zip(episode.joint_names, command, strict=True))))
    return last


def _draw_metrics(scene, path: Path) -> None:
    """The run's evaluation rows (metrics.csv) as log lines at the end of the replay."""
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            text = ", ".join(f"{k} {v}" for k, v in row.items() if v not in ("", None))
            scene.text(f"evaluation: {text}")
