"""Measuring commands built on the harness.

python -m bench.loadtest | bench.barge_in | bench.plugin_latency
"""
