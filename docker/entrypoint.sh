#!/bin/bash
# Source the ROS underlay and the mbrl overlay, then run the command.
set -e
source "/opt/ros/${ROS_DISTRO}/setup.bash"
source /ws/install/setup.bash
exec "$@"
