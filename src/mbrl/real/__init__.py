"""Real-arm support without ROS: servo calibration files and the Feetech serial bus."""
