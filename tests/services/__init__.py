"""Servers the tests run against (started by the fixtures here, or by .ci/start-*.sh in CI)."""
