"""Shipped models and the pipeline that builds them (not part of the installed agent)."""
