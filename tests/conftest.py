"""Shared test setup: ``tests/`` is on ``sys.path`` (pytest's rootdir-relative conftest import), so
every test can ``from helpers import ...`` (:mod:`helpers`: the tiny sweep, runners, store readers)."""
