"""ROS 2 message definitions (interface text) for the messages mbrl records, without ROS.

MCAP files in the `ros2` profile carry each schema as the full `.msg` text followed by every
message it depends on. Shipping the texts here lets `mbrl.data` write and read
rosbag2-compatible episodes on a machine with no ROS install; `test/data/test_msgdefs.py`
checks them field by field against the installed ROS interface files so they cannot drift.
"""

from __future__ import annotations

_SEPARATOR = "=" * 80

_PRIMITIVE_NAMES = "bool byte char float32 float64 string int8 uint8 int16 uint16 int32 uint32"
PRIMITIVES = frozenset(_PRIMITIVE_NAMES.split() + ["int64", "uint64"])

# Comment-free field lists of the ROS 2 Jazzy interfaces (same fields, same order).
_BASE: dict[str, str] = {
    "builtin_interfaces/Time": "int32 sec\nuint32 nanosec\n",
    "std_msgs/Header": "builtin_interfaces/Time stamp\nstring frame_id\n",
    "sensor_msgs/JointState": (
        "std_msgs/Header header\n"
        "string[] name\n"
        "float64[] position\n"
        "float64[] velocity\n"
        "float64[] effort\n"
    ),
    "std_msgs/MultiArrayDimension": "string label\nuint32 size\nuint32 stride\n",
    "std_msgs/MultiArrayLayout": "std_msgs/MultiArrayDimension[] dim\nuint32 data_offset\n",
    "std_msgs/Float64MultiArray": "std_msgs/MultiArrayLayout layout\nfloat64[] data\n",
    "geometry_msgs/Point": "float64 x\nfloat64 y\nfloat64 z\n",
    "geometry_msgs/PointStamped": "std_msgs/Header header\ngeometry_msgs/Point point\n",
    "geometry_msgs/Quaternion": "float64 x\nfloat64 y\nfloat64 z\nfloat64 w\n",
    "geometry_msgs/Pose": "geometry_msgs/Point position\ngeometry_msgs/Quaternion orientation\n",
    "geometry_msgs/PoseStamped": "std_msgs/Header header\ngeometry_msgs/Pose pose\n",
}

# Dependencies in the order they are appended after the top-level text.
_DEPENDS: dict[str, tuple[str, ...]] = {
    "sensor_msgs/JointState": ("std_msgs/Header", "builtin_interfaces/Time"),
    "std_msgs/Float64MultiArray": ("std_msgs/MultiArrayLayout", "std_msgs/MultiArrayDimension"),
    "geometry_msgs/PointStamped": (
        "std_msgs/Header",
        "builtin_interfaces/Time",
        "geometry_msgs/Point",
    ),
    "geometry_msgs/PoseStamped": (
        "std_msgs/Header",
        "builtin_interfaces/Time",
        "geometry_msgs/Pose",
        "geometry_msgs/Point",
        "geometry_msgs/Quaternion",
    ),
}

JOINT_STATE = "sensor_msgs/msg/JointState"
FLOAT64_MULTI_ARRAY = "std_msgs/msg/Float64MultiArray"
POINT_STAMPED = "geometry_msgs/msg/PointStamped"
POSE_STAMPED = "geometry_msgs/msg/PoseStamped"


def field_text(name: str) -> str:
    """The comment-free field list of one interface, e.g. field_text('std_msgs/Header')."""
    return _BASE[name.replace("/msg/", "/")]


def full_definition(datatype: str) -> str:
    """The concatenated schema text MCAP's ros2msg encoding expects for `datatype`.

    `datatype` is the ROS 2 type name, e.g. "sensor_msgs/msg/JointState".
    """
    short = datatype.replace("/msg/", "/")
    if short not in _DEPENDS:
        raise KeyError(f"no bundled definition for {datatype!r}; known: {sorted(_DEPENDS)}")
    parts = [_BASE[short]]
    for dep in _DEPENDS[short]:
        parts.append(f"{_SEPARATOR}\nMSG: {dep}\n{_BASE[dep]}")
    return "".join(parts)
