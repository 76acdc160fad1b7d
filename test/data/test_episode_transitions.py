"""Episode arrays -> (x, u, x'): state sampled at each command tick, cut at gaps and bad states."""

from __future__ import annotations

import numpy as np
import pytest

from mbrl.data.episode_transitions import (
    TransitionLayout,
    episode_segments,
    equal_length_trajectories,
    transitions_from_episodes,
)
from mbrl.data.episodes import Episode, EpisodeWriter, read_episode

NAMES = ("a", "b", "c")
PERIOD = 0.05


def _record(path, steps=20, rng=None, skip_states=(), pause_after=None, order=NAMES):
    """A servo q' = q + 0.5 (c - q) driven by random commands; states stamped at k*PERIOD,
    the command of tick k 1 ms after its state. Returns (q (steps+1, nj), c (steps, nj))."""
    rng = rng or np.random.default_rng(0)
    q = np.zeros((steps + 1, 3))
    q[0] = rng.uniform(-1, 1, 3)
    c = q[0] + np.cumsum(rng.uniform(-0.1, 0.1, (steps, 3)), axis=0)
    for k in range(steps):
        q[k + 1] = q[k] + 0.5 * (c[k] - q[k])
    perm = [NAMES.index(n) for n in order]
    with EpisodeWriter(path, order) as w:
        t = 0.0
        for k in range(steps + 1):
            if k not in skip_states:
                w.write_joint_state(t, q[k][perm], 2 * q[k][perm])
            if k < steps:
                w.write_command(t + 0.001, c[k][perm])
            if k == pause_after:  # the arm keeps publishing while the controller pauses
                for _ in range(20):
                    t += PERIOD
                    w.write_joint_state(t, q[k][perm], 2 * q[k][perm])
            t += PERIOD
    return q, c


def test_state_sampled_at_each_command_tick(tmp_path) -> None:
    q, c = _record(tmp_path / "e.mcap")
    ep = read_episode(tmp_path / "e.mcap")
    layout = TransitionLayout(NAMES, state="q_qd", action="increment", max_increment=0.1)
    [(X, U)] = episode_segments(ep, layout)
    np.testing.assert_allclose(X, np.hstack([q, 2 * q]), atol=1e-12)
    previous = np.vstack([q[:1], c[:-1]])
    np.testing.assert_allclose(U, (c - previous) / 0.1, atol=1e-12)
    ds = transitions_from_episodes([ep, ep], layout, first_id=5)
    assert (len(ds), ds.dx, ds.du) == (40, 6, 3)
    assert set(ds.episode_ids) == {5, 6}
    np.testing.assert_allclose(ds.next_obs[:20, :3], q[1:], atol=1e-12)


def test_action_encodings_and_state_q(tmp_path) -> None:
    q, c = _record(tmp_path / "e.mcap")
    ep = read_episode(tmp_path / "e.mcap")
    [(X, U)] = episode_segments(ep, TransitionLayout(NAMES, state="q", action="position"))
    np.testing.assert_allclose(X, q, atol=1e-12)
    np.testing.assert_allclose(U, c, atol=1e-12)
    layout = TransitionLayout(NAMES, state="q", action="relative", max_increment=0.2)
    [(_, U)] = episode_segments(ep, layout)
    np.testing.assert_allclose(U, (c - q[:-1]) / 0.2, atol=1e-12)


def test_joints_matched_by_name(tmp_path) -> None:
    q, _ = _record(tmp_path / "e.mcap", order=("c", "a", "b"))
    ep = read_episode(tmp_path / "e.mcap")
    [(X, _)] = episode_segments(ep, TransitionLayout(NAMES, state="q"))
    np.testing.assert_allclose(X, q, atol=1e-12)
    with pytest.raises(ValueError, match=r"joint\(s\) \['wrist'\] not recorded"):
        episode_segments(ep, TransitionLayout(("a", "wrist"), state="q"))


def test_cut_at_pause_and_at_stale_or_nan_state(tmp_path) -> None:
    _record(tmp_path / "pause.mcap", pause_after=9)
    ep = read_episode(tmp_path / "pause.mcap")
    layout = TransitionLayout(NAMES, state="q")
    # the transition spanning the 1 s pause is dropped: ticks 0..9 and 10..19
    assert [len(u) for _, u in episode_segments(ep, layout)] == [9, 10]

    _record(tmp_path / "stale.mcap", skip_states=(12,))
    ep = read_episode(tmp_path / "stale.mcap")
    # no fresh state at tick 12: transitions 11->12 and 12->13 cannot be formed
    assert [len(u) for _, u in episode_segments(ep, layout)] == [11, 7]

    ep.positions[5, 1] = np.nan  # transitions 4->5 and 5->6 go as well
    assert [len(u) for _, u in episode_segments(ep, layout)] == [4, 5, 7]


def test_no_transitions_is_a_clear_error() -> None:
    empty = Episode(
        NAMES,
        np.zeros(0),
        np.zeros((0, 3)),
        np.zeros((0, 3)),
        np.zeros(1),
        np.zeros((1, 3)),
        np.zeros(0),
        np.zeros((0, 3)),
        {},
    )
    assert episode_segments(empty, TransitionLayout(NAMES)) == []
    with pytest.raises(ValueError, match="no transitions in 1 episode"):
        transitions_from_episodes([empty], TransitionLayout(NAMES))
    with pytest.raises(ValueError, match="state 'pose'"):
        TransitionLayout(NAMES, state="pose")


def test_equal_length_trajectories(tmp_path) -> None:
    for name, steps in (("a", 20), ("b", 15), ("c", 3)):
        _record(tmp_path / f"{name}.mcap", steps=steps)
    eps = [read_episode(tmp_path / f"{n}.mcap") for n in "abc"]
    ds = transitions_from_episodes(eps, TransitionLayout(NAMES, state="q"))
    X, U = equal_length_trajectories(ds, min_length=10)
    assert X.shape == (2, 16, 3) and U.shape == (2, 15, 3)
    assert equal_length_trajectories(ds, min_length=16) is None


def test_lockstep_irregular_intervals_are_not_pauses(tmp_path) -> None:
    """Lockstep: wall-clock intervals vary 16x, but one state follows each command."""
    rng = np.random.default_rng(2)
    q = rng.uniform(-1, 1, (31, 3))
    c = rng.uniform(-1, 1, (30, 3))
    with EpisodeWriter(tmp_path / "l.mcap", NAMES) as w:
        t = 0.0
        for k in range(31):
            w.write_joint_state(t, q[k], q[k])
            if k == 15:  # an idle republication of the same state (the sim does that)
                w.write_joint_state(t + 1e-4, q[k], q[k])
            if k < 30:
                w.write_command(t + 2e-4, c[k])
            t += rng.choice([5e-4, 1e-3, 8e-3])
    ep = read_episode(tmp_path / "l.mcap")
    [(X, U)] = episode_segments(ep, TransitionLayout(NAMES, state="q", action="position"))
    np.testing.assert_allclose(X, q, atol=1e-12)
    np.testing.assert_allclose(U, c, atol=1e-12)
