"""Comparing runs: reading the store, statistics, rendering."""
