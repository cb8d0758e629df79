"""ECS health check: exit 0 when the relay loop beat recently, 1 when it is stuck or never started.
Run as `python3 -m orders_outbox.healthcheck`."""

import os
import sys

from . import heartbeat


def main() -> int:
    max_age = float(os.environ.get("HEARTBEAT_MAX_AGE", heartbeat.DEFAULT_MAX_AGE))
    if heartbeat.healthy(heartbeat.path(), max_age):
        return 0
    print(f"unhealthy: no heartbeat in {heartbeat.path()} for {max_age:.0f}s", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
