"""ament_python / pip build for mbrl. `colcon build` and `pip install -e .` both use it."""
from glob import glob

from setuptools import find_packages, setup

PACKAGE = "mbrl"

setup(
    name=PACKAGE,
    version="0.1.0",
    package_dir={"": "src"},
    packages=find_packages("src"),
    package_data={"mbrl": ["assets/*.urdf", "assets/*.yaml"]},
    data_files=[
        # Marker so ament_index_python.get_package_share_directory('mbrl') finds us.
        ("share/ament_index/resource_index/packages", ["resource/" + PACKAGE]),
        ("share/" + PACKAGE, ["package.xml"]),
        ("share/" + PACKAGE + "/launch", glob("launch/*.py")),
        ("share/" + PACKAGE + "/config", glob("config/*.yaml") + glob("config/*.rviz")),
        ("share/" + PACKAGE + "/urdf", glob("src/mbrl/assets/*.urdf")),
    ],
    install_requires=["setuptools"],
    zip_safe=True,
    python_requires=">=3.10",
    entry_points={
        "console_scripts": [
            "mbrl = mbrl.cli:main",
            "sim_node = mbrl.ros.sim_node:main",
            "collector = mbrl.ros.collector:main",
            "model_fitter = mbrl.ros.model_fitter:main",
            "mpc_controller = mbrl.ros.mpc_controller:main",
            "experiment = mbrl.ros.experiment:main",
            "feetech_bridge = mbrl.ros.feetech_bridge:main",
        ],
    },
)
