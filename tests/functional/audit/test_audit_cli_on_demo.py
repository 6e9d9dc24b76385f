"""`perpetua audit verify` on an untouched demo installation exits 0, before and
after `perpetua audit seal`; a practice id that is not a UUID is refused; a
database never set up is named as such, without a traceback."""

from __future__ import annotations

from tests.conftest import scratch_dir
from tests.support.server import perpetua


def test_verify_passes_on_untouched_demo_before_and_after_sealing():
    data_dir = scratch_dir("perpetua-audit-demo-") / "data"
    demo = perpetua("demo", "--json", data_dir=data_dir)
    assert demo.returncode == 0, demo.stderr

    unsealed = perpetua("audit", "verify", data_dir=data_dir)
    assert unsealed.returncode == 0, unsealed.stderr
    assert "not yet sealed" in unsealed.stdout

    sealed = perpetua("audit", "seal", data_dir=data_dir)
    assert sealed.returncode == 0, sealed.stderr
    assert "sealed" in sealed.stdout

    verified = perpetua("audit", "verify", data_dir=data_dir)
    assert verified.returncode == 0, verified.stderr
    assert "ok" in verified.stdout
    assert "not yet sealed" not in verified.stdout


def test_verify_refuses_a_practice_that_is_not_a_uuid():
    data_dir = scratch_dir("perpetua-audit-demo-") / "data"
    result = perpetua("audit", "verify", "--practice", "nope", data_dir=data_dir)
    assert result.returncode == 2
    assert "UUID" in result.stderr


def test_verify_on_a_database_never_set_up_says_what_to_do():
    data_dir = scratch_dir("perpetua-audit-empty-") / "data"
    result = perpetua("audit", "verify", data_dir=data_dir, timeout=300)
    assert result.returncode == 2
    assert "run `perpetua migrate`" in result.stderr
    assert "Traceback" not in result.stderr
