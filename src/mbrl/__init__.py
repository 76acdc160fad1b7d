"""mbrl: model-based reinforcement learning for a low-cost robot arm, on ROS 2.

Layers (imports point downward only): ros -> loop -> control/sim -> models/costs/data ->
types/config. Only `mbrl.ros` imports rclpy; only `mbrl.sim` imports pybullet.
"""

__version__ = "0.1.0"
