"""What the emulator saw: requests by route and status, runs created, duplicate creations."""

from __future__ import annotations

from typing import Any

MAX_DUPLICATE_EXAMPLES = 10

# casefolded subscription, group, factory, pipeline; canonical JSON parameters; recovery query
DuplicateKey = tuple[str, str, str, str, str, str]


class Stats:
    def __init__(self) -> None:
        self.requests: dict[str, dict[str, int]] = {}
        self.runs_created = 0
        self.duplicates = 0
        self._creations: dict[DuplicateKey, int] = {}
        self._examples: list[tuple[DuplicateKey, dict[str, str]]] = []
        self.in_flight = 0
        self.peak_in_flight = 0
        self.cancels = {"recursive": 0, "not_recursive": 0}

    def started(self) -> None:
        self.in_flight += 1
        if self.in_flight > self.peak_in_flight:
            self.peak_in_flight = self.in_flight

    def finished(self, route: str, status: str) -> None:
        self.in_flight -= 1
        by_status = self.requests.get(route)
        if by_status is None:
            by_status = self.requests[route] = {}
        by_status[status] = by_status.get(status, 0) + 1

    def cancel_requested(self, *, recursive: bool) -> None:
        self.cancels["recursive" if recursive else "not_recursive"] += 1

    def created(self, key: DuplicateKey, *, factory: str, pipeline: str) -> None:
        """Count a created run; the same key created again is a duplicate."""
        self.runs_created += 1
        seen = self._creations.get(key, 0)
        self._creations[key] = seen + 1
        if seen:
            self.duplicates += 1
            if seen == 1 and len(self._examples) < MAX_DUPLICATE_EXAMPLES:
                self._examples.append((key, {"factory": factory, "pipeline": pipeline}))

    def snapshot(self) -> dict[str, Any]:
        return {
            "requests": {route: dict(counts) for route, counts in sorted(self.requests.items())},
            "runs_created": self.runs_created,
            "duplicates": self.duplicates,
            "duplicate_keys": [
                {
                    **names,
                    "parameters": key[4],
                    "recovery": key[5],
                    "count": self._creations[key],
                }
                for key, names in self._examples
            ],
            "peak_in_flight": self.peak_in_flight,
            "cancels": dict(self.cancels),
            "in_flight": self.in_flight,
        }
