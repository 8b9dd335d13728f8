//! Benchmarks only: see `benches/compare.rs` and BENCHMARKS.md.
