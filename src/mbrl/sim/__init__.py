"""The simulated arm: PyBullet arm with servo-like control (`mbrl.sim.arm.SimArm`) and reach /
push gymnasium tasks (`mbrl.sim.tasks.make_env`). The only package that imports pybullet."""
