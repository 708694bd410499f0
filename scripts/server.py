"""A local Prefect stack for openbill: server, pool, limit, blocks, deployments and a worker.

    python scripts/server.py start [--port 4200] [--home var/prefect] [--database URL] ...
    python scripts/server.py stop  [--home var/prefect]

``start`` runs ``prefect server start`` in the background (analytics off; SQLite under
PREFECT_HOME, or PostgreSQL through PREFECT_API_DATABASE_CONNECTION_URL) and waits for
/api/health. Then it creates the process work pool ``billing-pool``, the "default" blocks,
the global concurrency limit ``bill-day-batches``, migrates the billing database of the
``billing-database/default`` block, starts a worker on the pool, registers every deployment of
prefect.yaml (``prefect --no-prompt deploy --all``) and waits until the worker is online.
Each step may be repeated: what exists is kept. Logs and pid files are under PREFECT_HOME;
``stop`` ends the worker, then the server (each is its own process group).

Every other variable of the environment (PREFECT_*, BILLING_*) reaches the server, the
worker and the flow runs. ``make server`` and ``make stop`` call this; so does
tests/operations, so the tests prove the same path.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PREFECT_CLI = [sys.executable, "-m", "prefect"]
POOL = "billing-pool"
BATCH_LIMIT = "bill-day-batches"
PROCESSES = ("worker", "server")  # stopped in this order


class StartFailed(RuntimeError):
    """A step of ``start`` did not succeed in time; the message says which and shows the log."""


def stack_env(home: Path, host: str, port: int) -> dict[str, str]:
    """The environment of every process of the stack."""
    env = dict(os.environ)
    env.update(
        PREFECT_HOME=str(home),
        PREFECT_API_URL=f"http://{host}:{port}/api",
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_SERVER_UI_SHOW_PROMOTIONAL_CONTENT="false",
        PYTHONPATH=os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p),
    )
    env.setdefault("PREFECT_UI_API_URL", env["PREFECT_API_URL"])  # what the browser calls
    return env


def _pid_file(home: Path, name: str) -> Path:
    return home / "run" / f"{name}.pid"


def _log_file(home: Path, name: str) -> Path:
    return home / "logs" / f"{name}.log"


def _spawn(home: Path, name: str, argv: list[str], env: dict[str, str]) -> subprocess.Popen:
    """Start ``argv`` in its own session (so ``stop`` ends its children too); record its pid."""
    for folder in ("run", "logs"):
        (home / folder).mkdir(parents=True, exist_ok=True)
    with _log_file(home, name).open("ab") as log:
        process = subprocess.Popen(
            argv,
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    _pid_file(home, name).write_text(str(process.pid))
    return process


def _alive(pid: int) -> bool:
    """``pid`` runs (not a zombie) and still leads the process group we started."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        return state != "Z" and os.getpgid(pid) == pid
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False


def _running(home: Path, name: str) -> int | None:
    try:
        pid = int(_pid_file(home, name).read_text())
    except (FileNotFoundError, ValueError):
        return None
    return pid if _alive(pid) else None


def _tail(home: Path, name: str, chars: int = 3000) -> str:
    try:
        return _log_file(home, name).read_text(errors="replace")[-chars:]
    except FileNotFoundError:
        return ""


def _wait(what: str, check: Callable[[], bool], timeout: float, home: Path, name: str) -> None:
    """Poll ``check()`` until it is true, the process ``name`` died, or ``timeout`` passed."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _running(home, name) is None:
            raise StartFailed(f"{name} exited while waiting for {what}:\n{_tail(home, name)}")
        try:
            if check():
                return
        except Exception:  # not up yet: connection refused, 5xx, ...
            pass
        time.sleep(0.5)
    raise StartFailed(f"no {what} after {timeout:.0f} s:\n{_tail(home, name)}")


def _prefect(env: dict[str, str], *args: str, timeout: float = 300) -> str:
    """Run ``prefect <args>`` from the repository root."""
    done = subprocess.run(
        [*PREFECT_CLI, *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if done.returncode != 0:
        raise StartFailed(f"prefect {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout


def start_server(home: Path, env: dict[str, str], host: str, port: int) -> None:
    if _running(home, "server"):
        print(f"server already running (pid {_running(home, 'server')})")
    else:
        server_env = {k: v for k, v in env.items() if k != "PREFECT_API_URL"}
        argv = [*PREFECT_CLI, "server", "start", "--host", host, "--port", str(port)]
        _spawn(home, "server", argv, server_env)
    import httpx

    health = f"{env['PREFECT_API_URL']}/health"

    def healthy() -> bool:
        return httpx.get(health, timeout=2).status_code == 200

    _wait("/api/health", healthy, 120, home, "server")


def configure(env: dict[str, str], args: argparse.Namespace) -> None:
    """Work pool, blocks, concurrency limit, billing schema: each kept when it exists."""
    os.environ.update(env)  # before Prefect reads its settings in this process
    from sqlalchemy import make_url

    from billing.db import make_engine
    from billing.migrate import upgrade
    from blocks.bill_run_settings import BillRunSettings
    from blocks.billing_database import BillingDatabase
    from blocks.register import DEFAULT, register
    from flows.runtime import ensure_concurrency_limit

    create_pool()
    print(f"work pool {POOL}: ready")
    blocks = register(database_url=args.database, output_dir=args.output_dir)
    for name, what in blocks.items():
        print(f"block {name}: {what}")
    if "kept" in blocks.values():
        print("  (existing blocks are kept: python -m blocks.register --overwrite replaces them)")
    ensure_concurrency_limit(BATCH_LIMIT, BillRunSettings.load(DEFAULT).children)
    print(f"global concurrency limit {BATCH_LIMIT}: ready")
    database = BillingDatabase.load(DEFAULT).url.get_secret_value()
    engine = make_engine(database)
    upgrade(engine)
    engine.dispose()
    print(f"billing database migrated: {make_url(database).render_as_string(hide_password=True)}")


def deploy(env: dict[str, str]) -> None:
    """Every deployment of prefect.yaml, from the repository root (which flow runs start in)."""
    _prefect(env, "--no-prompt", "deploy", "--all")
    print("deployments of prefect.yaml: registered")


def create_pool() -> None:
    """The process work pool with the process worker's default job template; kept if it exists."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectAlreadyExists
    from prefect.workers.process import ProcessWorker

    pool = WorkPoolCreate(
        name=POOL, type="process", base_job_template=ProcessWorker.get_default_base_job_template()
    )
    with get_client(sync_client=True) as client:
        try:
            client.create_work_pool(pool)
        except ObjectAlreadyExists:
            pass


def worker_name() -> str:
    return f"billing-worker-{os.uname().nodename}"


def start_worker(home: Path, env: dict[str, str]) -> None:
    """Start a process worker on the pool, unless one of ours runs already."""
    if _running(home, "worker"):
        print(f"worker already running (pid {_running(home, 'worker')})")
        return
    argv = [*PREFECT_CLI, "worker", "start", "--pool", POOL, "--type", "process"]
    _spawn(home, "worker", [*argv, "--name", worker_name()], env)


def wait_worker_online(home: Path, env: dict[str, str]) -> None:
    import httpx

    name = worker_name()

    url = f"{env['PREFECT_API_URL']}/work_pools/{POOL}/workers/filter"
    body = {"offset": 0, "limit": 10, "workers": {"status": {"any_": ["ONLINE"]}}}

    def online() -> bool:
        return any(w["name"] == name for w in httpx.post(url, json=body, timeout=5).json())

    _wait("online worker", online, 90, home, "worker")


def start(args: argparse.Namespace) -> None:
    home = Path(args.home).resolve()
    env = stack_env(home, args.host, args.port)
    try:
        start_server(home, env, args.host, args.port)
        print(f"server: http://{args.host}:{args.port} (logs {_log_file(home, 'server')})")
        if args.server_only:
            return
        configure(env, args)
        if not args.no_worker:
            start_worker(home, env)  # it starts while the deployments register
        deploy(env)
        if not args.no_worker:
            wait_worker_online(home, env)
            print(f"worker on {POOL}: online (logs {_log_file(home, 'worker')})")
    except StartFailed as error:
        print(f"start failed: {error}", file=sys.stderr)
        sys.exit(1)
    print(
        f"\nUI: http://{args.host}:{args.port}  (Deployments -> bill-day/scheduled -> Run -> "
        "Custom run, to choose as_of)\n"
        f"CLI: PREFECT_API_URL={env['PREFECT_API_URL']} .venv/bin/prefect deployment run "
        "'bill-day/scheduled' -p as_of=2027-02-01\n"
        "Stop: make stop"
    )


def stop(args: argparse.Namespace) -> None:
    """End the worker, then the server: SIGTERM to the group, SIGKILL after ``--timeout``."""
    home = Path(args.home).resolve()
    for name in PROCESSES:
        pid = _running(home, name)
        if pid is not None:
            stop_group(pid, args.timeout)
            print(f"{name} stopped (pid {pid})")
        _pid_file(home, name).unlink(missing_ok=True)


def stop_group(pid: int, timeout: float) -> None:
    """SIGTERM the group ``pid`` leads and its other descendants (flow runs may have their own
    session); SIGKILL whatever is left after ``timeout`` seconds."""
    targets = _descendants(pid)
    _signal(pid, targets, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _group_alive(pid) and not any(_exists(p) for p in targets):
            return
        time.sleep(0.2)
    _signal(pid, targets, signal.SIGKILL)


def _signal(pgid: int, pids: set[int], sig: signal.Signals) -> None:
    for send, target in [(os.killpg, pgid), *((os.kill, p) for p in pids)]:
        try:
            send(target, sig)
        except ProcessLookupError:
            pass


def _descendants(pid: int) -> set[int]:
    """Every process below ``pid`` in the process tree (from /proc)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def _exists(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    try:  # reap our own child, if it is one, so it does not linger as a zombie
        os.waitpid(pgid, os.WNOHANG)
    except ChildProcessError:
        pass
    return True


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="scripts/server.py", description=__doc__.split("\n")[0])
    parser.add_argument("command", choices=["start", "stop"])
    parser.add_argument(
        "--home", default=os.environ.get("PREFECT_HOME", str(ROOT / "var" / "prefect"))
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=4200)
    parser.add_argument("--database", help="billing database URL (default BILLING_DATABASE_URL)")
    parser.add_argument("--output-dir", help="BillRunSettings.output_dir (default var/output)")
    parser.add_argument("--server-only", action="store_true", help="only start the server")
    parser.add_argument("--no-worker", action="store_true", help="start no worker")
    parser.add_argument("--timeout", type=float, default=30, help="seconds before SIGKILL")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    {"start": start, "stop": stop}[args.command](args)


if __name__ == "__main__":
    main()
