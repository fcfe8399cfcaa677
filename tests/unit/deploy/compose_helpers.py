"""What the compose checks share (test_compose.py, test_compose_multi_gpu.py): the repository's
README and how a compose service's ports and the README's variable table are read."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[3]
README = (ROOT / "README.md").read_text()


def service_ports(service: dict[str, Any]) -> set[int]:
    """Container ports a compose service listens on (`expose` and the right side of `ports`)."""
    ports: set[int] = {int(str(p).split("/")[0]) for p in service.get("expose", [])}
    for mapping in service.get("ports", []):
        ports.add(int(str(mapping).split("/")[0].split(":")[-1]))
    return ports


def readme_table_vars() -> set[str]:
    """Variable names in the first column of the README's configuration tables."""
    return set(re.findall(r"^\|\s*`([A-Z][A-Z0-9_]+)`\s*\|", README, flags=re.MULTILINE))
