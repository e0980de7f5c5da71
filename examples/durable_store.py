"""Profiles that outlive the process: learn, close, reopen, compare-and-set, erase."""

import tempfile
from pathlib import Path

from actors import TenantDNAStore, VersionConflict

with tempfile.TemporaryDirectory() as folder:
    path = Path(folder) / "profiles.db"
    with TenantDNAStore(path) as store:
        store.update_from_session("acme", {"tokens_used": 5000, "hour_utc": 14})

    with TenantDNAStore(path) as store:  # a restart: the profile is still there
        dna, version = store.get_versioned("acme")
        print(f"After restart: {dna.avg_tokens_per_task} tokens, version {version}")
        dna.peak_hours.append(15)
        store.save("acme", dna, expected_version=version)
        try:
            store.save("acme", dna, expected_version=version)  # stale now
        except VersionConflict as conflict:
            print(f"Refused: expected {conflict.expected}, found {conflict.actual}")
        store.delete("acme")
        print(f"Erased: {store.count} tenants stored")
