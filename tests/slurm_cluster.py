"""A single-node SLURM cluster from Debian's packages (munge, slurmctld, slurmd, slurm-client).

Used by tests/test_slurm.py. Facts this follows (../shared/notes/snakemake-slurm.md): munged runs
as the munge user with /run/munge owned by it; the config must be at /etc/slurm/slurm.conf (the
plugin's job step strips SLURM_CONF); no cgroups (proctrack/linuxproc, task/affinity);
``select/cons_tres``; a node line with RealMemory; no accounting daemon, so the plugin must poll
``squeue`` and MinJobAge must be long.

:func:`single_node_cluster` is a context manager that yields nothing, or raises
:class:`ClusterUnavailable` with the reason when the scheduler cannot start here. It stops the
daemons it started (by their pid files) when it exits.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

SLURM_CONF = Path("/etc/slurm/slurm.conf")
BINARIES = ("munged", "slurmctld", "slurmd", "sinfo", "sbatch", "squeue", "scontrol")


class ClusterUnavailable(RuntimeError):
    """The scheduler cannot start on this machine; the message says why."""


def _which(name: str) -> str | None:
    return shutil.which(name) or next((p for p in (f"/usr/sbin/{name}", f"/usr/bin/{name}") if os.path.exists(p)),
                                      None)


def _memory_mb() -> int:
    with open("/proc/meminfo") as fh:
        total_kb = next(int(line.split()[1]) for line in fh if line.startswith("MemTotal"))
    return int(total_kb / 1024 * 0.8)


def slurm_conf(state: Path, cpus: int, memory_mb: int) -> str:
    return f"""# written by acceflow's test suite (tests/slurm_cluster.py)
ClusterName=acceflow
SlurmctldHost=localhost
SlurmUser=root
AuthType=auth/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/affinity
JobAcctGatherType=jobacct_gather/linux
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU_Memory
AccountingStorageType=accounting_storage/none
SchedulerType=sched/backfill
ReturnToService=2
MinJobAge=600
StateSaveLocation={state}/ctld
SlurmdSpoolDir={state}/slurmd
SlurmctldPidFile={state}/slurmctld.pid
SlurmdPidFile={state}/slurmd.pid
SlurmctldLogFile={state}/slurmctld.log
SlurmdLogFile={state}/slurmd.log
NodeName=localhost NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={memory_mb} State=UNKNOWN
PartitionName=main Nodes=localhost Default=YES MaxTime=INFINITE State=UP
"""


def _pid(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _stop(pidfile: Path, timeout: float = 15.0) -> None:
    pid = _pid(pidfile)
    if not pid:
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            os.kill(pid, 0)
            time.sleep(0.2)
        os.kill(pid, signal.SIGKILL)


def _run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60, **kw)


def _munge_works() -> bool:
    munge, unmunge = _which("munge"), _which("unmunge")
    if not (munge and unmunge):
        return False
    cred = _run([munge, "-n"])
    return cred.returncode == 0 and _run([unmunge], input=cred.stdout).returncode == 0


@contextlib.contextmanager
def single_node_cluster(wait_s: float = 60.0):
    """Start munged, slurmctld and slurmd on this machine; stop what was started on exit."""
    missing = [b for b in BINARIES if not _which(b)]
    if missing:
        raise ClusterUnavailable(f"SLURM/munge programs not installed: {missing} (apt-get install "
                                 f"--no-install-recommends munge slurmctld slurmd slurm-client; .ci/run does this)")
    if os.geteuid() != 0:
        raise ClusterUnavailable("starting slurmctld/slurmd/munged needs root (writes /etc/slurm/slurm.conf)")
    # one cluster per machine at a time: several checkouts may run the suite on the same host
    lock = open(os.path.join(tempfile.gettempdir(), "acceflow-slurm.lock"), "w")
    fcntl.flock(lock, fcntl.LOCK_EX)
    state = Path(tempfile.mkdtemp(prefix="acceflow-slurm-"))
    for sub in ("ctld", "slurmd"):
        (state / sub).mkdir()
    started_munge = None
    previous_conf = SLURM_CONF.read_bytes() if SLURM_CONF.is_file() and not SLURM_CONF.is_symlink() else None
    try:
        SLURM_CONF.parent.mkdir(parents=True, exist_ok=True)
        if SLURM_CONF.is_symlink():
            SLURM_CONF.unlink()
        SLURM_CONF.write_text(slurm_conf(state, os.cpu_count() or 1, _memory_mb()))
        if not _munge_works():
            run_munge = Path("/run/munge")
            run_munge.mkdir(parents=True, exist_ok=True)
            shutil.chown(run_munge, "munge", "munge")
            proc = _run(["runuser", "-u", "munge", "--", _which("munged")])
            if proc.returncode or not _munge_works():
                raise ClusterUnavailable(f"munged did not start: {proc.stderr.strip()[-500:]}")
            started_munge = run_munge / "munged.pid"
        for cmd in ([_which("slurmctld")], [_which("slurmd"), "-N", "localhost"]):
            proc = _run(cmd)
            if proc.returncode:
                raise ClusterUnavailable(f"{cmd[0]} did not start: {proc.stderr.strip()[-500:]}; "
                                         f"log in {state}")
        deadline, last = time.monotonic() + wait_s, ""
        while time.monotonic() < deadline:
            last = _run([_which("sinfo"), "-h", "-N", "-o", "%T"]).stdout.strip()
            if last.startswith("idle"):
                break
            if last.startswith(("drain", "down", "inval")):
                _run([_which("scontrol"), "update", "NodeName=localhost", "State=RESUME"])
            time.sleep(1)
        else:
            logs = "".join((state / f).read_text()[-800:] for f in ("slurmctld.log", "slurmd.log")
                           if (state / f).exists())
            raise ClusterUnavailable(f"node did not become idle within {wait_s:.0f} s (state '{last}'): {logs}")
        yield state
    finally:
        _run([_which("scancel"), "--user", "root"]) if _which("scancel") else None
        _stop(state / "slurmd.pid")
        _stop(state / "slurmctld.pid")
        if started_munge:
            _stop(started_munge)
        if previous_conf is not None:
            SLURM_CONF.write_bytes(previous_conf)
        else:
            with contextlib.suppress(FileNotFoundError):
                SLURM_CONF.unlink()
        shutil.rmtree(state, ignore_errors=True)
        fcntl.flock(lock, fcntl.LOCK_UN)
        lock.close()
