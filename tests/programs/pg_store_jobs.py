"""Jobs run as child processes by tests/test_postgres_store.py; JSON on stdout."""

from __future__ import annotations

import json
import sys
import threading
import time

from actors import TenantDNAStore
from dna import TenantDNA

PROBE = {"task_complexity": 1.0}


def hammer(url: str, tenants: str, threads: str, times: str, go: str) -> None:
    """``threads`` threads each send ``times`` probe sessions round the tenants."""
    count, per = int(tenants), int(times)
    with TenantDNAStore(url) as store:
        # Started together across processes, so their commits collide.
        time.sleep(max(0.0, float(go) - time.time()))

        def work(n: int) -> None:
            for i in range(per):
                store.update_from_session(
                    f"shared-{(n + i) % count}", PROBE, alpha=0.01
                )

        workers = [
            threading.Thread(target=work, args=(n,)) for n in range(int(threads))
        ]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(timeout=120)
        print(json.dumps({"conflicts": store.stats().version_conflicts}))


def save(url: str, tenant_id: str, tokens: str) -> None:
    """Save a profile with ``tokens``; print when the save returned."""
    with TenantDNAStore(url) as store:
        store.save(tenant_id, TenantDNA(avg_tokens_per_task=int(tokens)))
        print(json.dumps({"returned": time.time()}), flush=True)


def delete(url: str, tenant_id: str) -> None:
    """Erase the tenant; print when the erasure returned."""
    with TenantDNAStore(url) as store:
        store.delete(tenant_id)
        print(json.dumps({"returned": time.time()}), flush=True)


JOBS = {"hammer": hammer, "save": save, "delete": delete}

if __name__ == "__main__":
    JOBS[sys.argv[1]](*sys.argv[2:])
