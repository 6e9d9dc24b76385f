"""No response carries PHI before the transaction holding its audit event has
committed durably: clients read appointments while the server and then the database
are killed without warning; after recovery, every response a client received has
its audit event."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
import uuid

import httpx2
import psycopg
from tests.conftest import scratch_dir
from tests.support.server import Server, perpetua

from perpetua.db.embedded import ADMIN_ROLE, EmbeddedPostgres
from perpetua.db.target import DATABASE_NAME


def test_every_received_response_has_a_durable_audit_event():
    data_dir = scratch_dir("perpetua-kill-") / "data"
    demo = perpetua("demo", "--json", data_dir=data_dir)
    assert demo.returncode == 0, demo.stderr
    desk = next(
        m for m in json.loads(demo.stdout)["members"] if m["role"] == "front_desk"
    )

    server = Server(data_dir).start()
    http = httpx2.Client(base_url=server.url, verify=False, timeout=10)
    token = http.post(
        "/api/v1/sessions", json={"email": desk["email"], "password": desk["password"]}
    ).json()["token"]
    auth = {"Authorization": f"Bearer {token}"}
    day = time.strftime("%Y-%m-%d", time.gmtime(time.time() - 14 * 86400))
    visits = http.get(f"/api/v1/schedule?day={day}&days=30", headers=auth).json()
    assert visits
    target_id = visits[0]["id"]

    received: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()

    def reader() -> None:
        client = httpx2.Client(base_url=server.url, verify=False, timeout=5)
        while not stop.is_set():
            request_id = uuid.uuid4().hex
            try:
                response = client.get(
                    f"/api/v1/appointments/{target_id}",
                    headers={**auth, "X-Request-Id": request_id},
                )
            except httpx2.HTTPError:
                continue
            if response.status_code == 200 and response.json()["id"] == target_id:
                with lock:
                    received.append(response.headers["x-request-id"])
        client.close()

    threads = [threading.Thread(target=reader) for _ in range(8)]
    for thread in threads:
        thread.start()
    time.sleep(3)

    # Kill the service mid-stream without warning, then abort the database as a
    # crash would (no checkpoint: the next start must replay its log).
    assert server.process is not None
    os.kill(server.process.pid, signal.SIGKILL)
    pg = EmbeddedPostgres(data_dir)
    pg.stop("immediate")
    stop.set()
    for thread in threads:
        thread.join()
    server.process.wait()
    http.close()
    assert len(received) > 20, "the clients should have read data before the kill"

    # Crash recovery, then look for every event as an auditor would.
    pg.acquire()
    try:
        admin = pg.conninfo(ADMIN_ROLE, pg.admin_password(), DATABASE_NAME)
        with psycopg.connect(**admin) as conn:
            recorded = {
                row[0]
                for row in conn.execute(
                    "select request_id from audit.events where request_id = any (%s)",
                    (received,),
                )
            }
    finally:
        pg.release()
    missing = set(received) - recorded
    assert not missing, f"{len(missing)} responses without an audit event"
