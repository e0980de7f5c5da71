"""An asyncio service finishing many sessions at once without blocking its loop."""

import asyncio

from actors import AsyncTenantDNAStore


async def main() -> None:
    async with AsyncTenantDNAStore() as store:
        sessions = [
            store.update_from_session(f"tenant-{i % 10}", {"tokens_used": 1000 + i})
            for i in range(100)
        ]
        await asyncio.gather(*sessions)
        print(f"Tenants: {await store.count()}")
        profile = await store.get("tenant-3")
        print(f"tenant-3 averages {profile.avg_tokens_per_task} tokens")


asyncio.run(main())
