"""The mpc_controller node's work beside the tick: receiving models (decode, verify, load,
warm up: another callback group, off the tick path), the lqr replanner thread, and what is
published after a command is out (rviz plan, /diagnostics, standalone episodes).

A mixin of mbrl.ros.mpc_controller.MpcController, split from it at that seam; it uses the
node's attributes documented there.
"""

from __future__ import annotations

import time

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from std_msgs.msg import UInt8MultiArray

from mbrl.agents import registry as agents
from mbrl.agents.mpc import pending_in_obs
from mbrl.costs.tasks import observation
from mbrl.ros import status as mbrl_status
from mbrl.ros.controller_core import ActorBundle
from mbrl.ros.controller_support import check_model_payload
from mbrl.ros.msgs import episode_event_msg, point_stamped_msg
from mbrl.ros.status import ControllerStatus
from mbrl.ros.transport import MODEL_TOPIC, decode_model_msg, load_model_bytes
from mbrl.ros.viz import plan_markers, plan_path


class OffTickWork:
    """Model receipt, lqr replanning, rviz, diagnostics and standalone episodes."""

    def _warm_up(self, bundle: ActorBundle) -> None:
        """Plan a few times without a deadline so the mpc planner learns its iteration time
        (the first calls pay for torch's lazy initialisation) before the first deadline,
        from the latest good joint state (else mid-range) and cube pose (else the arm's
        base). (iLQR runs without a deadline in its own thread: nothing to learn there.)"""
        status = self.watchdog.status(time.perf_counter())
        q = status.q if status.q is not None else np.mean(self._limits, axis=0)
        qdot = status.qdot if status.qdot is not None else np.zeros_like(q)
        obs = self.observation(q, qdot)
        if obs is None:  # no goal or cube yet: any point will do for timing
            goal = np.zeros(3) if self._goal is None else self._goal
            pending = np.zeros_like(q) if pending_in_obs(self.params) else None
            obs = observation(
                self.task, q, qdot, self.arm.ee(q), goal, np.zeros(3), 0.0, np.zeros(4),
                pending=pending,
            )  # fmt: skip
        bundle.actor.warmup(obs)
        if self._goal is not None:
            bundle.set_goal(self._goal)

    def _make_bundle(self, artifact, version: int, kind: str) -> ActorBundle:
        """The agent's actor on `artifact` (the same actor `mbrl experiment` runs; an MPC
        actor is asked to keep its nominal rollout for rviz)."""
        actor = agents.make_actor(
            self.cfg.agent.algo, self.task, self.arm, artifact, self.params, self.cfg.seed,
            stream=version, planner_overrides={"nominal_rollout": True},
        )  # fmt: skip
        return ActorBundle(actor, version, kind, self.cfg)

    def _on_model(self, msg: UInt8MultiArray) -> None:
        """Decode, hash-check, load and warm up a model here, off the tick path."""
        try:
            payload = decode_model_msg(msg)
            check_model_payload(payload, self.agent.artifact, self.expected_layout())
            model = load_model_bytes(payload, self._data_dir)
            self.check_model(payload, model)  # the model gate (mbrl.ros.model_gate)
            bundle = self._make_bundle(model, payload.version, payload.kind)
            self._warm_up(bundle)
        except Exception as exc:  # noqa: BLE001 - TransportError, ModelFileError, any other
            self.stats.rejected_models += 1
            self.stats.last_reject = str(exc)
            self.get_logger().error(
                f"rejected model from {MODEL_TOPIC}: {exc}; keeping model version "
                f"{self.model_version}"
            )
            return
        with self._lock:
            self._pending = bundle
        self.get_logger().info(f"model version {payload.version} loaded; swapping at next tick")

    def expected_layout(self) -> dict:
        """What an artifact's inputs and outputs must mean for this controller (the fitter
        sends its own; both come from mbrl.agents.registry.artifact_layout)."""
        return agents.artifact_layout(self.cfg.agent.algo, self.task, self.arm, self.params)

    def _lqr_action(self, bundle: ActorBundle, x: np.ndarray):
        """Mode lqr: u = u_t + K_t (x - x_t) of the latest iLQR plan, t ticks after it was
        made (the time-varying linear feedback of GPS, Levine & Abbeel 2014, sec. 3). The
        plan comes from _replan_lqr in another thread; a tick only evaluates the law."""
        with self._lock:
            found = self._lqr_plan
        if found is None or found[1] != bundle.version:
            return None, None  # no plan for this model yet: hold
        plan, version, made_at = found
        t = self.stats.ticks - made_at
        if t >= plan.horizon or plan.K is None or plan.states is None:
            self.stats.misses += 1  # the replanner fell a whole horizon behind: hold
            return None, None
        u = plan.actions[t] + plan.K[t] @ (x - plan.states[t])
        return np.clip(u, -1.0, 1.0), plan

    def _replan_lqr(self) -> None:
        """iLQR from the newest good state (own thread); the tick applies its feedback."""
        status = self.watchdog.status(time.perf_counter())
        if self.mode != "lqr" or not self.enabled or not status.ok or self.bundle is None:
            return
        if self.bundle.lqr is None:
            return  # a policy has no model to linearise: mode lqr holds (_lqr_action)
        obs = self.observation(status.q, status.qdot)
        if obs is None:
            return
        bundle, made_at = self.bundle, self.stats.ticks
        plan = bundle.lqr.warmup(bundle.actor.state(obs))
        with self._lock:
            self._lqr_plan = (plan, bundle.version, made_at)

    def _after_tick(self, plan) -> None:
        """Work after the command is out (not in the latency): rviz, standalone episodes."""
        cfg = self.cfg
        if (
            plan is not None
            and plan.states is not None
            and cfg.viz_every
            and self.stats.ticks % cfg.viz_every == 0
        ):
            stamp = self.get_clock().now().to_msg()
            actor = self.bundle.actor
            points = actor.ee_points(plan.states)
            spread = actor.ee_spread(plan.states, plan.actions)
            self._marker_pub.publish(plan_markers(points, spread, actor.goal, cfg.frame_id, stamp))
            self._path_pub.publish(plan_path(points, cfg.frame_id, stamp))
        if cfg.standalone:
            self._standalone_schedule()

    def _standalone_schedule(self) -> None:
        for event, episode_id in self._episodes.step():
            goal = None
            if event == "start":  # a new reachable goal: the shared task sampler's
                goal = self.arm.sampler(self.task).draw(self._rng).goal
                stamp = self.get_clock().now().to_msg()
                self._goal_pub.publish(point_stamped_msg(goal, self.cfg.frame_id, stamp))
                self._set_goal(goal)
            self._episode_pub.publish(episode_event_msg(
                event, episode_id, self.task, self.mode, goal, self.cfg.frame_id
            ))  # fmt: skip

    # -- diagnostics ----------------------------------------------------------------------
    def diagnostic_values(self) -> dict[str, str]:
        """The key/values of this node's /diagnostics status."""
        return {
            "mode": self.mode,
            "enabled": str(self.enabled),
            "safety": self._safety.state,
            "safety_detail": self._safety.detail,
            **self.stats.values(),
            "model_version": str(self.model_version),
            "model_kind": self.bundle.kind if self.bundle is not None else "none",
            "artifact": "running" if self.bundle is not None else self._artifact_note,
            "period_ms": f"{self.cfg.period * 1e3:.3f}",
            **self.gate.values(),
        }

    def _publish_status(self) -> None:
        """The typed status the experiment waits on (latched; on each change and timer)."""
        status = ControllerStatus(
            self.model_version, self.mode, self.enabled, self.stats.ticks,
            self.gate.refused_version,
        )  # fmt: skip
        self._status_pub.publish(mbrl_status.encode("mpc_controller", status))

    def _publish_diagnostics(self) -> None:
        self._publish_status()
        status = DiagnosticStatus(name="mbrl/mpc_controller", hardware_id="mbrl")
        values = self.diagnostic_values()
        if not self.enabled:
            status.level, status.message = DiagnosticStatus.WARN, "disabled"
        elif not self._safety.ok:
            status.level = DiagnosticStatus.WARN
            status.message = f"holding: {self._safety.state}: {self._safety.detail}"
        else:
            status.level, status.message = DiagnosticStatus.OK, f"running ({self.mode})"
        status.values = [KeyValue(key=k, value=v) for k, v in values.items()]
        array = DiagnosticArray(status=[status])
        array.header.stamp = self.get_clock().now().to_msg()
        self._diag_pub.publish(array)
