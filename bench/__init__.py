"""The benchmark harness: ``python -m bench`` (``--quick`` for a run of seconds).

``workload`` generates the seeded Zipf traffic, ``contenders`` holds the ways of
serving profiles that are compared, ``run`` times them, ``report`` turns the
measurements into a table, ``results.json`` and a chart. ``python -m
bench.population`` (minutes; not in the default run) is issue 11's million
distinct tenants: first touches, a Zipf read pass and erasures, in memory and
on SQLite.
"""
