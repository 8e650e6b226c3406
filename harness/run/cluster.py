"""Ray for a study: connect to a running cluster or start a local one, with token
authentication sorted out before connecting and failures that name their cause and fix.

Ray 2.60 authenticates with a token when `RAY_AUTH_MODE=token`; a local `ray.init()` turns it
on by itself and writes the token to `~/.ray/auth_token`, and a later `ray start --head` in the
same home picks that file up and requires the token, while a driver's mode defaults to
`disabled`: the driver then fails with twenty `InvalidAuthToken` lines. So:

- a local study uses a token of its own, in its environment only, and writes no token file;
- a driver connecting to a cluster takes the cluster's mode: a short probe in a separate
  process (Ray reads the mode when it is imported, so the driver cannot try one and then the
  other) asks the cluster without a token; a cluster that refuses gets the token. A driver in
  token mode can start tasks but not actors on a cluster without authentication, so "always
  send a token" is not an option;
- the connection is checked before Ray connects, so a refused port, a missing token or a wrong
  one is one clear sentence within seconds.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import subprocess
import sys
from pathlib import Path

from harness.errors import SpecError

TOKEN_HELP = (
    "give this driver the cluster's token: set RAY_AUTH_TOKEN (or RAY_AUTH_TOKEN_PATH), or put it in "
    "~/.ray/auth_token; `ray get-auth-token` on the head node prints it"
)


def token_available() -> bool:
    """Whether Ray would find an authentication token: RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH or
    the default file `~/.ray/auth_token`."""
    if os.environ.get("RAY_AUTH_TOKEN"):
        return True
    path = os.environ.get("RAY_AUTH_TOKEN_PATH")
    if path:
        return Path(path).is_file()
    return (Path.home() / ".ray" / "auth_token").is_file()


# Run without a token in a fresh interpreter: prints `token` when the cluster at argv[1]
# refuses an unauthenticated client, `open` when it accepts one, `unknown` otherwise.
_PROBE = """
import sys
try:
    from ray._private.services import canonicalize_bootstrap_address
    from ray._raylet import GcsClient
    address = canonicalize_bootstrap_address(sys.argv[1])
    GcsClient(address=address)
    print("open")
except Exception as exc:
    text = type(exc).__name__ + str(exc)
    print("token" if "Auth" in text else "unknown")
"""


def _refused(host: str, port: int, timeout_s: float) -> str | None:
    """Why nothing accepts a TCP connection at host:port, or None when something does."""
    try:
        socket.create_connection((host.strip("[]"), port), timeout=timeout_s).close()
    except OSError as exc:
        return exc.strerror or type(exc).__name__
    return None


def cluster_mode(address: str, timeout_s: float = 30.0) -> str:
    """`token` when the cluster at `address` requires token authentication, `open` when it
    does not, `unknown` when the probe cannot tell (no cluster there: `init_ray` then says so)."""
    host, _, port = address.rpartition(":")
    if address != "auto" and not (host and port.isdigit()):
        return "unknown"
    if address != "auto" and _refused(host, int(port), 3.0) is not None:
        return "unknown"
    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
    env.pop("RAY_AUTH_TOKEN", None)
    try:
        out = subprocess.run(
            [sys.executable, "-c", _PROBE, address], env=env, capture_output=True, text=True, timeout=timeout_s
        )
    except subprocess.TimeoutExpired:
        return "unknown"
    return (out.stdout.strip().splitlines() or ["unknown"])[-1]


def prepare_auth(address: str | None) -> None:
    """Set the driver's authentication environment for a local study (`address` None) or a
    cluster, unless the user chose a mode. Ray reads these settings when it is imported, so
    this runs before anything imports Ray (the CLI calls it first); once Ray is imported it
    changes nothing.

    A local study's Ray authenticates with a token of its own, in this process's environment
    (workers inherit it): nothing is left in the home directory for a later cluster to pick up.
    A driver for a cluster takes the cluster's mode (`cluster_mode`)."""
    if "ray._raylet" in sys.modules or "RAY_AUTH_MODE" in os.environ:
        return
    if address is None:
        if not token_available():
            os.environ["RAY_AUTH_MODE"] = "token"
            os.environ["RAY_AUTH_TOKEN"] = secrets.token_hex(32)
        return
    if address.startswith("ray://"):
        return
    mode = cluster_mode(address)
    if mode == "open":
        # Said explicitly, so that no token lying around can switch the driver to token mode.
        os.environ["RAY_AUTH_MODE"] = "disabled"
    elif mode == "token" and token_available():
        # Without a token, token mode would abort the process inside Ray; `check_auth` then
        # says what is missing instead.
        os.environ["RAY_AUTH_MODE"] = "token"


def cluster_address(address: str) -> str:
    """`host:port` of the cluster `address` names (`auto`: the cluster this machine runs or the
    job's `RAY_ADDRESS`); SpecError when it names none."""
    if address.startswith("ray://"):
        raise SpecError(
            f"--address {address!r}: Ray Client (ray://) is not supported; run the harness on the cluster "
            "instead: `ray job submit --address http://HEAD:8265 --working-dir . -- harness run FILE "
            "--address auto` (docs/guide.md, Clusters)"
        )
    from ray._private.services import canonicalize_bootstrap_address

    try:
        resolved = canonicalize_bootstrap_address(address)
    except Exception as exc:  # Ray raises ConnectionError, ValueError or its own errors here
        raise SpecError(f"--address {address!r}: {exc}") from None
    if resolved is None:
        raise SpecError(
            f"--address {address!r}: no running Ray cluster found on this machine (start one with "
            "`ray start --head`, or give HOST:PORT of its head node)"
        )
    return resolved


def check_reachable(address: str, given: str | None = None, timeout_s: float = 3.0) -> None:
    """Fail in seconds when nothing accepts connections at `host:port` (Ray itself retries for
    minutes)."""
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise SpecError(f"--address {address!r}: expected auto or HOST:PORT of the head node's GCS (default port 6379)")
    reason = _refused(host, int(port), timeout_s)
    if reason is not None:
        raise SpecError(
            f"--address {given or address}: no Ray cluster answers at {address} ({reason}); check that the head node runs "
            "(`ray status` on it) and that the port is its GCS port"
        ) from None


def check_auth(address: str, given: str | None = None) -> None:
    """Probe the cluster at `address` with the driver's authentication; SpecError naming the
    cause and the fix when the cluster refuses it."""
    from ray._raylet import GcsClient

    try:
        GcsClient(address=address)
    except Exception as exc:  # ray.exceptions.AuthenticationError, or an RPC error
        if "auth" not in type(exc).__name__.lower() and "InvalidAuthToken" not in str(exc):
            raise SpecError(f"--address {given or address}: cannot connect to the Ray cluster at {address} ({exc})") from None
        if os.environ.get("RAY_AUTH_MODE") == "token" and token_available():
            problem = "rejects this driver's token (it is not the cluster's)"
        else:
            problem = "requires token authentication and this driver has no token"
        raise SpecError(f"--address {given or address}: the Ray cluster at {address} {problem}; {TOKEN_HELP}") from None


def quiet_ray(verbose: bool) -> None:
    """Ray's own warnings that repeat or contradict the harness's output (its token notice, its
    `Tuner.restore(...)` hint after Ctrl-C, metrics it cannot fetch for trials that never ran)
    are shown only with `-v`."""
    level = logging.INFO if verbose else logging.ERROR
    for name in ("ray.tune", "ray._private.authentication", "ray.tune.analysis.experiment_analysis"):
        logging.getLogger(name).setLevel(level)


def init_ray(address: str | None, verbose: bool | None = None) -> None:
    """Connect to a running cluster (`auto`, `host:port`) or start a local one; `verbose`
    (default: `HARNESS_VERBOSE` set, as `harness -v` does) shows Ray's own logs."""
    if verbose is None:
        verbose = bool(os.environ.get("HARNESS_VERBOSE"))
    prepare_auth(address)  # a no-op when Ray is imported already (the CLI prepared it first)
    import ray

    # Experiment state is cheap to save for studies of this size: save it often, so that a
    # killed driver loses as little as possible.
    os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", "2")
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    # The harness draws its own progress view; Ray's console reporter would repeat it.
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    # MLflow holds every metric: of Ray Tune's own per-trial logs only result.json is kept (the
    # Tuner adds its logger; finalize reconciles MLflow from it). The CSV copy and TensorBoard
    # files cost a write, and TensorBoard an fsync, per result.
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    if ray.is_initialized():
        return
    quiet_ray(verbose)
    if address is not None:
        given, address = address, cluster_address(address)
        check_reachable(address, given)
        check_auth(address, given)
    from harness.run import signals

    keep_sigterm = signals.chosen()
    if address is None and not os.environ.get("RAY_ADDRESS"):
        # A Ray of the study's own: plain `ray.init()` attaches to any cluster whose session file
        # it finds in /tmp/ray, a stopped one included, and then retries its address for minutes.
        address = "local"
    try:
        ray.init(
            address=address,
            include_dashboard=False,
            log_to_driver=verbose,
            logging_level=logging.INFO if verbose else logging.WARNING,
            configure_logging=True,
        )
    except (ConnectionError, ValueError, RuntimeError) as exc:
        raise SpecError(f"--address {address!r}: cannot connect to a Ray cluster there ({exc})") from None
    finally:
        if keep_sigterm:
            signals.stop_on_sigterm()  # ray.init replaced it
    quiet_ray(verbose)


def check_resources(cpus_per_trial: float, gpus_per_trial: float) -> None:
    """SpecError when no trial could ever be placed: the cluster has fewer CPUs or GPUs in all
    than one trial asks for (Ray would wait for them forever)."""
    import ray

    total = ray.cluster_resources()
    for key, field, wanted in (("CPU", "cpus_per_trial", cpus_per_trial), ("GPU", "gpus_per_trial", gpus_per_trial)):
        have = float(total.get(key, 0.0))
        if wanted > have:
            raise SpecError(
                f"resources.{field}: each trial asks for {wanted:g} {key}, but the Ray cluster has {have:g} in all; "
                f"ask for at most {have:g}, or add nodes (an autoscaling cluster adds only node types that "
                "could hold one trial)"
            )
