"""Where the agent reads the host's IMA measurement list: the kernel's ASCII list when readable,
else a configured file (for hosts without IMA, CI and the demo)."""

from __future__ import annotations

import os
from pathlib import Path

from floodlight_trust.errors import InputError, Location

KERNEL_LIST = Path("/sys/kernel/security/ima/ascii_runtime_measurements")


class ImaSource:
    def __init__(
        self, primary: str | os.PathLike[str] | None = KERNEL_LIST, fallback: str | os.PathLike[str] | None = None
    ):
        self.primary = Path(primary) if primary else None
        self.fallback = Path(fallback) if fallback else None

    def read(self) -> tuple[bytes, str]:
        """The exact list bytes and the path they came from."""
        tried: list[str] = []
        for path in (self.primary, self.fallback):
            if path is None:
                continue
            try:
                return path.read_bytes(), str(path)
            except OSError as e:
                tried.append(f"{path} ({e.strerror})")
        raise InputError(
            "no readable IMA measurement list: " + ("; ".join(tried) or "none configured"),
            location=Location(str(self.fallback or self.primary)) if (self.fallback or self.primary) else None,
            hint="enable IMA, run the agent with read access to securityfs, or set agent.ima_log_fallback",
        )
