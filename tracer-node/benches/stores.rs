//! The stores alone, in process: `cargo bench -p tracer-node --bench stores`

use std::sync::Arc;
use tracer_node::stores::{LogEntry, LogQuery, LogStore};

fn main() {
    divan::main();
}

const STORED: usize = 1_000_000;
const TRACES: usize = 100_000;

fn filled() -> LogStore {
    let mut store = LogStore::new(STORED);
    for i in 0..STORED {
        let service = store.intern_service(&format!("svc-{}", i % 7));
        store.push(LogEntry {
            service,
            message: Arc::from(format!("step {i}")),
            trace_id: Some(Arc::from(format!("{:032x}", i % TRACES + 1))),
            span_id: None,
            level: None,
            attributes: None,
        });
    }
    store
}

/// `LogStore::search` by trace id (10 hits) with 1,000,000 entries stored.
#[divan::bench]
fn search_by_trace_1m(bencher: divan::Bencher<'_, '_>) {
    let store = filled();
    let ids: Vec<String> = (0..1024)
        .map(|i| format!("{:032x}", i * 7919 % TRACES + 1))
        .collect();
    let mut i = 0;
    bencher.bench_local(|| {
        i = (i + 1) % ids.len();
        let q = LogQuery {
            trace_id: Some(&ids[i]),
            ..LogQuery::default()
        };
        divan::black_box(store.search(&q).len())
    });
}

/// `LogStore::push` at the cap (every push evicts the oldest entry).
#[divan::bench]
fn push_at_cap(bencher: divan::Bencher<'_, '_>) {
    let mut store = LogStore::new(100_000);
    let svc = store.intern_service("svc");
    let mut i = 0u64;
    bencher.bench_local(|| {
        i += 1;
        store.push(LogEntry {
            service: svc.clone(),
            message: Arc::from("message"),
            trace_id: Some(Arc::from(format!("{:032x}", i % 10_000 + 1))),
            span_id: None,
            level: None,
            attributes: None,
        });
    });
}
