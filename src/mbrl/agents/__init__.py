"""The agent layer: one learner and one actor per algorithm, shared by both drivers.

A *learner* turns recorded episodes into an artifact (a model, local controllers, a
policy); an *actor* turns (observation, goal, artifact, deadline) into an action each tick
(acme's actor/learner split). `mbrl.loop` drives them in one process; `mbrl.ros` hosts the
learner in the model_fitter node and the actor in the mpc_controller node. ROS-free and
simulator-free: nothing here imports rclpy or pybullet.
"""
