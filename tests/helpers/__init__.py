"""Test helpers, one per job; fixtures live in tests/fixtures.py, none of these in conftest.py."""
