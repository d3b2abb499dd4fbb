"""Speed benchmarks and the MovieLens evaluation. Run from the repository root:
`python -m benchmarks.<script> --help` (see benchmarks/README.md)."""
