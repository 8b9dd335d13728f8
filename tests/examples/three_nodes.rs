//! A 3-node run: three `tracer-node` processes on the test network, the
//! chain n1 -> n2 -> n3, one request, and what crossed the wire.
//!
//! `cargo run -p tests --example three_nodes`

use serde_json::json;
use tests::net::Net;

fn main() {
    let net = Net::start(3);
    let ok = net.request(
        "c1",
        "n1",
        json!({"type": "instrument_service", "services": ["n1", "n2", "n3"]}),
    );
    println!("c1 -> n1 instrument_service\n   <- {ok}");
    let done = net.request(
        "c1",
        "n1",
        json!({"type": "http_request", "path": "/api/users/123"}),
    );
    println!("c1 -> n1 http_request /api/users/123\n   <- {done}");
    println!("\nbetween the nodes:");
    for r in net.routed() {
        let b = &r.msg["body"];
        if matches!(b["type"].as_str(), Some("hop") | Some("hop_ok")) {
            let extra = match b["type"].as_str() {
                Some("hop") => format!(
                    "services={} traceparent={}",
                    b["services"], b["traceparent"]
                ),
                _ => format!("spans={}", b["spans"].as_array().map_or(0, Vec::len)),
            };
            println!(
                "  {} -> {} {} {extra}",
                r.from,
                r.to,
                b["type"].as_str().unwrap_or("?")
            );
        }
    }
    let trace = net.request(
        "c1",
        "n1",
        json!({"type": "get_trace", "trace_id": done["trace_id"]}),
    );
    println!("\nget_trace on n1:");
    for s in trace["spans"].as_array().into_iter().flatten() {
        println!(
            "  {:<7} {:<6} {:<20} {} <- {}",
            s["kind"].as_str().unwrap_or("?"),
            s["service"].as_str().unwrap_or("-"),
            s["name"].as_str().unwrap_or("?"),
            s["span_id"].as_str().unwrap_or("?"),
            s["parent_span_id"].as_str().unwrap_or("(root)")
        );
    }
    net.shutdown().assert_clean();
}
