"""See it learn without ROS: a Rerun web viewer of the arm, its goal, plans and traces.

`mbrl.view.scene` draws arrays (ROS-free); `mbrl.view.replay` feeds it a finished run's MCAP
episodes (`mbrl view runs/<name>`); the live feed from topics is `mbrl.ros.viewer`.
Imported only when a view is asked for: rerun-sdk is optional (requirements-view.txt).
"""
