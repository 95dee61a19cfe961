"""ged's benchmark harness: `make bench` (`python -m bench`) measures each figure of
ged beside its raw limit on the same machine in the same run, prints the tables
and rewrites BENCHMARKS.md. `--quick` runs small sizes (the smoke test)."""
