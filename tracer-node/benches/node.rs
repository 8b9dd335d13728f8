//! Throughput and latency of the node: the real binary over pipes, and the
//! node's loop in process beside a bare serde_json loop measured in the
//! same run (the baseline its `log` path is held to).
//!
//! `cargo bench -p tracer-node --bench node`

use serde::{Deserialize, Serialize};
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::Mutex;
use std::thread;
use tracer_node::{Config, Node, Registry};

fn main() {
    divan::main();
}

/// A node of the real binary's handlers, in process.
fn node() -> Node {
    // Naming the plugins crate links its handlers in.
    assert!(!plugins::served_types().is_empty());
    Node::new(Registry::collect().unwrap(), Config::default()).unwrap()
}

/// Counts what the node writes, keeping none of it.
#[derive(Default)]
struct Count(usize);

impl Write for Count {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0 += b.iter().filter(|&&c| c == b'\n').count();
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[derive(Deserialize)]
struct BareMessage {
    src: String,
    dest: String,
    body: BareLog,
}

#[derive(Deserialize)]
#[allow(dead_code)]
struct BareLog {
    #[serde(rename = "type")]
    kind: String,
    msg_id: u64,
    message: String,
    #[serde(default)]
    trace_id: Option<String>,
    #[serde(default)]
    service: Option<String>,
    #[serde(default)]
    level: Option<String>,
}

#[derive(Serialize)]
struct BareReply<'a> {
    src: &'a str,
    dest: &'a str,
    body: BareOk,
}

#[derive(Serialize)]
struct BareOk {
    #[serde(rename = "type")]
    kind: &'static str,
    in_reply_to: u64,
}

/// The baseline: read each line, parse it once with serde_json, keep the
/// message, write the reply. What any node must do at the least.
fn bare_loop(input: &[u8], out: &mut Count) -> usize {
    let mut kept = Vec::new();
    let mut buf = Vec::with_capacity(64 << 10);
    for line in input.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        let m: BareMessage = serde_json::from_slice(line).unwrap();
        let reply = BareReply {
            src: &m.dest,
            dest: &m.src,
            body: BareOk {
                kind: "log_ok",
                in_reply_to: m.body.msg_id,
            },
        };
        serde_json::to_writer(&mut buf, &reply).unwrap();
        buf.push(b'\n');
        if buf.len() >= 64 << 10 {
            out.write_all(&buf).unwrap();
            buf.clear();
        }
        kept.push(m.body.message);
    }
    out.write_all(&buf).unwrap();
    kept.len()
}

/// Baseline: 200,000 `log` lines through the bare serde_json loop.
#[divan::bench(sample_count = 10, sample_size = 1)]
fn log_baseline_bare_serde_loop(bencher: divan::Bencher<'_, '_>) {
    let input = log_input();
    bencher
        .counter(divan::counter::ItemsCount::new(LOGS))
        .bench(|| {
            let mut out = Count::default();
            assert_eq!(bare_loop(input, &mut out), LOGS);
            assert_eq!(out.0, LOGS);
        });
}

/// The same 200,000 `log` lines through the node's loop in process (parse,
/// sidecar, store, reply), against the baseline above.
#[divan::bench(sample_count = 10, sample_size = 1)]
fn log_node_in_process(bencher: divan::Bencher<'_, '_>) {
    let input = log_input();
    bencher
        .counter(divan::counter::ItemsCount::new(LOGS))
        .with_inputs(node)
        .bench_local_values(|mut node| {
            let mut out = Count::default();
            node.run(input, &mut out).unwrap();
            assert_eq!(out.0, LOGS);
            node
        });
}

/// `http_request` through a 3-service chain in process: 50,000 requests.
#[divan::bench(sample_count = 10, sample_size = 1)]
fn http_request_3_services_in_process(bencher: divan::Bencher<'_, '_>) {
    let input = http_input();
    bencher
        .counter(divan::counter::ItemsCount::new(REQUESTS))
        .with_inputs(node)
        .bench_local_values(|mut node| {
            let mut out = Count::default();
            node.run(input, &mut out).unwrap();
            assert_eq!(out.0, REQUESTS + 1);
            node
        });
}

/// A node of a two-node cluster with `pending` hops to a silent peer in
/// flight (each waits up to 60 s).
fn node_with_pending_rpcs(pending: usize) -> Node {
    let mut n = node();
    n.step(br#"{"src":"c","dest":"n1","body":{"type":"init","msg_id":1,"node_id":"n1","node_ids":["n1","n2"]}}"#);
    n.step(
        br#"{"src":"c","dest":"n1","body":{"type":"instrument_service","services":["web","n2"]}}"#,
    );
    for i in 0..pending {
        let line = format!(
            r#"{{"src":"c","dest":"web","body":{{"type":"http_request","msg_id":{i},"path":"/{i}","timeout_ms":60000}}}}"#
        );
        n.step(line.as_bytes());
    }
    n.write_output(&mut std::io::sink()).unwrap();
    n
}

/// One `log` line (parse, handle, fire due timers) with this many RPCs
/// pending: the cost must not grow with them.
#[divan::bench(args = [40, 4_000, 40_000], sample_count = 20, sample_size = 1000)]
fn log_line_with_pending_rpcs(bencher: divan::Bencher<'_, '_>, pending: usize) {
    let mut n = node_with_pending_rpcs(pending);
    let line = br#"{"src":"c1","dest":"n1","body":{"type":"log","msg_id":1,"message":"m"}}"#;
    let mut i = 0u32;
    bencher.bench_local(|| {
        n.step(line);
        i += 1;
        if i % 1024 == 0 {
            n.write_output(&mut std::io::sink()).unwrap();
        }
    });
}

fn spawn() -> Child {
    Command::new(env!("CARGO_BIN_EXE_tracer-node"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn tracer-node")
}

/// Writes `input` from a thread while this one counts reply lines; returns
/// the number of lines the node printed.
fn pipe_through(input: &'static [u8]) -> usize {
    let mut child = spawn();
    let mut stdin = child.stdin.take().unwrap();
    let writer = thread::spawn(move || {
        stdin.write_all(input).unwrap();
    });
    let out = BufReader::with_capacity(1 << 16, child.stdout.take().unwrap());
    let lines = out.split(b'\n').count();
    writer.join().unwrap();
    assert!(child.wait().unwrap().success());
    lines
}

const LOGS: usize = 200_000;

fn log_input() -> &'static [u8] {
    static INPUT: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    INPUT.get_or_init(|| {
        let mut s = String::new();
        for i in 0..LOGS {
            s.push_str(&format!(
                "{{\"src\":\"c1\",\"dest\":\"n1\",\"body\":{{\"type\":\"log\",\"msg_id\":{i},\"message\":\"Processing request {i}\",\"trace_id\":\"trace-{}\",\"service\":\"svc-{}\",\"level\":\"INFO\"}}}}\n",
                i % 5_000,
                i % 7
            ));
        }
        s.into_bytes()
    })
}

/// `log` with a reply for each, end to end: 200,000 messages per iteration.
#[divan::bench(sample_count = 5, sample_size = 1)]
fn log_ingestion(bencher: divan::Bencher<'_, '_>) {
    let input = log_input();
    bencher
        .counter(divan::counter::ItemsCount::new(LOGS))
        .bench(|| assert_eq!(pipe_through(input), LOGS));
}

const REQUESTS: usize = 50_000;

fn http_input() -> &'static [u8] {
    static INPUT: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    INPUT.get_or_init(|| {
        let mut s = String::from("{\"src\":\"c\",\"dest\":\"web\",\"body\":{\"type\":\"instrument_service\",\"msg_id\":0,\"services\":[\"web\",\"api\",\"db\"]}}\n");
        for i in 1..=REQUESTS {
            s.push_str(&format!(
                "{{\"src\":\"user\",\"dest\":\"web\",\"body\":{{\"type\":\"http_request\",\"msg_id\":{i},\"path\":\"/api/users/{i}\"}}}}\n"
            ));
        }
        s.into_bytes()
    })
}

/// `http_request` through a 3-service chain (3 spans, 3 logs, a stored
/// trace): 50,000 requests per iteration.
#[divan::bench(sample_count = 5, sample_size = 1)]
fn http_request_3_services(bencher: divan::Bencher<'_, '_>) {
    let input = http_input();
    bencher
        .counter(divan::counter::ItemsCount::new(REQUESTS))
        .bench(|| assert_eq!(pipe_through(input), REQUESTS + 1));
}

struct Session {
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    line: String,
    next: usize,
}

const STORED: usize = 1_000_000;
const TRACES: usize = 100_000;

/// A node holding 1,000,000 logs over 100,000 traces (10 logs each).
fn loaded_node() -> (Child, Session) {
    let mut child = spawn();
    let mut stdin = child.stdin.take().unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let mut buf = String::with_capacity(STORED * 120);
    for i in 0..STORED {
        buf.push_str(&format!(
            "{{\"type\":\"log\",\"message\":\"step {i}\",\"trace_id\":\"{:032x}\",\"service\":\"svc-{}\"}}\n",
            i % TRACES + 1,
            i % 7
        ));
    }
    buf.push_str("{\"src\":\"c1\",\"dest\":\"n1\",\"body\":{\"type\":\"log\",\"msg_id\":0,\"message\":\"ready\"}}\n");
    let writer = {
        let bytes = buf.into_bytes();
        let mut w = stdin;
        let h = thread::spawn(move || {
            w.write_all(&bytes).unwrap();
            w
        });
        stdin = h.join().unwrap();
        stdin
    };
    let mut s = Session {
        stdin: writer,
        stdout,
        line: String::new(),
        next: 1,
    };
    s.stdout.read_line(&mut s.line).unwrap();
    assert!(s.line.contains("log_ok"), "{}", s.line);
    (child, s)
}

/// One `search_logs` by trace id (10 hits) at 1,000,000 stored logs: a
/// round trip over the pipes, so this includes two context switches.
#[divan::bench(sample_count = 200, sample_size = 10)]
fn search_logs_by_trace_1m(bencher: divan::Bencher<'_, '_>) {
    let (mut child, session) = loaded_node();
    let session = Mutex::new(session);
    bencher.bench(|| {
        let mut s = session.lock().unwrap();
        let s = &mut *s;
        let n = s.next;
        s.next += 1;
        writeln!(
            s.stdin,
            "{{\"src\":\"c1\",\"dest\":\"n1\",\"body\":{{\"type\":\"search_logs\",\"msg_id\":{n},\"trace_id\":\"{:032x}\"}}}}",
            n * 7919 % TRACES + 1
        )
        .unwrap();
        s.stdin.flush().unwrap();
        s.line.clear();
        s.stdout.read_line(&mut s.line).unwrap();
        debug_assert!(s.line.contains("search_results"));
    });
    drop(session);
    child.wait().unwrap();
}
