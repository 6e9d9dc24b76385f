"""Specification that the cryptographic core stands alone."""

from __future__ import annotations

import json
import subprocess
import sys


def test_crypto_package_imports_no_database_web_api_or_cloud_code() -> None:
    probe = (
        "import json, sys, perpetua.crypto, perpetua.crypto.kek_aws, "
        "perpetua.crypto.kek_gcp, perpetua.crypto.kek_vault; "
        "print(json.dumps(sorted(sys.modules)))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    )
    loaded = json.loads(done.stdout)

    forbidden = ("perpetua.db", "perpetua.web", "perpetua.api", "boto3", "hvac")
    assert [m for m in loaded if m.startswith(forbidden)] == []
    assert not [m for m in loaded if m.startswith("google.cloud")]
