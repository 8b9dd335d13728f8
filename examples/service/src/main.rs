//! A plain Rust service traced end to end with one dependency
//! (`tracer-core`, feature `otlp`) and one call (`tracer_core::otlp::init`).
//!
//! It serves a batch of orders: each one is parsed, priced and charged in
//! nested `#[traced]` functions, on tokio's worker threads and across
//! `.await`; a nightly report runs on a thread of its own. Some orders
//! fail (a bad id, a declined card): their spans carry status ERROR and an
//! `exception` event. Log records carry the ids of the span they were
//! written in. Everything goes to the collector the `OTEL_*` variables
//! name (`http://localhost:4318` by default).
//!
//! ```text
//! OTEL_SERVICE_NAME=shop OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4318 \
//!     cargo run -p example-service -- 20
//! ```

use std::fmt;
use std::time::Duration;
use tracer_core::traced;

#[derive(Debug)]
struct Order {
    id: u32,
    cents: u64,
}

#[derive(Debug)]
enum OrderError {
    BadId(u32),
    Declined { id: u32 },
}

impl fmt::Display for OrderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OrderError::BadId(id) => write!(f, "order id {id} is not valid"),
            OrderError::Declined { id } => write!(f, "card declined for order {id}"),
        }
    }
}

impl std::error::Error for OrderError {}

/// Every seventh id is malformed.
#[traced(err)]
fn parse_order(id: u32) -> Result<Order, OrderError> {
    if id % 7 == 6 {
        return Err(OrderError::BadId(id));
    }
    Ok(Order {
        id,
        cents: price(id),
    })
}

#[traced]
fn price(id: u32) -> u64 {
    u64::from(id) * 125 + 999
}

/// The payment provider, a remote call: every fifth charge is declined.
#[traced(kind = client, skip(order), fields(payment.order = order.id, payment.cents = order.cents), err)]
async fn charge(order: &Order) -> Result<(), OrderError> {
    tokio::time::sleep(Duration::from_millis(2)).await;
    if order.id % 5 == 4 {
        log::warn!("card declined for order {}", order.id);
        return Err(OrderError::Declined { id: order.id });
    }
    Ok(())
}

#[traced(kind = server, err)]
async fn handle_order(id: u32) -> Result<(), OrderError> {
    let order = parse_order(id)?;
    charge(&order).await?;
    log::info!("order {} charged {} cents", order.id, order.cents);
    Ok(())
}

/// A thread of its own, its own trace.
#[traced(root)]
fn nightly_report(orders: u32) -> u64 {
    (0..orders).map(price).sum()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let _guard = tracer_core::otlp::init()?;

    let orders: u32 = match std::env::args().nth(1) {
        Some(n) => n
            .parse()
            .map_err(|_| format!("not a count of orders: {n}"))?,
        None => 10,
    };
    let report = std::thread::spawn(move || nightly_report(orders));
    let tasks: Vec<_> = (0..orders)
        .map(|id| tokio::spawn(handle_order(id)))
        .collect();
    let mut failed = 0;
    for t in tasks {
        if t.await?.is_err() {
            failed += 1;
        }
    }
    let total = report.join().map_err(|_| "the report thread panicked")?;
    log::info!("{orders} orders, {failed} failed, {total} cents listed");
    Ok(())
} // the guard delivers what is queued, within TRACER_FLUSH_TIMEOUT_MS
