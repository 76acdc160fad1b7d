"""Make `ament_index_python` find mbrl inside the venv, as `colcon build --symlink-install` would.

An editable pip install does not copy setup.py's data_files, so this links the source
tree's launch/, config/ and URDFs into <prefix>/share/mbrl and writes the ament index
marker. Edits to those files are live without reinstalling.

Usage: python scripts/link_share.py <prefix>   (the Makefile passes .venv)
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LINKS = {
    "launch": ROOT / "launch",
    "config": ROOT / "config",
    "urdf": ROOT / "src" / "mbrl" / "assets",
    "package.xml": ROOT / "package.xml",
}


def main(prefix: str) -> int:
    share = Path(prefix).resolve() / "share"
    marker = share / "ament_index" / "resource_index" / "packages" / "mbrl"
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.touch()
    pkg = share / "mbrl"
    pkg.mkdir(parents=True, exist_ok=True)
    for name, target in LINKS.items():
        link = pkg / name
        if link.is_symlink() or link.is_file():
            link.unlink()
        elif link.exists():
            raise SystemExit(f"{link} exists and is not a link; remove it and rerun")
        os.symlink(target, link)
    print(f"mbrl share directory: {pkg}")
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    raise SystemExit(main(sys.argv[1]))
