//! Nothing here: the benchmarks live in `benches/` (one module crate per bench binary). Run them
//! with `cargo bench -p modproxy-microbench` (CI runs each once with
//! `-- --test`, so they cannot rot; speed claims come from bench/run.sh).
