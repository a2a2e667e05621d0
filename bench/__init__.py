"""Benchmarks for migrator: synthetic export corpora and the runs that time them.
`bench.corpus` generates documents; `python -m bench` (added separately) runs the benchmarks."""
