"""The benchmark harness: ``python -m bench`` (``--quick`` for a run of seconds).

``workload`` generates the seeded Zipf traffic, ``contenders`` holds the ways of
serving profiles that are compared, ``run`` times them, ``report`` turns the
measurements into a table, ``results.json`` and a chart.
"""
