"""What a seal costs the machine while it runs: sampled every SAMPLE_S seconds from the kernel's own counters.

* the machine: CPU busy (all cores, from /proc/stat) and memory in use (MemTotal − MemAvailable, /proc/meminfo);
* the containers of the seal's compose projects — the main stack and each drill copy, told apart by their
  `com.docker.compose.project` label — their resident memory (`total_rss` of the cgroup v1 memory controller) and
  CPU time (`cpuacct.usage`), so a copy's share is measured, not guessed.

On a machine with cgroup v2 or no Docker engine the container figures are absent and said so; the machine figures
are always there.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SAMPLE_S = 2.0
CGROUP_MEMORY = Path("/sys/fs/cgroup/memory/docker")
CGROUP_CPU = Path("/sys/fs/cgroup/cpuacct/docker")


def _cpu_times() -> tuple[int, int]:
    """(busy, total) jiffies of all cores since boot."""
    fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields) - idle, sum(fields)


def _memory_used() -> int:
    info = {}
    for line in Path("/proc/meminfo").read_text().splitlines():
        key, value = line.split(":", 1)
        info[key] = int(value.split()[0]) * 1024
    return info["MemTotal"] - info["MemAvailable"]


def _read_int(path: Path, key: str | None = None) -> int | None:
    try:
        text = path.read_text()
    except OSError:
        return None
    if key is None:
        return int(text.strip())
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if name == key:
            return int(value)
    return None


@dataclass
class Sampler:
    """Samples in a thread between start() and stop(); `prefix` picks the compose projects that are the seal's."""

    prefix: str
    samples: list[dict[str, Any]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    docker_seen: bool = False

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _containers(self, client: Any) -> dict[str, str]:
        """container id -> its compose project, for the seal's projects."""
        found = {}
        for container in client.containers.list():
            project = (container.labels or {}).get("com.docker.compose.project", "")
            if project == self.prefix or project.startswith(self.prefix + "-"):
                found[container.id] = project
        return found

    def _run(self) -> None:
        try:
            import docker

            client: Any = docker.from_env(timeout=10)
            client.ping()
            self.docker_seen = CGROUP_MEMORY.is_dir()
        except Exception:
            client = None
        last_busy, last_total = _cpu_times()
        while not self._stop.wait(SAMPLE_S):
            busy, total = _cpu_times()
            sample: dict[str, Any] = {
                "t": time.monotonic(),
                "cpu_busy": (busy - last_busy) / max(total - last_total, 1),
                "memory_used": _memory_used(),
                "projects": {},
            }
            last_busy, last_total = busy, total
            if client is not None and self.docker_seen:
                try:
                    containers = self._containers(client)
                except Exception:
                    containers = {}
                for cid, project in containers.items():
                    rss = _read_int(CGROUP_MEMORY / cid / "memory.stat", "total_rss")
                    cpu = _read_int(CGROUP_CPU / cid / "cpuacct.usage")
                    entry = sample["projects"].setdefault(project, {"containers": 0, "rss": 0, "cpu_ns": 0})
                    entry["containers"] += 1
                    entry["rss"] += rss or 0
                    entry["cpu_ns"] += cpu or 0
            self.samples.append(sample)

    def summary(self) -> list[tuple[str, str, str]]:
        """Rows for the bench table."""
        if not self.samples:
            return [("resources", "no sample", "the run ended within one sampling interval")]
        mib = 1024 * 1024
        busy = [s["cpu_busy"] for s in self.samples]
        rows = [
            (
                "  machine CPU busy (2 cores)",
                f"{sum(busy) / len(busy):.0%}",
                f"mean over {len(busy)} samples every {SAMPLE_S:g} s; peak {max(busy):.0%}",
            ),
            (
                "  machine memory in use",
                f"{max(s['memory_used'] for s in self.samples) / mib / 1024:.2f} GiB",
                f"peak (MemTotal − MemAvailable); {self.samples[0]['memory_used'] / mib / 1024:.2f} GiB at the start",
            ),
        ]
        if not self.docker_seen:
            return [*rows, ("  containers", "—", "no Docker engine or no cgroup v1 memory controller here")]
        projects = sorted({p for s in self.samples for p in s["projects"]})
        peak_together = max(len(s["projects"]) for s in self.samples)
        peak_rss = max(sum(e["rss"] for e in s["projects"].values()) for s in self.samples)
        rows.append(
            (
                "  stacks running at once",
                str(peak_together),
                f"main stack + copies; peak resident memory of all their containers {peak_rss / mib:.0f} MiB",
            )
        )
        first_t = self.samples[0]["t"]
        for project in projects:
            seen = [s for s in self.samples if project in s["projects"]]
            rss = max(s["projects"][project]["rss"] for s in seen)
            cpu_s = max(s["projects"][project]["cpu_ns"] for s in seen) / 1e9
            span = seen[-1]["t"] - seen[0]["t"] + SAMPLE_S
            containers = max(s["projects"][project]["containers"] for s in seen)
            rows.append(
                (
                    f"  {project}",
                    f"{rss / mib:.0f} MiB",
                    f"{containers} containers, peak RSS; CPU {cpu_s:.1f} s over {span:.0f} s seen "
                    f"({cpu_s / span:.0%} of one core), from t+{seen[0]['t'] - first_t:.0f}s",
                )
            )
        return rows
