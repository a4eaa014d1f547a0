"""A dask.distributed cluster as the engine of `prepare`'s feature phase (Beam's DaskRunner).

`prepare --runner dask --scheduler ADDR` runs the same Beam pipeline as ``--runner beam``, on
Apache Beam's ``DaskRunner`` (``apache_beam.runners.dask.dask_runner``) against a running
``dask scheduler``. Before the pipeline starts, `check_scheduler` asks the scheduler who it is
and which workers it has (bounded by a timeout), and asks every worker to import ddspcli, so a
wrong address, an empty cluster or a worker without ddspcli is one clear line, not a hang or a
remote traceback. `explain_failure` turns what a running Dask job can raise into such a line.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from ddspcli.errors import RunError

DASK_RUNNER = "apache_beam.runners.dask.dask_runner.DaskRunner"
INSTALL_HINT = "pip install 'ddspcli[cluster]'"


@dataclass(frozen=True)
class SchedulerInfo:
    """What the scheduler said: its address and ``{worker address: ddspcli version}``."""

    address: str
    workers: dict[str, str]


def _distributed():
    """The `distributed` package, or a `RunError` naming the extra that installs it."""
    try:
        import distributed
    except ImportError:
        raise RunError(f"--runner dask needs dask.distributed: {INSTALL_HINT}") from None
    return distributed


def beam_options(address: str, timeout_s: float) -> list[str]:
    """Beam options for the DaskRunner on `address`: one element (one input file) per Dask
    task, so the files spread over the workers (the runner's default puts up to 128 elements
    in one task, i.e. on one worker)."""
    return [
        f"--runner={DASK_RUNNER}",
        f"--dask_client_address={address}",
        f"--dask_connection_timeout={max(1, round(timeout_s))}",
        "--dask_partition_size=1",
    ]


async def _identity(address: str, timeout_s: float) -> dict:
    """The scheduler's ``identity`` reply (type, workers), within `timeout_s` seconds."""
    from distributed.core import rpc

    async with rpc(address, timeout=timeout_s) as scheduler:
        return await asyncio.wait_for(scheduler.identity(), timeout_s)


def _identify(address: str, timeout_s: float) -> dict:
    """`_identity`, every failure mapped to one `RunError` line naming the address."""
    _distributed()
    try:
        info = asyncio.run(_identity(address, timeout_s))
    except ValueError as err:  # distributed's own address parser
        raise RunError(f"bad Dask scheduler address {address!r}: {err}") from None
    except (OSError, TimeoutError):
        raise RunError(
            f"no Dask scheduler answered at {address} within {timeout_s:g} s; start one "
            "(`dask scheduler`) or check the address and that its port is reachable"
        ) from None
    except Exception as err:  # e.g. another service on that port: its reply makes no sense
        raise RunError(
            f"{address} answered, but not as a Dask scheduler ({type(err).__name__})"
        ) from None
    if not isinstance(info, dict) or info.get("type") != "Scheduler":
        raise RunError(f"{address} answered, but not as a Dask scheduler")
    return info


def _worker_versions(address: str, timeout_s: float) -> dict[str, str | BaseException]:
    """``{worker: ddspcli version or the exception its import raised}``, asked of each worker.

    The probe is `pkgutil.resolve_name` (standard library), so it reaches a worker even where
    ddspcli is missing; a function of ours could not be unpickled there.
    """
    import pkgutil

    distributed = _distributed()
    with distributed.Client(address, timeout=timeout_s, set_as_default=False) as client:
        return client.run(pkgutil.resolve_name, "ddspcli:__version__", on_error="return")


def check_scheduler(address: str, timeout_s: float, version: str) -> SchedulerInfo:
    """Check that a Dask scheduler answers at `address` and that its workers run ddspcli.

    Args:
        address: ``tcp://HOST:PORT`` (or any address distributed knows).
        timeout_s: seconds to wait for the scheduler's answer and for a first worker.
        version: this ddspcli's version; a worker with another version is refused, since the
            features it computes must be the ones this version would compute.
    Raises:
        RunError: no answer, not a scheduler, no workers, a worker without ddspcli or with
            another version.
    """
    info = _identify(address, timeout_s)
    if not info.get("workers"):
        raise RunError(
            f"the Dask scheduler at {address} has no workers; start some with "
            f"`dask worker {address}`"
        )
    try:
        versions = _worker_versions(address, timeout_s)
    except (OSError, TimeoutError):
        raise RunError(f"lost the Dask scheduler at {address} while asking its workers") from None
    for worker, found in sorted(versions.items()):
        if isinstance(found, ImportError):
            raise RunError(
                f"Dask worker {worker} cannot import ddspcli ({found}); install ddspcli "
                f"{version} with its `cluster` extra on every worker"
            )
        if isinstance(found, BaseException):
            raise RunError(f"Dask worker {worker} failed its check: {type(found).__name__}: "
                           f"{found}")  # fmt: skip
        if found != version:
            raise RunError(
                f"Dask worker {worker} runs ddspcli {found}, this is {version}; install the "
                "same version everywhere"
            )
    return SchedulerInfo(address, {w: str(v) for w, v in versions.items()})


def explain_failure(err: BaseException) -> RunError | None:
    """A `RunError` for what a Dask job raises when the cluster (not our code) failed, else
    None (the exception is then a bug and goes up unchanged)."""
    try:
        from distributed import KilledWorker
        from distributed.scheduler import NoValidWorkerError, NoWorkerError
    except ImportError:
        return None
    if isinstance(err, NoWorkerError | NoValidWorkerError):
        return RunError(
            "no Dask worker was left to compute features within the scheduler's "
            "no-workers-timeout; finished files are kept: start workers and rerun the same "
            "command to resume"
        )
    if isinstance(err, KilledWorker):
        return RunError(
            "Dask workers died while computing features (the scheduler gave up on a task "
            "after its allowed retries); finished files are kept: rerun the same command "
            "to resume"
        )
    if isinstance(err, ImportError) and (err.name or "").startswith("ddspcli"):
        return RunError(f"a Dask worker cannot import ddspcli ({err}); install ddspcli with its "
                        "`cluster` extra on every worker")  # fmt: skip
    return None
