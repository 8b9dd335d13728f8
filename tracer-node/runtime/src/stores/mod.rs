//! The node's stores of user data: traces assembled from finished spans,
//! and log entries indexed by trace and service. Both are bounded; what
//! they let go is counted.

pub mod ids;
mod logs;
mod traces;

pub use ids::{span_id_for, trace_id_for, TraceKey};
pub use logs::{LogEntry, LogQuery, LogStats, LogStore, MAX_LEVELS};
pub use traces::{is_node_span, StoreLimits, StoreStats, StoredTrace, TraceStore};

use std::sync::{Arc, Mutex};

/// A store shared with the pipeline as one of its processors: the trace
/// store takes finished spans (user data only), the log store log records.
pub struct Processor<S>(pub Arc<Mutex<S>>);
