"""Runs loopd as a real deployment on loopback (Redis, PostgreSQL, each role as its own process, a fake
model API) for the test suite and the benchmarks; neither distribution installs it."""
