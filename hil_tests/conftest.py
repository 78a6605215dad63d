"""Loads the HIL bench plugin (options, report fixture, summary table) for this folder's tests."""

from hil_tests.plugin import *  # noqa: F403  (pytest finds hooks and fixtures by name in a conftest)
