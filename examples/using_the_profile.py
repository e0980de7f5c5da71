"""Learn a profile from two sessions, then drive the five first-turn decisions."""

from dna import TenantDNA
from dna.insights import (
    anomaly_report,
    capacity_by_hour,
    predict_cost,
    recommend_tier,
    tools_to_prewarm,
)

dna = TenantDNA()
dna.update_from_session(
    {"task_complexity": 0.9, "model_tier": "orchestrator", "tokens_used": 5000,
     "tools_used": {"code_interpreter": 5, "search": 2}, "hour_utc": 14,
     "risk_score": 0.2, "intent": "code_generation"}
)  # fmt: skip
dna.update_from_session(
    {"task_complexity": 0.8, "tokens_used": 3000, "tools_used": {"search": 4},
     "hour_utc": 15, "intent": "research"}
)  # fmt: skip

tier = recommend_tier(dna)
print(f"Tier: {tier.tier} ({tier.reason})")

cost = predict_cost(dna, price_per_1k_tokens=0.01, sessions=30)
print(f"30 sessions: {cost.tokens} tokens, ${cost.cost:.2f}")

print(f"Pre-warm: {', '.join(tools_to_prewarm(dna))}")

report = anomaly_report(
    dna, {"hour_utc": 3, "tokens_used": 12000, "tools_used": {"shell": 1}}
)
print(f"Anomaly score: {report.score:.1f}")
for reason in report.reasons:
    print(f"  {reason}")

other = TenantDNA(avg_tokens_per_task=1200, peak_hours=[9, 14])
load = capacity_by_hour([dna, other, TenantDNA()])
print(f"Expected tokens at 14:00 UTC: {load[14]:.0f} of {sum(load):.0f}")
