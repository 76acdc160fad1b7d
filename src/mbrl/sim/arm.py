"""A PyBullet arm with hobby-servo-like joint position control, one physics client per arm.

Every call goes through the arm's own `PhysicsClient`, so many arms (planners, tests) coexist in
one process. The scene is a static table whose top is the plane z = 0, the arm fixed on it, and
optionally a cube for pushing.
"""

from __future__ import annotations

import collections
import dataclasses
import itertools

import numpy as np
import pybullet
import pybullet_data

from mbrl.config import ArmConfig, ConfigError
from mbrl.costs.tasks import CUBE_SIZE
from mbrl.sim import collision
from mbrl.sim.client import PhysicsClient
from mbrl.sim.urdf import joint_limits, read_tables, resolve_urdf

CUBE_MASS = 0.04  # kg, a 4 cm cube of wood / PLA infill


@dataclasses.dataclass
class _ServoState:
    """The Python-side state that PyBullet's saveState does not hold."""

    commanded: np.ndarray  # (nj,) last clamped command, rad
    applied: np.ndarray  # (nj,) target after latency and backlash, rad
    fifo: collections.deque  # commands waiting for the latency to elapse
    reading: np.ndarray  # (nj,) this tick's measured positions, rad (noise, counts, drops)
    speed: np.ndarray  # (nj,) this tick's measured velocities, rad/s (servo.velocity)
    read_time: float  # when `reading` was last read successfully, s
    time: float
    rng_state: dict
    substep: int = 0  # physics steps since construction (time = substep / physics rate)

    def copy(self) -> _ServoState:
        return dataclasses.replace(
            self,
            commanded=self.commanded.copy(),
            applied=self.applied.copy(),
            fifo=collections.deque(a.copy() for a in self.fifo),
            reading=self.reading.copy(),
            speed=self.speed.copy(),
            rng_state=dict(self.rng_state),
        )


class SimArm:
    """A PyBullet arm (own physics client, DIRECT by default) with servo-like position control.

    Servo model (per control tick, applied in `step`; docs/sim.md): the last command passes
    through a FIFO of `servo.latency_ticks` ticks, then a backlash dead band of width
    `servo.backlash` (the drive target moves only once the command leaves the band), then
    the drive: PyBullet POSITION_CONTROL with force = torque limit and maxVelocity =
    velocity limit (`servo.drive` "position"), or the SO-101 MJCF's position actuator as an
    explicit torque every physics step ("pd"). Each tick's reading is taken once: Gaussian
    noise (`servo.noise_std`) from a seeded Generator, rounded to the encoder's counts
    (`servo.resolution`), lost with probability `servo.read_drop` (the previous reading
    repeats); velocities are the simulator's or differences of readings (`servo.velocity`).
    All servo effects are off by default (the "ideal" profile).

    Attributes:
        joint_names: controlled joints in controller order (nj of them).
        lower, upper: (nj,) position limits, rad. velocity_limit: (nj,) rad/s.
        effort_limit: (nj,) N m. home: (nj,) reset configuration, rad.
        time: simulated seconds since construction.
        urdf_path / urdf_text: the resolved URDF file and its XML.
        reach: rough reach of the arm, m (sum of link offsets from the first controlled joint).
    """

    def __init__(
        self,
        config: ArmConfig = ArmConfig(),  # noqa: B008 - frozen dataclass, safe as default
        *,
        gui: bool = False,
        with_cube: bool = False,
        seed: int | None = None,
    ) -> None:
        self.config = config
        self.joint_names: tuple[str, ...] = tuple(config.joint_names)
        self.urdf_path = str(resolve_urdf(config.urdf))
        with open(self.urdf_path, encoding="utf-8") as f:
            self.urdf_text = f.read()
        mode = pybullet.GUI if gui else pybullet.DIRECT
        self.client = PhysicsClient(mode)
        self._closed = False
        c = self.client
        c.setAdditionalSearchPath(pybullet_data.getDataPath())
        c.setGravity(0, 0, -9.81)
        c.setTimeStep(1.0 / config.physics_rate_hz)
        c.setPhysicsEngineParameter(deterministicOverlappingPairs=1)
        self.body = c.loadURDF(
            self.urdf_path,
            basePosition=config.base_position,
            useFixedBase=True,
            flags=c.URDF_USE_INERTIA_FROM_FILE,
        )
        tables = read_tables(c, self.body)
        limits = joint_limits(config, tables, config.urdf)
        self.lower, self.upper = limits.lower, limits.upper
        self.velocity_limit, self.effort_limit = limits.velocity, limits.effort
        self._joint_ids = [tables.joints[n] for n in self.joint_names]
        if config.ee_link not in tables.links:
            raise ConfigError(
                f"arm.ee_link {config.ee_link!r} is not a link of {config.urdf}; "
                f"links there: {sorted(tables.links)}"
            )
        self.ee_link_index = tables.links[config.ee_link]
        bad = [g for g in config.gripper_joints if g not in tables.urdf_limits]
        if bad:
            raise ConfigError(
                f"arm.gripper_joints {bad} are not movable joints of {config.urdf}; "
                f"movable joints there: {sorted(tables.urdf_limits)}"
            )
        # Grippers are held closed (0 clamped into range): the tasks push, they do not grasp.
        self._gripper = [
            (
                tables.joints[g],
                float(np.clip(0.0, *tables.urdf_limits[g][:2])),
                tables.urdf_limits[g][2],
            )
            for g in config.gripper_joints
        ]
        self.home = np.asarray(config.home, float) if config.home else (self.lower + self.upper) / 2
        outside = (self.home < self.lower) | (self.home > self.upper)
        if outside.any():
            names = [n for n, o in zip(self.joint_names, outside, strict=True) if o]
            raise ConfigError(
                f"arm.home {self.home.tolist()} is outside the limits for joints {names}; "
                f"lower {self.lower.tolist()}, upper {self.upper.tolist()}"
            )
        self._rng = np.random.default_rng(seed)
        nj = len(self.joint_names)
        self._servo = _ServoState(
            self.home.copy(), self.home.copy(), collections.deque(), self.home.copy(),
            np.zeros(nj), 0.0, 0.0, {},
        )  # fmt: skip
        if config.servo.drive == "pd":
            self._setup_pd_drive()
        self._saved: dict[int, _ServoState] = {}
        self.reset()
        self.reach = self._estimate_reach()
        self.table = self._make_table()
        self.cube = self._make_cube() if with_cube else None
        self._pairs = collision.checked_pairs(self.client, self.body)

    # ------------------------------------------------------------------ scene
    def _make_table(self) -> int:
        c = self.client
        half = (max(0.4, 1.5 * self.reach), max(0.4, 1.5 * self.reach), 0.02)
        shape = c.createCollisionShape(c.GEOM_BOX, halfExtents=half)
        visual = c.createVisualShape(c.GEOM_BOX, halfExtents=half, rgbaColor=(0.6, 0.45, 0.3, 1))
        # Top surface at z = 0 so heights are measured from the table.
        table = c.createMultiBody(0, shape, visual, basePosition=(0, 0, -half[2]))
        # Bullet multiplies the two bodies' friction coefficients: at its default 0.5 the table
        # would halve the cube's 0.5 and a pushed cube would slide ~10 cm after a 0.5 m/s hit.
        c.changeDynamics(table, -1, lateralFriction=1.0)
        return table

    def _make_cube(self) -> int:
        c = self.client
        half = (CUBE_SIZE / 2,) * 3
        shape = c.createCollisionShape(c.GEOM_BOX, halfExtents=half)
        visual = c.createVisualShape(c.GEOM_BOX, halfExtents=half, rgbaColor=(0.1, 0.4, 0.9, 1))
        cube = c.createMultiBody(CUBE_MASS, shape, visual, basePosition=(0.2, 0, CUBE_SIZE / 2))
        c.changeDynamics(cube, -1, lateralFriction=0.5)
        return cube

    def _estimate_reach(self) -> float:
        """Length of the link chain from the first controlled joint to the EE at home, m."""
        c, first = self.client, min(self._joint_ids)
        chain, link = [], self.ee_link_index
        while link >= first:
            chain.append(
                np.array(c.getLinkState(self.body, link, computeForwardKinematics=True)[4])
            )
            link = c.getJointInfo(self.body, link)[16]
        return float(sum(np.linalg.norm(a - b) for a, b in itertools.pairwise(chain)))

    # ------------------------------------------------------------------ control
    def _clamp(self, q: np.ndarray) -> np.ndarray:
        return np.clip(q, self.lower, self.upper)

    def _check(self, q, what: str) -> np.ndarray:
        q = np.asarray(q, dtype=float)
        if q.shape != (len(self.joint_names),):
            raise ValueError(
                f"{what} has shape {q.shape}; expected ({len(self.joint_names)},) "
                f"for joints {list(self.joint_names)}"
            )
        if not np.all(np.isfinite(q)):
            raise ValueError(f"{what} contains NaN/Inf: {q.tolist()}")
        return q

    def reset(self, q: np.ndarray | None = None) -> None:
        """Teleport the joints to `q` (nj,) rad (None -> home), at rest, and hold them there.

        Clears the latency FIFO and the backlash state; `time` keeps running.
        """
        q = self.home.copy() if q is None else self._clamp(self._check(q, "reset q"))
        c = self.client
        # A teleport must not inherit contact manifolds (cached impulses) from before: lift
        # the arm clear so a collision pass deletes them, then put it back.
        base = c.getBasePositionAndOrientation(self.body)
        c.resetBasePositionAndOrientation(self.body, (0, 0, 100), base[1])
        c.performCollisionDetection()
        c.resetBasePositionAndOrientation(self.body, *base)
        for j, value in zip(self._joint_ids, q, strict=True):
            c.resetJointState(self.body, j, float(value), 0.0)
        for j, value, force in self._gripper:
            c.resetJointState(self.body, j, value, 0.0)
            c.setJointMotorControl2(self.body, j, c.POSITION_CONTROL, value, force=force)
        s = self._servo
        s.commanded, s.applied = q.copy(), q.copy()
        s.fifo = collections.deque(q.copy() for _ in range(self.config.servo.latency_ticks))
        self._apply(q)
        self._read(at_rest=True)

    def set_position_targets(self, q: np.ndarray) -> np.ndarray:
        """Command joint positions `q` (nj,) rad; returns the target clamped to the limits.

        Takes effect at the next `step` (after the configured latency). Raises ValueError on
        a wrong length or NaN/Inf.
        """
        target = self._clamp(self._check(q, "position target"))
        self._servo.commanded = target
        return target.copy()

    def step(self, n_ticks: int = 1) -> None:
        """Advance `n_ticks` control periods (config.substeps physics steps each), taking a
        reading after each."""
        for _ in range(n_ticks):
            self.advance(self.config.substeps)

    def advance(self, substeps: int) -> None:
        """Advance `substeps` physics steps, then take a reading. The servo takes its next
        target (after latency and backlash) at each control-tick boundary whatever the
        chunking, so a driver reading the bus faster than the control rate (a 50 Hz
        joint_state_broadcaster: physics_rate / 50 substeps a call) sees the same motion
        as step()."""
        c, s, servo = self.client, self._servo, self.config.servo
        per_tick = self.config.substeps
        for _ in range(int(substeps)):
            if s.substep % per_tick == 0:
                target = s.commanded
                if servo.latency_ticks:
                    s.fifo.append(s.commanded.copy())
                    target = s.fifo.popleft()
                if servo.backlash > 0:
                    half = servo.backlash / 2
                    s.applied = np.clip(s.applied, target - half, target + half)
                else:
                    s.applied = target.copy()
                self._apply(s.applied)
            if servo.drive == "pd":
                self._pd_torques(s.applied)
            c.stepSimulation()
            s.substep += 1
        s.time = s.substep / self.config.physics_rate_hz
        self._read()

    def _setup_pd_drive(self) -> None:
        """Drive "pd": PyBullet's position motors off, Coulomb friction as a zero-velocity
        motor of force `servo.friction` (implicit, so it holds still without chatter), the
        rotor armature added to each link's inertia about its joint axis."""
        c, servo = self.client, self.config.servo
        for j in self._joint_ids:
            c.changeDynamics(self.body, j, jointDamping=0.0, linearDamping=0.0,
                             angularDamping=0.0)  # fmt: skip
            c.setJointMotorControl2(self.body, j, c.VELOCITY_CONTROL, targetVelocity=0.0,
                                    force=servo.friction)  # fmt: skip
            # The joint axis (in the link frame) expressed in the link's inertial frame: the
            # armature adds to the inertia about that axis (exact for principal axes, which
            # both bundled URDFs and the iiwa have).
            axis = np.asarray(c.getJointInfo(self.body, j)[13], float)
            info = c.getDynamicsInfo(self.body, j)
            rotation = np.asarray(c.getMatrixFromQuaternion(info[4]), float).reshape(3, 3)
            along = rotation.T @ axis
            diagonal = np.asarray(info[2], float) + servo.armature * along**2
            c.changeDynamics(self.body, j, localInertiaDiagonal=diagonal.tolist())

    def _pd_torques(self, target: np.ndarray) -> None:
        """One physics step's servo torques, N m (MJCF position actuator + joint damping)."""
        c, servo = self.client, self.config.servo
        states = c.getJointStates(self.body, self._joint_ids)
        q = np.array([st[0] for st in states])
        qdot = np.array([st[1] for st in states])
        actuator = np.clip(
            servo.kp * (target - q) - servo.kv * qdot, -self.effort_limit, self.effort_limit
        )
        torque = actuator - servo.damping * qdot
        c.setJointMotorControlArray(
            self.body, self._joint_ids, c.TORQUE_CONTROL, forces=torque.tolist()
        )

    def _apply(self, target: np.ndarray) -> None:
        c, servo = self.client, self.config.servo
        if servo.drive == "pd":
            return  # the target is applied as torques in every physics step (_pd_torques)
        for i, j in enumerate(self._joint_ids):
            c.setJointMotorControl2(
                self.body,
                j,
                c.POSITION_CONTROL,
                targetPosition=float(target[i]),
                force=float(self.effort_limit[i]),
                maxVelocity=float(self.velocity_limit[i]),
                positionGain=servo.position_gain,
                velocityGain=servo.velocity_gain,
            )

    def _read(self, at_rest: bool = False) -> None:
        """Take this tick's reading (servo.noise_std, resolution, read_drop, velocity).

        `at_rest`: after a teleport (reset, re-seed) the read never fails and the velocity
        difference restarts from it.
        """
        s, servo = self._servo, self.config.servo
        n = len(self.joint_names)
        if not at_rest and servo.read_drop > 0 and self._rng.random() < servo.read_drop:
            return  # a lost status packet: the driver reports its previous reading again
        noise = self._rng.normal(0.0, servo.noise_std, n) if servo.noise_std > 0 else 0.0
        reading = np.array([st[0] for st in self._states()]) + noise
        if servo.resolution > 0:
            reading = np.round(reading / servo.resolution) * servo.resolution
        if servo.velocity == "difference":
            elapsed = s.time - s.read_time
            s.speed = np.zeros(n) if at_rest or elapsed <= 0 else (reading - s.reading) / elapsed
        s.reading, s.read_time = reading, s.time

    def seed(self, seed: int | None) -> None:
        """Re-seed the measurement Generator (the env does this on reset(seed=...))."""
        self._rng = np.random.default_rng(seed)
        self._read(at_rest=True)

    # ------------------------------------------------------------------ sensing
    @property
    def time(self) -> float:
        """Simulated seconds since construction."""
        return self._servo.time

    @property
    def position_target(self) -> np.ndarray:
        """(nj,) the last clamped command, rad (before latency/backlash)."""
        return self._servo.commanded.copy()

    def _states(self):
        return self.client.getJointStates(self.body, self._joint_ids)

    def joint_positions(self) -> np.ndarray:
        """(nj,) measured joint positions, rad: the tick's reading (servo model above)."""
        return self._servo.reading.copy()

    def joint_velocities(self) -> np.ndarray:
        """(nj,) measured joint velocities, rad/s (servo.velocity: the simulator's, or the
        difference of the last two successful readings over the time between them)."""
        if self.config.servo.velocity == "difference":
            return self._servo.speed.copy()
        return np.array([s[1] for s in self._states()])

    def true_joint_positions(self) -> np.ndarray:
        """(nj,) the simulator's joint positions, rad (no sensor model: for tests, metrics)."""
        return np.array([s[0] for s in self._states()])

    def ee_position(self) -> np.ndarray:
        """(3,) end-effector link origin in the world frame, m."""
        state = self.client.getLinkState(
            self.body, self.ee_link_index, computeForwardKinematics=True
        )
        return np.array(state[4])

    def cube_pose(self) -> tuple[np.ndarray, np.ndarray] | None:
        """Cube position (3,) m and orientation quaternion xyzw (4,), or None without a cube."""
        if self.cube is None:
            return None
        pos, quat = self.client.getBasePositionAndOrientation(self.cube)
        return np.array(pos), np.array(quat)

    def set_cube_pose(self, pos, quat=(0, 0, 0, 1)) -> None:
        """Teleport the cube to `pos` (3,) m with orientation `quat` xyzw (4,), at rest."""
        if self.cube is None:
            raise RuntimeError("this SimArm has no cube; construct it with with_cube=True")
        pos = np.asarray(pos, float)
        if pos.shape != (3,) or not np.all(np.isfinite(pos)):
            raise ValueError(f"cube position must be 3 finite numbers, got {pos.tolist()}")
        # Lift the cube clear of everything first so the collision pass deletes its old
        # contact manifolds: stale cached impulses would make the next steps depend on history.
        self.client.resetBasePositionAndOrientation(self.cube, (0, 0, 100), (0, 0, 0, 1))
        self.client.performCollisionDetection()
        self.client.resetBasePositionAndOrientation(self.cube, pos.tolist(), list(quat))
        self.client.resetBaseVelocity(self.cube, [0, 0, 0], [0, 0, 0])

    # ------------------------------------------------------------------ collisions
    def in_collision(self) -> bool:
        """True if the arm is in self-collision or any arm link but the base touches the table.

        Uses the current joint positions (call after `reset(q)` to test a configuration).
        """
        return collision.in_collision(self.client, self.body, self._pairs, self.table)

    # ------------------------------------------------------------------ state, render
    def save_state(self) -> int:
        """Snapshot physics and servo state; returns an id for `restore_state`."""
        state_id = self.client.saveState()
        snap = self._servo.copy()
        snap.rng_state = self._rng.bit_generator.state
        self._saved[state_id] = snap
        return state_id

    def restore_state(self, state_id: int) -> None:
        """Return to a snapshot taken by `save_state` (it stays valid for reuse).

        Restores joints, cube, servo FIFO/backlash and the noise Generator; `time` is not
        rewound.
        """
        if state_id not in self._saved:
            raise KeyError(f"unknown state id {state_id}; known ids: {sorted(self._saved)}")
        self.client.restoreState(stateId=state_id)
        # restoreState leaves contact manifolds that did not exist at save time (with their
        # cached impulses); a collision pass drops those whose bodies are now apart, which
        # keeps episodes bit-identical whatever ran before.
        self.client.performCollisionDetection()
        # the clock stays monotonic: "seconds since construction" (snapshots are taken
        # between ticks, so the tick phase of the physics-step count is kept too)
        now, count = self._servo.time, self._servo.substep
        self._servo = self._saved[state_id].copy()
        self._servo.read_time += now - self._servo.time  # the reading keeps its age
        self._servo.time, self._servo.substep = now, count
        self._rng.bit_generator.state = self._servo.rng_state
        self._apply(self._servo.applied)

    def discard_state(self, state_id: int) -> None:
        """Free a snapshot (planners that save many states should call this)."""
        if self._saved.pop(state_id, None) is not None:
            self.client.removeState(state_id)

    def render(self, width: int = 320, height: int = 240) -> np.ndarray:
        """(height, width, 3) uint8 RGB image from a fixed camera (TinyRenderer, headless)."""
        c, r = self.client, self.reach
        view = c.computeViewMatrixFromYawPitchRoll(
            cameraTargetPosition=(0.3 * r, 0.0, 0.2 * r),
            distance=1.7 * r,
            yaw=50,
            pitch=-28,
            roll=0,
            upAxisIndex=2,
        )
        proj = c.computeProjectionMatrixFOV(fov=50, aspect=width / height, nearVal=0.01, farVal=20)
        img = c.getCameraImage(width, height, view, proj, renderer=c.ER_TINY_RENDERER)
        rgba = np.asarray(img[2], dtype=np.uint8).reshape(height, width, 4)
        return np.ascontiguousarray(rgba[:, :, :3])

    def close(self) -> None:
        """Disconnect the physics client (idempotent)."""
        if not self._closed:
            self._closed = True
            self.client.disconnect()

    def __enter__(self) -> SimArm:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
