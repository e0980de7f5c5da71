"""The store on PostgreSQL: many processes, freshness, a server that restarts.

Runs against the server .ci/run starts (see tests/postgres.py); skipped on a
machine without one, failed in CI.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from actors import StorageError, TenantDNAStore
from dna import TenantDNA
from tests.conftest import PROBE, sessions_applied, wait_for
from tests.postgres import pg_ctl, postgres_url, reset

__all__ = ["postgres_url"]  # the fixture, used by name

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT = 60.0


@pytest.fixture
def url(postgres_url: str) -> str:
    reset(postgres_url)
    return postgres_url


def _job(*arguments: str) -> list[str]:
    return [
        sys.executable,
        str(ROOT / "tests" / "programs" / "pg_store_jobs.py"),
        *arguments,
    ]


def _run(*arguments: str) -> list[dict[str, float]]:
    result = subprocess.run(
        _job(*arguments),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()]


def test_four_processes_of_two_threads_on_ten_shared_tenants_lose_nothing(
    url: str,
) -> None:
    processes, threads, times, tenants = 4, 2, 40, 10
    go = time.time() + 3.0
    children = [
        subprocess.Popen(
            _job("hammer", url, str(tenants), str(threads), str(times), str(go)),
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(processes)
    ]
    conflicts = 0
    for child in children:
        stdout, stderr = child.communicate(timeout=TIMEOUT)
        assert child.returncode == 0, stderr
        conflicts += json.loads(stdout)["conflicts"]
    with TenantDNAStore(url) as store:
        applied = [sessions_applied(store.get(f"shared-{n}")) for n in range(tenants)]
    # Every session of every thread of every process, each exactly once.
    assert sum(applied) == processes * threads * times
    assert applied == [processes * threads * times // tenants] * tenants
    print(f"version conflicts re-applied: {conflicts}")


def test_another_processes_save_and_erasure_are_seen_within_a_second(
    url: str,
) -> None:
    with TenantDNAStore(url) as store:
        store.update_from_session("watched", PROBE, alpha=0.01)  # resident here

        def seen_after(returned: float, condition: object) -> float:
            while not condition():  # type: ignore[operator]
                assert time.time() - returned < 5.0, "never seen"
                time.sleep(0.001)
            return time.time() - returned

        (saved,) = _run("save", url, "watched", "4242")
        save_delay = seen_after(
            saved["returned"],
            lambda: store.get("watched").avg_tokens_per_task == 4242,
        )
        (erased,) = _run("delete", url, "watched")
        erase_delay = seen_after(
            erased["returned"], lambda: store.get_versioned("watched").version == 0
        )
        assert store.list_tenants() == []
    assert save_delay < 1.0
    assert erase_delay < 1.0
    print(f"seen after {save_delay:.3f} s (save), {erase_delay:.3f} s (erasure)")


def test_a_server_restart_mid_run_loses_no_acknowledged_change(url: str) -> None:
    acknowledged = 0
    failed = 0
    stop = threading.Event()

    with TenantDNAStore(url) as store:

        def work() -> None:
            nonlocal acknowledged, failed
            while not stop.is_set():
                try:
                    store.update_from_session("steady", PROBE, alpha=0.01)
                except StorageError:
                    failed += 1
                    time.sleep(0.01)
                else:
                    acknowledged += 1

        worker = threading.Thread(target=work)
        worker.start()
        try:
            while acknowledged < 50:
                time.sleep(0.01)
            pg_ctl("restart", "-m", "immediate")
            before = acknowledged
            deadline = time.monotonic() + TIMEOUT
            # The same store goes on once the server is back: no restart of ours.
            while acknowledged < before + 50:
                assert time.monotonic() < deadline, "the store never recovered"
                time.sleep(0.01)
        finally:
            stop.set()
            worker.join(timeout=TIMEOUT)
        assert not worker.is_alive()
    with TenantDNAStore(url) as reopened:
        applied = sessions_applied(reopened.get("steady"))
    # Nothing acknowledged is lost; a commit whose reply the restart cut off
    # may have been applied though its caller got an error.
    assert acknowledged <= applied <= acknowledged + failed
    print(f"acknowledged {acknowledged}, failed {failed}, applied {applied}")


def test_a_stored_profile_round_trips_with_its_version(url: str) -> None:
    with TenantDNAStore(url) as store:
        store.save("acme", TenantDNA(peak_hours=[9, 14], common_intents=["refund"]))
        dna, version = store.get_versioned("acme")
    with TenantDNAStore(url) as reopened:
        assert reopened.get_versioned("acme") == (dna, version)
        assert version == 1


def test_another_stores_commit_is_rebased_on_without_a_load_per_announcement(
    url: str,
) -> None:
    # No poll for two minutes: only the announcements can tell ours.
    with (
        TenantDNAStore(url, staleness=240, flush_interval=120) as ours,
        TenantDNAStore(url) as theirs,
    ):
        ours.update_from_session("t", {"task_complexity": 0.9})
        loads = ours.stats().activations
        for _ in range(20):
            theirs.update_from_session("t", PROBE, alpha=0.01)
        # Announced to ours: its copy is dropped (a read asks storage) ...
        assert wait_for(lambda: ours.get_versioned("t").version == 21, TIMEOUT), (
            "the other store's commits never showed"
        )
        # ... and read back once for the next readers, not once per commit.
        assert wait_for(lambda: ours.stats().activations > loads, TIMEOUT), (
            "never read back"
        )
        assert ours.stats().activations - loads <= 2
        before = ours.stats()
        answer = ours.update_from_session("t", PROBE, alpha=0.01)
        after = ours.stats()
        assert after.commits - before.commits == 1
        expected = TenantDNA()
        expected.update_from_session({"task_complexity": 0.9})
        for _ in range(21):
            expected.update_from_session(PROBE, alpha=0.01)
        assert answer.avg_task_complexity == pytest.approx(expected.avg_task_complexity)
        assert wait_for(lambda: theirs.get_versioned("t").version == 22, TIMEOUT), (
            "never announced"
        )


def test_a_tenant_erased_by_another_store_starts_a_new_life_here(url: str) -> None:
    with (
        TenantDNAStore(url, staleness=240, flush_interval=120) as ours,
        TenantDNAStore(url) as theirs,
    ):
        ours.update_from_session("t", {"task_complexity": 0.9, "intent": "old"})
        theirs.delete("t")
        # The erasure announced: ours forgets the tenant without a read.
        assert wait_for(lambda: ours.get_versioned("t").version == 0, TIMEOUT), (
            "never saw the erasure"
        )
        ours.update_from_session("t", {"intent": "new"})
        got = ours.get_versioned("t")
        assert (got.version, got.dna.common_intents) == (1, ["new"])
        assert got.dna.avg_task_complexity == TenantDNA().avg_task_complexity
        assert wait_for(lambda: theirs.get("t").common_intents == ["new"], TIMEOUT), (
            "never announced"
        )
