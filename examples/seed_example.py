from corteX.tenancy.dna import TenantDNA, TenantDNAStore

store = TenantDNAStore()

# Get or create DNA
dna = store.get("acme")  # Returns default if missing

# Update from a session
dna.update_from_session({
    "task_complexity": 0.8,
    "model_tier": "orchestrator",
    "tokens_used": 5000,
    "tools_used": {"code_interpreter": 5, "search": 2},
    "hour_utc": 14,
    "risk_score": 0.4,
    "intent": "code_generation",
})

# Save back
store.save("acme", dna)

# Use for model routing
print(f"Complexity: {dna.avg_task_complexity:.2f}")
print(f"Preferred tier: {dna.preferred_model_tier}")
print(f"Avg tokens: {dna.avg_tokens_per_task}")
print(f"Risk: {dna.risk_profile:.2f}")

# Serialize for persistence
data = dna.to_dict()
restored = TenantDNA.from_dict(data)

# GDPR deletion
store.delete("acme")
