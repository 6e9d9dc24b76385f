"""Cost of the guarded read path, measured side by side in one run.

One appointment is read 1) through the full API path (TLS 1.3, bearer session,
claims, row-level security, the audit event committed in the same transaction,
field decryption) and 2) through a bare endpoint that reads the same row with plain
SQL as the cluster's superuser: no RLS, no audit, no session. Both are served by the
same server process with the same TLS settings; the bare endpoint is mounted only
here, never by the shipped application. 32 concurrent clients, keep-alive.

    python bench/api_read.py [--seconds 8] [--clients 32]

Needs `wrk` (Debian package: `apt-get install wrk`). Prints requests/s
and p99 for both, then `api_read_ratio: X` (full / bare).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve()


def serve(data_dir: str, port: int) -> None:
    """The benchmark's server: the shipped app plus one bare route."""
    import psycopg_pool
    import uvicorn

    from perpetua.config import Settings
    from perpetua.db.embedded import ADMIN_ROLE
    from perpetua.db.pool import Database
    from perpetua.db.target import DATABASE_NAME, open_target
    from perpetua.observability.logging import configure_logging
    from perpetua.server import Tls13Config, tls_files
    from perpetua.tls import server_context
    from perpetua.web.app import create_app

    settings = Settings(data_dir=Path(data_dir), port=port)
    with open_target(settings) as target:
        assert target.embedded is not None
        admin = target.embedded.conninfo(
            ADMIN_ROLE, target.embedded.admin_password(), DATABASE_NAME
        )
        bare_pool = psycopg_pool.AsyncConnectionPool(
            " ".join(f"{k}={v}" for k, v in admin.items()),
            min_size=4,
            max_size=20,
            open=False,
        )
        app = create_app(settings, Database(target.conninfo("service")), run_jobs=False)

        @app.get("/bench/bare/{appointment_id}")
        async def bare(appointment_id: str) -> dict[str, object]:
            if bare_pool.closed:
                await bare_pool.open()
            async with bare_pool.connection() as conn:
                cur = await conn.execute(
                    "select id, patient_id, provider_id, starts_at, ends_at, status "
                    "from phi.appointments where id = %s",
                    (appointment_id,),
                )
                row = await cur.fetchone()
            assert row is not None
            keys = ("id", "patient_id", "provider_id", "starts_at", "ends_at", "status")
            return {k: str(v) for k, v in zip(keys, row, strict=True)}

        cert, key = tls_files(settings)
        config = Tls13Config(
            app,
            host="127.0.0.1",
            port=port,
            ssl_certfile=str(cert),
            ssl_keyfile=str(key),
            context=server_context(cert, key),
            log_config=None,
            access_log=False,
            lifespan="on",
        )
        # Logged as in production (one JSON line per request), to /dev/null.
        configure_logging("json")
        # As `perpetua serve` does: uvicorn re-raises SIGTERM after shutting down;
        # as SystemExit it unwinds open_target, which stops the embedded database.
        signal.signal(signal.SIGTERM, _exit_on_sigterm)
        uvicorn.Server(config).run()


def _exit_on_sigterm(_signum: int, _frame: object) -> None:
    raise SystemExit(0)


def _context() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def _json(url: str, body: dict | None = None, token: str | None = None) -> object:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data)  # noqa: S310 - loopback https
    req.add_header("content-type", "application/json")
    if token:
        req.add_header("authorization", f"Bearer {token}")
    with urllib.request.urlopen(req, context=_context(), timeout=30) as r:  # noqa: S310
        return json.loads(r.read())


def load(url: str, headers: dict[str, str], seconds: float, clients: int):
    """Drive the endpoint with wrk (C, keep-alive, TLS): a Python client would be
    the bottleneck on this 2-core machine and flatten the ratio."""
    command = [
        "wrk",
        "-t",
        "2",
        "-c",
        str(clients),
        "-d",
        f"{seconds:.0f}s",
        "--latency",
    ]
    for key, value in headers.items():
        command += ["-H", f"{key}: {value}"]
    output = subprocess.run(
        [*command, url], capture_output=True, text=True, check=True
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([0-9.]+)", output)[1])  # type: ignore[index]
    p99_text = re.search(r"99%\s+([0-9.]+)(us|ms|s)", output)
    assert p99_text is not None
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[p99_text[2]]
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    if non_2xx:
        raise SystemExit(f"{url}: {non_2xx[1]} failed responses")
    return rps, float(p99_text[1]) * scale


def _cpu_seconds(*pids: int) -> float:
    """User plus system CPU time of processes, from /proc (Linux)."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def _postgres_pids() -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == "postgres":
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=8)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--serve", nargs=2, metavar=("DATA_DIR", "PORT"))
    args = parser.parse_args()
    if args.serve:
        serve(args.serve[0], int(args.serve[1]))
        return

    data_dir = Path(tempfile.mkdtemp(prefix="perpetua-bench-")) / "data"
    env = {**os.environ, "PERPETUA_DATA_DIR": str(data_dir)}
    env.pop("DATABASE_URL", None)
    demo = subprocess.run(
        [sys.executable, "-m", "perpetua.cli.main", "demo", "--json"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    members = {m["role"]: m for m in json.loads(demo.stdout)["members"]}
    port = 18443
    server = subprocess.Popen(
        [sys.executable, str(HERE), "--serve", str(data_dir), str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"https://127.0.0.1:{port}"
    try:
        for _ in range(150):
            try:
                _json(base + "/healthz")
                break
            except OSError:
                time.sleep(0.2)
        session = _json(
            base + "/api/v1/sessions",
            {
                "email": members["front_desk"]["email"],
                "password": members["front_desk"]["password"],
            },
        )
        token = session["token"]  # type: ignore[index]
        days = _json(
            base + "/api/v1/schedule?day=" + time.strftime("%Y-%m-%d") + "&days=30",
            token=token,
        )
        if not days:
            days = _json(
                base
                + "/api/v1/schedule?day="
                + time.strftime("%Y-%m-%d", time.gmtime(time.time() - 14 * 86400))
                + "&days=30",
                token=token,
            )
        appointment = days[0]["id"]  # type: ignore[index]
        auth = {"authorization": f"Bearer {token}"}

        results: dict[str, list[tuple[float, float]]] = {"full": [], "bare": []}
        cpu: dict[str, list[tuple[float, float, float]]] = {"full": [], "bare": []}
        for _round in range(2):
            for name, url, headers in (
                ("bare", f"{base}/bench/bare/{appointment}", {}),
                ("full", f"{base}/api/v1/appointments/{appointment}", auth),
            ):
                before = _cpu_seconds(server.pid), _cpu_seconds(*_postgres_pids())
                rps, p99 = load(url, headers, args.seconds / 2, args.clients)
                after = _cpu_seconds(server.pid), _cpu_seconds(*_postgres_pids())
                results[name].append((rps, p99))
                count = rps * args.seconds / 2
                cpu[name].append(
                    (
                        (after[0] - before[0]) / count * 1000,
                        (after[1] - before[1]) / count * 1000,
                        count,
                    )
                )
        print(f"clients: {args.clients}, {args.seconds / 2:.0f} s per round, 2 rounds")
        summary = {}
        for name in ("bare", "full"):
            rps = statistics.mean(r for r, _ in results[name])
            p99 = statistics.mean(p for _, p in results[name])
            summary[name] = rps
            label = (
                "bare SQL (no session, RLS, audit)"
                if name == "bare"
                else ("full API path (session, claims, RLS, audit, decryption)")
            )
            print(f"{label:<58} {rps:8.0f} req/s   p99 {p99:7.1f} ms")
            py = statistics.mean(c[0] for c in cpu[name])
            pg = statistics.mean(c[1] for c in cpu[name])
            print(
                f"{'':<8}CPU per request: service process {py:.2f} ms, "
                f"PostgreSQL {pg:.2f} ms"
            )
        print(f"api_read_ratio: {summary['full'] / summary['bare']:.2f}")
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(30)
        shutil.rmtree(data_dir.parent, ignore_errors=True)


if __name__ == "__main__":
    main()
