"""Quarantine: events the worker could not fold, kept aside with the reason, to retry or drop."""
