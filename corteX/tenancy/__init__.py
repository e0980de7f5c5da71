"""Tenancy features of corteX; the profile lives in :mod:`corteX.tenancy.dna`."""
