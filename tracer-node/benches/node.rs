//! End-to-end throughput and latency of the real binary over pipes.
//!
//! `cargo bench -p tracer-node --bench node`

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::Mutex;
use std::thread;

fn main() {
    divan::main();
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
