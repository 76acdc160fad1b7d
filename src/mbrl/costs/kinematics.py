"""Batched, differentiable forward kinematics of a serial chain read from a URDF.

pytorch-kinematics parses the URDF and supplies each joint's fixed offset and axis; the
chain product is composed here with constant-matrix products (Rodrigues' formula for revolute
joints), which on this machine is several times faster than its generic
`forward_kinematics` for the (N * T) batches the planners evaluate (see docs/planners.md).
Shapes: q (..., nj) rad in the caller's joint order -> positions (..., 3) m, base frame.
"""

from __future__ import annotations

import importlib.util
from importlib import resources
from pathlib import Path

import pytorch_kinematics as pk
import torch

PACKAGE_PREFIX = "package://mbrl/"
PYBULLET_DATA_PREFIX = "pybullet_data://"


def read_urdf(urdf: str) -> str:
    """The URDF XML from XML text, a file path, `package://mbrl/<file>` (bundled assets) or
    `pybullet_data://<file>` (models shipped with PyBullet; only their path is looked up)."""
    if urdf.lstrip().startswith("<"):
        return urdf
    if urdf.startswith(PACKAGE_PREFIX):
        path = Path(str(resources.files("mbrl") / "assets")) / urdf[len(PACKAGE_PREFIX) :]
    elif urdf.startswith(PYBULLET_DATA_PREFIX):
        # Locate the data package without importing anything of PyBullet's (layering: only
        # mbrl.sim imports pybullet); the URDFs are plain files in its directory.
        spec = importlib.util.find_spec("pybullet_data")
        if spec is None or not spec.submodule_search_locations:
            raise ValueError(f"URDF {urdf!r}: the pybullet_data package is not installed")
        path = Path(spec.submodule_search_locations[0]) / urdf[len(PYBULLET_DATA_PREFIX) :]
    elif "://" in urdf:
        raise ValueError(
            f"URDF {urdf!r}: only plain paths, {PACKAGE_PREFIX}<file> and "
            f"{PYBULLET_DATA_PREFIX}<file> are supported"
        )
    else:
        path = Path(urdf)
    try:
        return path.read_text()
    except OSError as exc:
        raise ValueError(f"cannot read URDF {urdf!r} at {path}: {exc.strerror}") from exc


class ForwardKinematics:
    """End-effector position of `ee_link` as a function of the controlled joints.

    Args:
        urdf: URDF text, a path, or `package://mbrl/<file>`.
        ee_link: the end-effector link name.
        joint_names: controlled joints in the caller's order (all must be on the chain).
        fixed: values (rad) for other movable joints on the chain; default 0.
        dtype: torch dtype of the constants (float32 for planners, float64 for tests).
    """

    def __init__(
        self,
        urdf: str,
        ee_link: str,
        joint_names: tuple[str, ...],
        fixed: dict[str, float] | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        text = read_urdf(urdf)
        try:
            chain = pk.build_serial_chain_from_urdf(text.encode(), ee_link)
        except (KeyError, ValueError, AttributeError) as exc:
            raise ValueError(f"URDF has no serial chain to link {ee_link!r}: {exc}") from exc
        chain = chain.to(dtype=dtype)
        movable = chain.get_joint_parameter_names()
        missing = [j for j in joint_names if j not in movable]
        if missing:
            raise ValueError(
                f"joints {missing} are not on the chain to {ee_link!r}; chain joints: {movable}"
            )
        fixed = dict(fixed or {})
        self.joint_names = tuple(joint_names)
        self.dtype = dtype
        lower, upper = chain.get_joint_limits()
        order = [movable.index(j) for j in joint_names]
        self.lower = torch.tensor([lower[i] for i in order], dtype=dtype)
        self.upper = torch.tensor([upper[i] for i in order], dtype=dtype)
        self.velocity_limit = torch.tensor(
            [chain.get_joint_velocity_limits()[1][i] for i in order], dtype=dtype
        )
        # Per frame on the chain: (offset 4x4, axis (3,) or None, index into q or a constant).
        self._steps: list[tuple[torch.Tensor, torch.Tensor | None, int | float]] = []
        for name in chain.get_frame_names(exclude_fixed=False):
            frame = chain.find_frame(name)
            joint = frame.joint
            offset = torch.eye(4, dtype=dtype)
            if joint.offset is not None:
                offset = joint.offset.get_matrix()[0].to(dtype)
            if frame.link.offset is not None:
                offset = offset @ frame.link.offset.get_matrix()[0].to(dtype)
            if joint.joint_type == "revolute":
                source = (
                    self.joint_names.index(joint.name) if joint.name in self.joint_names else None
                )
                value: int | float = (
                    source if source is not None else float(fixed.get(joint.name, 0.0))
                )
                self._steps.append((offset, joint.axis.to(dtype), value))
            elif joint.joint_type == "fixed":
                self._steps.append((offset, None, 0.0))
            else:
                raise ValueError(f"joint {joint.name!r}: type {joint.joint_type!r} not supported")

    def _pose(self, q: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """q (B, nj) -> rotation (B, 3, 3), position (B, 3).

        A revolute step right-multiplies R by Rodrigues' rotation I + sin(q) S + (1 -
        cos(q)) S^2, S the axis' cross-product matrix. Row-wise r S = r x axis, so
        R S and R S^2 are cross products: everything is element-wise. Batched matmuls of
        3x3 blocks were 20x slower with 2 threads on a loaded machine (docs/planners.md).
        """
        B = q.shape[0]
        R = p = None
        eye = torch.eye(3, dtype=q.dtype)
        for offset, axis, value in self._steps:
            offset = offset.to(q.dtype)
            Ro, to = offset[:3, :3], offset[:3, 3]
            if R is None:
                R, p = Ro.expand(B, 3, 3), to.expand(B, 3)
            else:
                p = p + (R * to).sum(-1)
                if not torch.equal(Ro, eye):
                    R = (R[..., :, :, None] * Ro).sum(-2)
            if axis is not None:
                a = (axis / axis.norm()).to(q.dtype).expand(B, 3, 3)
                angle = q[:, value] if isinstance(value, int) else torch.full_like(q[:, 0], value)
                s, c = torch.sin(angle)[:, None, None], torch.cos(angle)[:, None, None]
                RS = torch.linalg.cross(R, a, dim=-1)
                R = R + s * RS + (1 - c) * torch.linalg.cross(RS, a, dim=-1)
        return R, p

    @property
    def reach(self) -> float:
        """Length of the link chain from the first controlled joint to the end effector, m
        (a rough reach: the sum of the fixed offsets between the frames)."""
        first = min(i for i, (_, _, v) in enumerate(self._steps) if isinstance(v, int))
        return float(sum(offset[:3, 3].norm() for offset, _, _ in self._steps[first + 1 :]))

    def transforms(self, q: torch.Tensor) -> torch.Tensor:
        """q (..., nj) rad -> (..., 4, 4) homogeneous pose of the end-effector link."""
        self._check(q)
        R, p = self._pose(q.reshape(-1, q.shape[-1]))
        M = torch.zeros(R.shape[0], 4, 4, dtype=q.dtype)
        M[:, :3, :3], M[:, :3, 3], M[:, 3, 3] = R, p, 1.0
        return M.reshape(*q.shape[:-1], 4, 4)

    def _check(self, q: torch.Tensor) -> None:
        if q.shape[-1] != len(self.joint_names):
            raise ValueError(f"q has {q.shape[-1]} joints; expected {len(self.joint_names)}")

    def __call__(self, q: torch.Tensor) -> torch.Tensor:
        """q (..., nj) rad -> (..., 3) end-effector position, m."""
        self._check(q)
        return self._pose(q.reshape(-1, q.shape[-1]))[1].reshape(*q.shape[:-1], 3)
