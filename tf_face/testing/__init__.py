"""Fixtures for tests, benchmarks and development (not used by the library)."""
