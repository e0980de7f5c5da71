"""Learn a tenant's profile from a few sessions and print what it says."""

from dna import TenantDNA

SESSIONS = [
    {"task_complexity": 0.8, "model_tier": "orchestrator", "tokens_used": 5000,
     "tools_used": {"code_interpreter": 5, "search": 2}, "hour_utc": 14,
     "risk_score": 0.4, "intent": "code_generation"},
    {"task_complexity": 0.6, "tokens_used": 3000, "tools_used": {"search": 4},
     "hour_utc": 15, "intent": "research"},
]  # fmt: skip

dna = TenantDNA()
for session in SESSIONS:
    dna.update_from_session(session)

print(f"Complexity: {dna.avg_task_complexity:.3f}")
print(f"Preferred tier: {dna.preferred_model_tier}")
print(f"Avg tokens: {dna.avg_tokens_per_task}")
print(f"Tools: {dict(sorted(dna.tool_usage_frequency.items()))}")
print(f"Peak hours: {dna.peak_hours}")
print(f"Intents: {dna.common_intents}")
