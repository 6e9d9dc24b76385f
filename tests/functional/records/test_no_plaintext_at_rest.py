"""After `perpetua demo`, a plain pg_dump holds none of the sample patients' names,
phones or member IDs, and neither does any file in the data directory: not the
database's own files, not its write-ahead log, not the key store, not the blob
store, and not an encrypted backup made with `perpetua backup create`."""

from __future__ import annotations

import json
import os
import re
import subprocess

from tests.conftest import scratch_dir
from tests.support.server import perpetua

from perpetua.db.embedded import ADMIN_ROLE, EmbeddedPostgres, pg_binary
from perpetua.db.target import DATABASE_NAME


def _needles(samples: list[dict[str, str]]) -> list[bytes]:
    found = []
    for sample in samples:
        found += [part.encode() for part in sample["name"].split()]
        found.append(sample["member_id"].encode())
        digits = re.sub(r"\D", "", sample["phone"])
        found += [digits.encode(), digits[-7:].encode(), sample["phone"].encode()]
    return found


def test_demo_data_is_unreadable_in_a_dump_and_on_disk():
    data_dir = scratch_dir("perpetua-at-rest-") / "data"
    demo = perpetua("demo", "--json", data_dir=data_dir)
    assert demo.returncode == 0, demo.stderr
    needles = _needles(json.loads(demo.stdout)["sample_patients"])
    assert len(needles) >= 20

    pg = EmbeddedPostgres(data_dir)
    pg.acquire()
    try:
        info = pg.conninfo(ADMIN_ROLE, pg.admin_password(), DATABASE_NAME)
        dump = subprocess.run(
            [pg_binary("pg_dump"), "--no-owner", info["dbname"]],
            capture_output=True,
            check=True,
            env={
                **os.environ,
                "PGHOST": info["host"],
                "PGPORT": info["port"],
                "PGUSER": info["user"],
                "PGPASSWORD": info["password"],
            },
        ).stdout
        count = subprocess.run(
            [
                pg_binary("psql"),
                "-tAc",
                "select count(*) from phi.patients",
                info["dbname"],
            ],
            capture_output=True,
            text=True,
            check=True,
            env={
                **os.environ,
                "PGHOST": info["host"],
                "PGPORT": info["port"],
                "PGUSER": info["user"],
                "PGPASSWORD": info["password"],
            },
        ).stdout
    finally:
        pg.release()
    assert int(count) == 200  # the data is there; it is just not readable
    for needle in needles:
        assert needle not in dump, needle

    backup = perpetua("backup", "create", data_dir=data_dir)
    assert backup.returncode == 0, backup.stderr
    backup_id = backup.stdout.split()[1].rstrip(":")
    assert (data_dir / "backups" / backup_id / "dump.ppsb").stat().st_size > 0

    for root, _dirs, files in os.walk(data_dir):
        for name in files:
            path = os.path.join(root, name)
            if os.path.islink(path) or not os.path.isfile(path):
                continue
            with open(path, "rb") as handle:
                content = handle.read()
            for needle in needles:
                assert needle not in content, (path, needle)
