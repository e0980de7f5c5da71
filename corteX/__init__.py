"""corteX, as the seed imports it: ``corteX.tenancy.dna``."""
