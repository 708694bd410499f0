"""A local Prefect stack for openbill: server, blocks, mail catcher, files server, worker.

    python scripts/server.py start [--port 4200] [--home var/prefect] [--data-dir var]
                                   [--database URL] [--files-port N] [--smtp-port N] ...
    python scripts/server.py stop  [--home var/prefect]

``start`` makes the API auth string once (``<PREFECT_HOME>/api-auth-string``, mode 0600,
``admin:<random>``), runs ``prefect server start`` in the background with it
(PREFECT_SERVER_API_AUTH_STRING; analytics off; SQLite under PREFECT_HOME, or PostgreSQL
through PREFECT_API_DATABASE_CONNECTION_URL) and waits for /api/health. Then it creates the
process work pool ``billing-pool``, the "default" blocks (blocks/register.py), the global
concurrency limit ``bill-day-batches``, migrates the billing database of the
``billing-database/default`` block, starts the mail catcher (scripts/mail_catcher.py: SMTP on
127.0.0.1, every message into ``<data-dir>/mail``) and the files server
(scripts/files_server.py: the output and document folders over HTTP, same credentials),
starts a worker on the pool, registers every deployment of prefect.yaml
(``prefect --no-prompt deploy --all``) and waits until the worker is online. It records the
stack in ``<PREFECT_HOME>/stack.json`` (flows/stack.py reads it). Each step may be repeated:
what exists or runs is kept. Logs and pid files are under PREFECT_HOME; ``stop`` ends the
worker, the files server, the mail catcher, then the server (each is its own process group).

Every client of the stack (this script, ``prefect deploy``, the worker and its flow runs)
gets PREFECT_API_URL and PREFECT_API_AUTH_STRING. Every other variable of the environment
(PREFECT_*, BILLING_*) reaches the server, the worker and the flow runs. ``make server`` and
``make stop`` call this; so does tests/operations, so the tests prove the same path.
"""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from flows.stack import AUTH_FILE, STACK_FILE, Stack, write_stack  # noqa: E402  (no Prefect)

PREFECT_CLI = [sys.executable, "-m", "prefect"]
POOL = "billing-pool"
BATCH_LIMIT = "bill-day-batches"
LOOPBACK = "127.0.0.1"
PROCESSES = ("worker", "files", "mail", "server")  # stopped in this order
BILL_DAY = "bill-day/daily-01-00-utc"


class StartFailed(RuntimeError):
    """A step of ``start`` did not succeed in time; the message says which and shows the log."""


def auth_string(home: Path) -> str:
    """The API's ``user:password``, made once into ``<home>/api-auth-string`` (mode 0600).

    The file is created with O_EXCL and mode 0600 in one call, so it is never readable by
    others, not even for a moment; later starts read it, and tighten its mode if someone
    loosened it. Delete it (with the stack stopped) to get a new one.
    """
    home.mkdir(parents=True, exist_ok=True)
    path = home / AUTH_FILE
    value = f"admin:{secrets.token_urlsafe(24)}"
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        if path.stat().st_mode & 0o077:
            os.chmod(path, 0o600)
            print(f"{path}: others could read it; mode set to 0600")
        existing = path.read_text().strip()
        if ":" not in existing:
            raise StartFailed(
                f"{path} must hold user:password; delete it to make a new one"
            ) from None
        return existing
    with os.fdopen(fd, "w") as out:
        out.write(value + "\n")
    return value


def stack_env(home: Path, host: str, port: int, auth: str) -> dict[str, str]:
    """The environment of every client of the stack: this script, deploy, worker, flow runs."""
    env = dict(os.environ)
    env.update(
        PREFECT_HOME=str(home),
        PREFECT_API_URL=f"http://{host}:{port}/api",
        PREFECT_API_AUTH_STRING=auth,
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


def _listening(port: int) -> bool:
    with socket.create_connection((LOOPBACK, port), timeout=2):
        return True


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


def _basic(auth: str) -> tuple[str, str]:
    user, _, password = auth.partition(":")
    return user, password


def start_server(home: Path, env: dict[str, str], host: str, port: int) -> None:
    """Start the server with the auth string (unless it runs); wait for it to answer."""
    if _running(home, "server"):
        print(f"server already running (pid {_running(home, 'server')})")
    else:
        server_env = {k: v for k, v in env.items() if k != "PREFECT_API_URL"}
        server_env["PREFECT_SERVER_API_AUTH_STRING"] = env["PREFECT_API_AUTH_STRING"]
        argv = [*PREFECT_CLI, "server", "start", "--host", host, "--port", str(port)]
        _spawn(home, "server", argv, server_env)
    import httpx

    api = env["PREFECT_API_URL"]

    def healthy() -> bool:
        return httpx.get(f"{api}/health", timeout=2).status_code == 200

    _wait("/api/health", healthy, 120, home, "server")
    answer = httpx.get(
        f"{api}/admin/version", auth=_basic(env["PREFECT_API_AUTH_STRING"]), timeout=10
    )
    if answer.status_code != 200:
        raise StartFailed(
            f"{api} answers {answer.status_code} with the auth string of {home / AUTH_FILE}: "
            "is another server (or one started with another auth string) on this port? "
            "Stop it first (make stop)."
        )


def configure(env: dict[str, str], args: argparse.Namespace) -> tuple[Path, Path | None]:
    """Work pool, blocks, concurrency limit, billing schema: each kept when it exists.

    Returns the folders the files server serves: the settings' output_dir and the document
    store's folder (None when the store is not a local folder).
    """
    with prefect_settings(env):
        return _configure(args)


def prefect_settings(env: dict[str, str]) -> AbstractContextManager[Any]:
    """Prefect's settings of ``env`` (the stack's API, auth string, home) for this process's
    clients, for the ``with`` block only: ``os.environ`` is left as it is, and the
    subprocesses (server, worker, deploy) get ``env`` as their environment."""
    import prefect.settings
    from prefect.settings import temporary_settings

    updates = {
        getattr(prefect.settings, name): value
        for name, value in env.items()
        if name.startswith("PREFECT_")
        and os.environ.get(name) != value
        and hasattr(prefect.settings, name)
    }
    return temporary_settings(updates=updates)


def _configure(args: argparse.Namespace) -> tuple[Path, Path | None]:
    from sqlalchemy import make_url

    from billing.store.db import make_engine
    from billing.store.migrate import upgrade
    from blocks.bill_run_settings import BillRunSettings
    from blocks.billing_database import BillingDatabase
    from blocks.document_store import DocumentStoreLocation
    from blocks.load import BlockNotUsable, require_block
    from blocks.register import DEFAULT, register
    from flows.runtime import ensure_concurrency_limit

    create_pool()
    print(f"work pool {POOL}: ready")
    try:
        blocks = register(
            database_url=args.database,
            data_dir=args.data_dir,
            output_dir=args.output_dir,
            files_url=files_url(args),
            smtp_port=args.smtp_port,
        )
    except BlockNotUsable as error:
        raise StartFailed(
            f"{error}\nFix that block in the UI (Blocks), or replace every default block with "
            "python -m blocks.register --overwrite"
        ) from None
    for name, what in blocks.items():
        print(f"block {name}: {what}")
    if "kept" in blocks.values():
        print("  (existing blocks are kept: python -m blocks.register --overwrite replaces them)")
    settings = require_block(BillRunSettings, DEFAULT)
    if settings.files_url != files_url(args):
        print(
            f"  note: bill-run-settings/default has files_url={settings.files_url!r}, the files "
            f"server of this stack is {files_url(args)}"
        )
    ensure_concurrency_limit(BATCH_LIMIT, settings.children)
    print(f"global concurrency limit {BATCH_LIMIT}: ready")
    database = require_block(BillingDatabase, DEFAULT).url.get_secret_value()
    engine = make_engine(database)
    upgrade(engine)
    engine.dispose()
    print(f"billing database migrated: {make_url(database).render_as_string(hide_password=True)}")
    store = require_block(DocumentStoreLocation, DEFAULT).url
    local = "://" not in store or store.startswith("file://")
    documents = Path(store.removeprefix("file://")).resolve() if local else None
    return Path(settings.output_dir).resolve(), documents


def deploy(env: dict[str, str], prefect_file: str) -> None:
    """Every deployment of prefect.yaml, from the repository root (which flow runs start in)."""
    _prefect(env, "--no-prompt", "deploy", "--all", "--prefect-file", prefect_file)
    print(f"deployments of {prefect_file}: registered")


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


def files_url(args: argparse.Namespace) -> str:
    return f"http://{LOOPBACK}:{args.files_port}"


def data_dir(args: argparse.Namespace) -> Path:
    return Path(args.data_dir or ROOT / "var").resolve()


def start_mail(home: Path, env: dict[str, str], args: argparse.Namespace) -> None:
    """The mail catcher on 127.0.0.1:``--smtp-port``, writing into ``<data-dir>/mail``."""
    if _running(home, "mail"):
        print(f"mail catcher already running (pid {_running(home, 'mail')})")
    else:
        argv = [sys.executable, str(ROOT / "scripts" / "mail_catcher.py")]
        argv += ["--port", str(args.smtp_port), "--maildir", str(data_dir(args) / "mail")]
        _spawn(home, "mail", argv, env)
    _wait(
        f"mail catcher on port {args.smtp_port}",
        lambda: _listening(args.smtp_port),
        30,
        home,
        "mail",
    )


def start_files(
    home: Path, env: dict[str, str], args: argparse.Namespace, output: Path, documents: Path | None
) -> None:
    """The files server on 127.0.0.1:``--files-port``: /output/ and /documents/, Basic auth."""
    if _running(home, "files"):
        print(f"files server already running (pid {_running(home, 'files')})")
    else:
        argv = [sys.executable, str(ROOT / "scripts" / "files_server.py")]
        argv += ["--port", str(args.files_port), "--auth-file", str(home / AUTH_FILE)]
        argv += ["--mount", f"output={output}"]
        if documents is not None:
            argv += ["--mount", f"documents={documents}"]
        _spawn(home, "files", argv, env)
    _wait(
        f"files server on port {args.files_port}",
        lambda: _listening(args.files_port),
        30,
        home,
        "files",
    )


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
    auth = _basic(env["PREFECT_API_AUTH_STRING"])

    def online() -> bool:
        workers = httpx.post(url, json=body, auth=auth, timeout=5).json()
        return any(w["name"] == name for w in workers)

    _wait("online worker", online, 90, home, "worker")


def start(args: argparse.Namespace) -> None:
    home = Path(args.home).resolve()
    args.files_port = args.files_port or args.port + 1
    args.smtp_port = args.smtp_port or args.port + 2
    try:
        auth = auth_string(home)
        env = stack_env(home, args.host, args.port, auth)
        start_server(home, env, args.host, args.port)
        ui = f"http://{args.host}:{args.port}"
        write_stack(
            Stack(
                home=home,
                api_url=env["PREFECT_API_URL"],
                ui_url=ui,
                files_url=files_url(args),
                auth_file=home / AUTH_FILE,
                mail_dir=data_dir(args) / "mail",
                smtp_port=args.smtp_port,
            )
        )
        print(f"server: {ui} (logs {_log_file(home, 'server')})")
        if args.server_only:
            return
        output, documents = configure(env, args)
        start_mail(home, env, args)
        print(f"mail catcher: {LOOPBACK}:{args.smtp_port} -> {data_dir(args) / 'mail'}")
        start_files(home, env, args, output, documents)
        print(f"files server: {files_url(args)}/output/ and /documents/")
        if not args.no_worker:
            start_worker(home, env)  # it starts while the deployments register
        deploy(env, args.prefect_file)
        if not args.no_worker:
            wait_worker_online(home, env)
            print(f"worker on {POOL}: online (logs {_log_file(home, 'worker')})")
    except StartFailed as error:
        print(f"start failed: {error}", file=sys.stderr)
        sys.exit(1)
    print(
        f"\nUI:    {ui}  (log in with the contents of {home / AUTH_FILE})\n"
        f"       Deployments -> {BILL_DAY} -> Run -> Custom run, to choose as_of\n"
        f"Files: {files_url(args)}/output/  {files_url(args)}/documents/  (same login)\n"
        f"Mail:  every e-mail the stack sends lands in {data_dir(args) / 'mail'}/new\n"
        f"CLI:   PREFECT_API_URL={env['PREFECT_API_URL']} "
        f'PREFECT_API_AUTH_STRING="$(cat {home / AUTH_FILE})" \\\n'
        f"         .venv/bin/prefect deployment run '{BILL_DAY}' -p as_of=2027-02-01\n"
        "Stop:  make stop"
    )


def stop(args: argparse.Namespace) -> None:
    """End the worker, files server, mail catcher, then the server: SIGTERM to each group,
    SIGKILL after ``--timeout``."""
    home = Path(args.home).resolve()
    for name in PROCESSES:
        pid = _running(home, name)
        if pid is not None:
            stop_group(pid, args.timeout)
            print(f"{name} stopped (pid {pid})")
        _pid_file(home, name).unlink(missing_ok=True)
    (home / STACK_FILE).unlink(missing_ok=True)


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
    parser.add_argument(
        "--data-dir", help="documents, output, mail, sandbox ledger (default var in the checkout)"
    )
    parser.add_argument("--output-dir", help="BillRunSettings.output_dir (default DATA/output)")
    parser.add_argument("--files-port", type=int, help="files server port (default PORT+1)")
    parser.add_argument("--smtp-port", type=int, help="mail catcher port (default PORT+2)")
    parser.add_argument(
        "--prefect-file", default="prefect.yaml", help="the deployments to register"
    )
    parser.add_argument("--server-only", action="store_true", help="only start the server")
    parser.add_argument("--no-worker", action="store_true", help="start no worker")
    parser.add_argument("--timeout", type=float, default=30, help="seconds before SIGKILL")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    {"start": start, "stop": stop}[args.command](args)


if __name__ == "__main__":
    main()
