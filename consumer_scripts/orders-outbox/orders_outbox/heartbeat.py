"""Liveness through a heartbeat file: the relay loop touches it after every poll, the ECS health
check reads its age. Only the streaming loop beats, not the start-up retries on a busy slot: those
are covered by the health check's `start_period`."""

import os
import time
from typing import Optional

DEFAULT_FILE = "/tmp/heartbeat"
DEFAULT_MAX_AGE = 60.0


def path() -> str:
    return os.environ.get("HEARTBEAT_FILE", DEFAULT_FILE)


def beat(file: str) -> None:
    with open(file, "a", encoding="utf-8"):
        pass
    os.utime(file, None)


def age(file: str, now: float) -> float:
    """Seconds since the last beat; infinite when there was none."""
    try:
        return now - os.stat(file).st_mtime
    except FileNotFoundError:
        return float("inf")


def healthy(file: str, max_age: float, now: Optional[float] = None) -> bool:
    return age(file, time.time() if now is None else now) <= max_age
