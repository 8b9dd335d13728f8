//! A simulated network of real `tracer-node` processes, Maelstrom style.
//!
//! `Net::start(n)` spawns `n1..nN`, initialises them, and runs a router
//! thread that reads every node's stdout and delivers each line by its
//! `dest`: to another node's stdin (through the fault injector: drop,
//! delay, duplicate, partition, dead node) or into a client's inbox, where
//! `request` / `wait_reply` find it. Everything the router did is counted
//! (`stats`) and logged (`routed`, `report`) for assertions and failure
//! messages. Faults use a small deterministic PRNG seeded from the test's
//! name (override with `TRACER_NET_SEED`).

use crate::node::node_bin;
use serde_json::{json, Value};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet, VecDeque};
use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long `request` waits for a reply unless told otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long `shutdown` waits for the nodes to exit after stdin closes.
pub const EXIT_TIMEOUT: Duration = Duration::from_secs(10);
/// The client that sends `init`.
const INIT_CLIENT: &str = "c0";
/// Node-to-node messages beyond this are dropped: a message storm (say, two
/// nodes answering each other's errors forever) must not hang a test.
const STORM_CAP: u64 = 500_000;
/// Routed messages kept for `routed()` and reports.
const HISTORY_CAP: usize = 200_000;

/// SplitMix64: small, fast, deterministic.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// True with probability `p` (never for p <= 0, always for p >= 1).
    pub fn chance(&mut self, p: f64) -> bool {
        let x = self.unit();
        p >= 1.0 || x < p
    }

    /// Uniform in [lo, hi] (inclusive).
    pub fn between(&mut self, lo: u64, hi: u64) -> u64 {
        if hi <= lo {
            return lo;
        }
        lo + self.next_u64() % (hi - lo + 1)
    }
}

/// FNV-1a, for seeds from names.
fn fnv1a(s: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// The seed for this test: `TRACER_NET_SEED` if set, else a hash of the
/// current thread's name (the test's name under the libtest harness).
pub fn default_seed() -> u64 {
    if let Ok(s) = std::env::var("TRACER_NET_SEED") {
        if let Ok(n) = s.trim().parse::<u64>() {
            return n;
        }
        return fnv1a(&s);
    }
    fnv1a(std::thread::current().name().unwrap_or("unnamed"))
}

/// What the router did, counted.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Messages a node addressed to another node (before faults).
    pub node_to_node: u64,
    /// Node-to-node copies written to the destination's stdin.
    pub delivered: u64,
    pub dropped_random: u64,
    pub dropped_partition: u64,
    /// To a killed or exited node (at send or at delivery time).
    pub dropped_dead: u64,
    /// Beyond the storm cap.
    pub dropped_storm: u64,
    /// Messages sent twice (each counted once here).
    pub duplicated: u64,
    /// Copies that went through the delay queue.
    pub delayed: u64,
    /// Lines a node addressed to a client.
    pub to_clients: u64,
    /// Requests the test sent to nodes.
    pub from_clients: u64,
    /// Non-JSON or unaddressed stdout lines.
    pub bad_lines: u64,
}

impl Stats {
    pub fn dropped(&self) -> u64 {
        self.dropped_random + self.dropped_partition + self.dropped_dead + self.dropped_storm
    }
}

/// One message the router saw.
#[derive(Clone, Debug)]
pub struct Routed {
    /// Since the net started.
    pub at: Duration,
    /// The node that printed it (or the client that sent it).
    pub from: String,
    pub to: String,
    /// The whole line (envelope).
    pub msg: Value,
    /// What happened to it: "delivered", "delivered x2", "delayed",
    /// "delayed x2", "dropped: random|partition|dead|storm", "to client",
    /// "from client".
    pub fate: String,
}

impl Routed {
    pub fn body_type(&self) -> &str {
        self.msg["body"]["type"].as_str().unwrap_or("?")
    }

    fn short(&self) -> String {
        let b = &self.msg["body"];
        let mut s = format!(
            "+{:>6.1}ms {} -> {} {}",
            self.at.as_secs_f64() * 1000.0,
            self.from,
            self.to,
            b["type"].as_str().unwrap_or("?")
        );
        if let Some(id) = b.get("msg_id") {
            let _ = write!(s, " msg_id={id}");
        }
        if let Some(id) = b.get("in_reply_to") {
            let _ = write!(s, " in_reply_to={id}");
        }
        let _ = write!(s, " [{}]", self.fate);
        let text = b.to_string();
        if text.len() > 240 {
            let cut = (0..=240)
                .rev()
                .find(|&i| text.is_char_boundary(i))
                .unwrap_or(0);
            let _ = write!(s, " {}...", &text[..cut]);
        } else {
            let _ = write!(s, " {text}");
        }
        s
    }
}

#[derive(Clone, Debug, Default)]
struct Faults {
    drop: f64,
    duplicate: f64,
    delay: Option<(Duration, Duration)>,
    partition: Option<(HashSet<String>, HashSet<String>)>,
}

impl Faults {
    fn cut(&self, a: &str, b: &str) -> bool {
        match &self.partition {
            Some((x, y)) => (x.contains(a) && y.contains(b)) || (y.contains(a) && x.contains(b)),
            None => false,
        }
    }
}

struct NodeProc {
    id: String,
    child: Mutex<Child>,
    stdin: Mutex<Option<ChildStdin>>,
    stderr: Arc<Mutex<Vec<u8>>>,
    killed: AtomicBool,
    expected_exit: AtomicBool,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl NodeProc {
    fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr.lock().unwrap()).into_owned()
    }

    /// Writes one line; false when the node is killed, closed or gone.
    fn write_line(&self, line: &str) -> bool {
        if self.killed.load(Ordering::SeqCst) {
            return false;
        }
        let mut guard = self.stdin.lock().unwrap();
        let Some(stdin) = guard.as_mut() else {
            return false;
        };
        let mut bytes = Vec::with_capacity(line.len() + 1);
        bytes.extend_from_slice(line.as_bytes());
        bytes.push(b'\n');
        stdin.write_all(&bytes).and_then(|()| stdin.flush()).is_ok()
    }
}

/// A copy in the delay queue: (due, seq, dest index, line, src index).
type Pending = (Instant, u64, usize, String, usize);

struct State {
    faults: Faults,
    rng: Rng,
    stats: Stats,
    inboxes: HashMap<String, VecDeque<Value>>,
    delayed: BinaryHeap<Reverse<Pending>>,
    seq: u64,
    history: Vec<Routed>,
    bad_lines: Vec<(String, String)>,
}

struct Shared {
    nodes: Vec<NodeProc>,
    index: HashMap<String, usize>,
    state: Mutex<State>,
    inbox_cv: Condvar,
    start: Instant,
    seed: u64,
}

enum Event {
    Line(usize, Result<Value, String>),
    Stop,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn push_history(&self, st: &mut State, from: &str, to: &str, msg: Value, fate: String) {
        if st.history.len() < HISTORY_CAP {
            st.history.push(Routed {
                at: self.start.elapsed(),
                from: from.to_string(),
                to: to.to_string(),
                msg,
                fate,
            });
        }
    }

    /// Handles one stdout line of node `from`.
    fn route(&self, from: usize, line: Result<Value, String>) {
        let src = &self.nodes[from].id;
        let v = match line {
            Ok(v) => v,
            Err(text) => {
                let mut st = self.lock();
                st.stats.bad_lines += 1;
                st.bad_lines.push((src.clone(), text));
                return;
            }
        };
        let Some(dest) = v.get("dest").and_then(Value::as_str).map(str::to_string) else {
            let mut st = self.lock();
            st.stats.bad_lines += 1;
            st.bad_lines
                .push((src.clone(), format!("(no string `dest`) {v}")));
            return;
        };
        let Some(&to) = self.index.get(&dest) else {
            // A client.
            let mut st = self.lock();
            st.stats.to_clients += 1;
            st.inboxes
                .entry(dest.clone())
                .or_default()
                .push_back(v.clone());
            self.push_history(&mut st, src, &dest, v, "to client".into());
            drop(st);
            self.inbox_cv.notify_all();
            return;
        };
        let text = v.to_string();
        let mut now_writes = 0usize;
        {
            let mut st = self.lock();
            st.stats.node_to_node += 1;
            let fate = if st.stats.node_to_node > STORM_CAP {
                st.stats.dropped_storm += 1;
                "dropped: storm".to_string()
            } else if self.nodes[to].killed.load(Ordering::SeqCst) {
                st.stats.dropped_dead += 1;
                "dropped: dead".to_string()
            } else if st.faults.cut(src, &dest) {
                st.stats.dropped_partition += 1;
                "dropped: partition".to_string()
            } else {
                let p_drop = st.faults.drop;
                let p_dup = st.faults.duplicate;
                let dropped = p_drop > 0.0 && st.rng.chance(p_drop);
                if dropped {
                    st.stats.dropped_random += 1;
                    "dropped: random".to_string()
                } else {
                    let copies = if p_dup > 0.0 && st.rng.chance(p_dup) {
                        st.stats.duplicated += 1;
                        2
                    } else {
                        1
                    };
                    let fate = match st.faults.delay {
                        Some((lo, hi)) => {
                            for _ in 0..copies {
                                let us =
                                    st.rng.between(lo.as_micros() as u64, hi.as_micros() as u64);
                                let due = Instant::now() + Duration::from_micros(us);
                                st.seq += 1;
                                let seq = st.seq;
                                st.delayed.push(Reverse((due, seq, to, text.clone(), from)));
                                st.stats.delayed += 1;
                            }
                            "delayed"
                        }
                        None => {
                            now_writes = copies;
                            "delivered"
                        }
                    };
                    if copies == 2 {
                        format!("{fate} x2")
                    } else {
                        fate.to_string()
                    }
                }
            };
            self.push_history(&mut st, src, &dest, v, fate);
        }
        for _ in 0..now_writes {
            self.deliver(to, &text);
        }
    }

    fn deliver(&self, to: usize, text: &str) {
        let ok = self.nodes[to].write_line(text);
        let mut st = self.lock();
        if ok {
            st.stats.delivered += 1;
        } else {
            st.stats.dropped_dead += 1;
        }
    }

    /// Delivers the delayed copies that are due; returns when the next is.
    fn deliver_due(&self) -> Option<Instant> {
        let mut due = Vec::new();
        let next = {
            let mut st = self.lock();
            let now = Instant::now();
            while st.delayed.peek().is_some_and(|Reverse(d)| d.0 <= now) {
                let Reverse((_, _, to, text, from)) = st.delayed.pop().expect("peeked");
                // The network may have changed while the copy was in flight.
                if st.faults.cut(&self.nodes[from].id, &self.nodes[to].id) {
                    st.stats.dropped_partition += 1;
                } else {
                    due.push((to, text));
                }
            }
            st.delayed.peek().map(|Reverse(d)| d.0)
        };
        for (to, text) in due {
            self.deliver(to, &text);
        }
        next
    }
}

fn router(shared: Arc<Shared>, rx: mpsc::Receiver<Event>) {
    let mut next_due: Option<Instant> = None;
    loop {
        let wait = match next_due {
            Some(t) => t.saturating_duration_since(Instant::now()),
            None => Duration::from_millis(50),
        };
        match rx.recv_timeout(wait) {
            Ok(Event::Line(from, line)) => shared.route(from, line),
            Ok(Event::Stop) | Err(RecvTimeoutError::Disconnected) => {
                break;
            }
            Err(RecvTimeoutError::Timeout) => {}
        }
        next_due = shared.deliver_due();
    }
}

/// How one node ended.
#[derive(Debug)]
pub struct NodeExit {
    pub id: String,
    /// `None` when it could not be waited for.
    pub status: Option<ExitStatus>,
    pub stderr: String,
    /// Killed by the test.
    pub killed: bool,
    /// It had exited before `shutdown` closed its stdin.
    pub died_early: bool,
}

/// What `shutdown` found.
#[derive(Debug)]
pub struct Shutdown {
    pub nodes: Vec<NodeExit>,
    /// Everything that makes the run a failure: nodes that died by
    /// themselves (unless expected), non-zero exits, nodes that did not
    /// exit, non-JSON lines, a message storm.
    pub problems: Vec<String>,
    pub stats: Stats,
    pub report: String,
}

impl Shutdown {
    #[track_caller]
    pub fn assert_clean(&self) {
        if self.problems.is_empty() {
            return;
        }
        let mut msg = format!(
            "the network did not end cleanly:\n  {}",
            self.problems.join("\n  ")
        );
        for n in &self.nodes {
            if !n.stderr.is_empty() {
                let _ = write!(msg, "\nstderr of {}:\n{}", n.id, tail(&n.stderr, 4000));
            }
        }
        let _ = write!(msg, "\n{}", self.report);
        panic!("{msg}");
    }
}

fn tail(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut i = s.len() - max;
    while !s.is_char_boundary(i) {
        i += 1;
    }
    &s[i..]
}

/// A running network of nodes plus the clients that talk to them.
pub struct Net {
    shared: Arc<Shared>,
    tx: Sender<Event>,
    router: Option<JoinHandle<()>>,
    next_msg_id: AtomicU64,
    node_ids: Vec<String>,
    done: bool,
}

impl Net {
    /// Starts `n` nodes `n1..nN` with the test's default seed.
    pub fn start(n: usize) -> Net {
        Net::start_seeded(n, default_seed())
    }

    pub fn start_seeded(n: usize, seed: u64) -> Net {
        assert!(n >= 1, "a network needs at least one node");
        let node_ids: Vec<String> = (1..=n).map(|i| format!("n{i}")).collect();
        let (tx, rx) = mpsc::channel::<Event>();
        let bin = node_bin();
        let mut nodes = Vec::with_capacity(n);
        for (i, id) in node_ids.iter().enumerate() {
            let mut cmd = Command::new(bin);
            // Only this test decides how the node behaves.
            for (k, _) in std::env::vars_os() {
                if let Some(k) = k.to_str() {
                    if k.starts_with("OTEL_") || k.starts_with("TRACER_") {
                        cmd.env_remove(k);
                    }
                }
            }
            cmd.stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped());
            let mut child = cmd
                .spawn()
                .unwrap_or_else(|err| panic!("cannot start {}: {err}", bin.display()));
            let stdin = child.stdin.take();
            let stdout = child.stdout.take().expect("piped stdout");
            let mut stderr_pipe = child.stderr.take().expect("piped stderr");
            let line_tx = tx.clone();
            let out_thread = std::thread::Builder::new()
                .name(format!("net-{id}-stdout"))
                .spawn(move || {
                    let mut reader = BufReader::with_capacity(1 << 16, stdout);
                    let mut buf = Vec::new();
                    loop {
                        buf.clear();
                        match reader.read_until(b'\n', &mut buf) {
                            Ok(0) | Err(_) => break,
                            Ok(_) => {
                                if buf.last() == Some(&b'\n') {
                                    buf.pop();
                                }
                                if buf.iter().all(u8::is_ascii_whitespace) {
                                    continue;
                                }
                                let line = match std::str::from_utf8(&buf) {
                                    Ok(t) => {
                                        serde_json::from_str::<Value>(t).map_err(|_| t.to_string())
                                    }
                                    Err(_) => Err(String::from_utf8_lossy(&buf).into_owned()),
                                };
                                if line_tx.send(Event::Line(i, line)).is_err() {
                                    break;
                                }
                            }
                        }
                    }
                })
                .expect("spawn a reader thread");
            let stderr = Arc::new(Mutex::new(Vec::new()));
            let sink = Arc::clone(&stderr);
            let err_thread = std::thread::Builder::new()
                .name(format!("net-{id}-stderr"))
                .spawn(move || {
                    let mut chunk = [0u8; 8192];
                    loop {
                        match stderr_pipe.read(&mut chunk) {
                            Ok(0) | Err(_) => break,
                            Ok(k) => sink.lock().unwrap().extend_from_slice(&chunk[..k]),
                        }
                    }
                })
                .expect("spawn a reader thread");
            nodes.push(NodeProc {
                id: id.clone(),
                child: Mutex::new(child),
                stdin: Mutex::new(stdin),
                stderr,
                killed: AtomicBool::new(false),
                expected_exit: AtomicBool::new(false),
                threads: Mutex::new(vec![out_thread, err_thread]),
            });
        }
        let index = node_ids
            .iter()
            .enumerate()
            .map(|(i, id)| (id.clone(), i))
            .collect();
        let shared = Arc::new(Shared {
            nodes,
            index,
            state: Mutex::new(State {
                faults: Faults::default(),
                rng: Rng::new(seed),
                stats: Stats::default(),
                inboxes: HashMap::new(),
                delayed: BinaryHeap::new(),
                seq: 0,
                history: Vec::new(),
                bad_lines: Vec::new(),
            }),
            inbox_cv: Condvar::new(),
            start: Instant::now(),
            seed,
        });
        let r_shared = Arc::clone(&shared);
        let router = std::thread::Builder::new()
            .name("net-router".into())
            .spawn(move || router(r_shared, rx))
            .expect("spawn the router");
        let net = Net {
            shared,
            tx,
            router: Some(router),
            next_msg_id: AtomicU64::new(0),
            node_ids: node_ids.clone(),
            done: false,
        };
        let ids: Vec<(String, u64)> = node_ids
            .iter()
            .map(|id| {
                let body = json!({"type": "init", "node_id": id, "node_ids": node_ids});
                (id.clone(), net.send_async(INIT_CLIENT, id, body))
            })
            .collect();
        for (id, msg_id) in ids {
            let reply = net.wait_reply(INIT_CLIENT, msg_id, DEFAULT_TIMEOUT);
            assert_eq!(
                reply["type"],
                "init_ok",
                "node {id} answered init with {reply}\n{}",
                net.report()
            );
        }
        net
    }

    pub fn node_ids(&self) -> &[String] {
        &self.node_ids
    }

    pub fn seed(&self) -> u64 {
        self.shared.seed
    }

    fn node(&self, id: &str) -> &NodeProc {
        match self.shared.index.get(id) {
            Some(&i) => &self.shared.nodes[i],
            None => panic!("no node {id:?} in this network ({:?})", self.node_ids),
        }
    }

    // ---- faults -------------------------------------------------------

    /// Probability that a node-to-node message is lost.
    pub fn drop(&self, p: f64) {
        self.shared.lock().faults.drop = p;
    }

    /// Probability that a node-to-node message is delivered twice.
    pub fn duplicate(&self, p: f64) {
        self.shared.lock().faults.duplicate = p;
    }

    /// Node-to-node messages wait a uniformly random time in [min, max].
    pub fn delay(&self, min: Duration, max: Duration) {
        assert!(min <= max, "delay({min:?}, {max:?}): min > max");
        self.shared.lock().faults.delay = Some((min, max));
    }

    /// Node-to-node messages are delivered at once again.
    pub fn no_delay(&self) {
        self.shared.lock().faults.delay = None;
    }

    /// Messages between a node of `a` and a node of `b` are lost (also
    /// copies already in the delay queue). Replaces any earlier partition.
    pub fn partition(&self, a: &[&str], b: &[&str]) {
        for id in a.iter().chain(b) {
            self.node(id);
        }
        let a: HashSet<String> = a.iter().map(|s| s.to_string()).collect();
        let b: HashSet<String> = b.iter().map(|s| s.to_string()).collect();
        assert!(a.is_disjoint(&b), "partition sides overlap: {a:?} | {b:?}");
        self.shared.lock().faults.partition = Some((a, b));
    }

    pub fn heal(&self) {
        self.shared.lock().faults.partition = None;
    }

    /// Kills the process; messages to it are dropped from now on.
    pub fn kill(&self, id: &str) {
        let node = self.node(id);
        node.killed.store(true, Ordering::SeqCst);
        let mut child = node.child.lock().unwrap();
        let _ = child.kill();
        let _ = child.wait();
        drop(child);
        *node.stdin.lock().unwrap() = None;
    }

    /// A node that is expected to exit by itself (not a failure at shutdown).
    pub fn expect_exit(&self, id: &str) {
        self.node(id).expected_exit.store(true, Ordering::SeqCst);
    }

    /// The process is running (not killed, not exited).
    pub fn is_alive(&self, id: &str) -> bool {
        let node = self.node(id);
        if node.killed.load(Ordering::SeqCst) {
            return false;
        }
        matches!(node.child.lock().unwrap().try_wait(), Ok(None))
    }

    // ---- clients ------------------------------------------------------

    /// Sends `body` (plus a fresh `msg_id`, unique in this net) from
    /// `client` to `node`; returns the msg_id. A message to a killed node
    /// is dropped.
    pub fn send_async(&self, client: &str, node: &str, body: Value) -> u64 {
        let msg_id = self.next_msg_id.fetch_add(1, Ordering::SeqCst) + 1;
        let mut body = body;
        body.as_object_mut()
            .expect("a request body must be a JSON object")
            .insert("msg_id".into(), json!(msg_id));
        let env = json!({"src": client, "dest": node, "body": body});
        let line = env.to_string();
        let target = self.node(node);
        {
            let mut st = self.shared.lock();
            st.stats.from_clients += 1;
            self.shared
                .push_history(&mut st, client, node, env, "from client".into());
        }
        if !target.write_line(&line) {
            self.shared.lock().stats.dropped_dead += 1;
        }
        msg_id
    }

    /// The reply envelope for `msg_id` in `client`'s inbox, waiting up to
    /// `timeout` while the router keeps routing; Err with a report.
    pub fn try_wait_reply_line(
        &self,
        client: &str,
        msg_id: u64,
        timeout: Duration,
    ) -> Result<Value, String> {
        let deadline = Instant::now() + timeout;
        let mut st = self.shared.lock();
        loop {
            if let Some(inbox) = st.inboxes.get_mut(client) {
                let pos = inbox
                    .iter()
                    .position(|v| v["body"]["in_reply_to"].as_u64() == Some(msg_id));
                if let Some(pos) = pos {
                    return Ok(inbox.remove(pos).expect("position is valid"));
                }
            }
            let now = Instant::now();
            if now >= deadline {
                drop(st);
                return Err(format!(
                    "client {client}: no reply to msg_id {msg_id} within {timeout:?}\n{}",
                    self.report()
                ));
            }
            st = self
                .shared
                .inbox_cv
                .wait_timeout(st, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// The reply body for `msg_id`; Err (with a report) on timeout.
    pub fn try_wait_reply(
        &self,
        client: &str,
        msg_id: u64,
        timeout: Duration,
    ) -> Result<Value, String> {
        self.try_wait_reply_line(client, msg_id, timeout)
            .map(|mut v| v["body"].take())
    }

    /// The reply body for `msg_id`, panicking (with a report) on timeout.
    #[track_caller]
    pub fn wait_reply(&self, client: &str, msg_id: u64, timeout: Duration) -> Value {
        self.try_wait_reply(client, msg_id, timeout)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// Request and reply body, waiting `DEFAULT_TIMEOUT`.
    #[track_caller]
    pub fn request(&self, client: &str, node: &str, body: Value) -> Value {
        self.request_timeout(client, node, body, DEFAULT_TIMEOUT)
    }

    #[track_caller]
    pub fn request_timeout(
        &self,
        client: &str,
        node: &str,
        body: Value,
        timeout: Duration,
    ) -> Value {
        let id = self.send_async(client, node, body);
        self.wait_reply(client, id, timeout)
    }

    /// Takes every line still in `client`'s inbox (replies nobody waited
    /// for, extra replies).
    pub fn take_inbox(&self, client: &str) -> Vec<Value> {
        self.shared
            .lock()
            .inboxes
            .get_mut(client)
            .map(|q| q.drain(..).collect())
            .unwrap_or_default()
    }

    // ---- observation --------------------------------------------------

    pub fn stats(&self) -> Stats {
        self.shared.lock().stats.clone()
    }

    /// Every message routed so far (node output and client requests).
    pub fn routed(&self) -> Vec<Routed> {
        self.shared.lock().history.clone()
    }

    /// Node-to-node messages of this body type (any fate).
    pub fn node_messages(&self, body_type: &str) -> Vec<Routed> {
        let st = self.shared.lock();
        st.history
            .iter()
            .filter(|r| {
                self.shared.index.contains_key(&r.from) && self.shared.index.contains_key(&r.to)
            })
            .filter(|r| r.body_type() == body_type)
            .cloned()
            .collect()
    }

    pub fn stderr(&self, id: &str) -> String {
        self.node(id).stderr_text()
    }

    /// Seed, faults, counts, node states, the last routed messages and the
    /// tail of each node's stderr: for failure messages.
    pub fn report(&self) -> String {
        let mut s = String::new();
        {
            let st = self.shared.lock();
            let f = &st.faults;
            let _ = writeln!(
                s,
                "--- net report (seed {}, {:.0} ms) ---",
                self.shared.seed,
                self.shared.start.elapsed().as_secs_f64() * 1000.0
            );
            let _ = writeln!(
                s,
                "faults: drop={} duplicate={} delay={:?} partition={:?}",
                f.drop, f.duplicate, f.delay, f.partition
            );
            let _ = writeln!(s, "stats: {:?}", st.stats);
            let _ = writeln!(s, "in the delay queue: {}", st.delayed.len());
            for (c, q) in &st.inboxes {
                if !q.is_empty() {
                    let _ = writeln!(s, "inbox {c}: {} unclaimed", q.len());
                    for v in q.iter().take(5) {
                        let _ = writeln!(s, "    {}", v);
                    }
                }
            }
            for (node, text) in st.bad_lines.iter().take(10) {
                let _ = writeln!(s, "bad stdout line from {node}: {text:?}");
            }
            let n = st.history.len();
            let _ = writeln!(s, "last routed messages ({} of {n}):", n.min(40));
            for r in &st.history[n.saturating_sub(40)..] {
                let _ = writeln!(s, "  {}", r.short());
            }
        }
        for node in &self.shared.nodes {
            let killed = node.killed.load(Ordering::SeqCst);
            let state = if killed {
                "killed".to_string()
            } else {
                match node.child.lock().unwrap().try_wait() {
                    Ok(None) => "running".to_string(),
                    Ok(Some(st)) => format!("exited ({st})"),
                    Err(e) => format!("unknown ({e})"),
                }
            };
            let err = node.stderr_text();
            let _ = writeln!(s, "{}: {state}", node.id);
            if !err.is_empty() {
                let _ = writeln!(s, "  stderr (tail):\n{}", tail(&err, 1500));
            }
        }
        s
    }

    /// Closes every stdin, waits for the nodes to exit (`EXIT_TIMEOUT`,
    /// then kills), stops the router, and reports how each node ended.
    pub fn shutdown(mut self) -> Shutdown {
        self.done = true;
        let mut problems = Vec::new();
        let mut early = vec![false; self.shared.nodes.len()];
        for (i, node) in self.shared.nodes.iter().enumerate() {
            if node.killed.load(Ordering::SeqCst) {
                continue;
            }
            if let Ok(Some(status)) = node.child.lock().unwrap().try_wait() {
                early[i] = true;
                if !node.expected_exit.load(Ordering::SeqCst) {
                    problems.push(format!(
                        "{} died by itself before shutdown ({status})",
                        node.id
                    ));
                }
            }
        }
        for node in &self.shared.nodes {
            *node.stdin.lock().unwrap() = None;
        }
        let deadline = Instant::now() + EXIT_TIMEOUT;
        let mut statuses = Vec::new();
        for node in &self.shared.nodes {
            let mut child = node.child.lock().unwrap();
            let status = loop {
                match child.try_wait() {
                    Ok(Some(st)) => break Some(st),
                    Ok(None) if Instant::now() < deadline => {
                        std::thread::sleep(Duration::from_millis(5))
                    }
                    Ok(None) => {
                        problems.push(format!(
                            "{} did not exit within {EXIT_TIMEOUT:?} after stdin closed (killed)",
                            node.id
                        ));
                        let _ = child.kill();
                        break child.wait().ok();
                    }
                    Err(e) => {
                        problems.push(format!("waiting for {} failed: {e}", node.id));
                        break None;
                    }
                }
            };
            statuses.push(status);
        }
        for node in &self.shared.nodes {
            for t in node.threads.lock().unwrap().drain(..) {
                let _ = t.join();
            }
        }
        // Every stdout line is now in the channel, before this Stop.
        let _ = self.tx.send(Event::Stop);
        if let Some(r) = self.router.take() {
            let _ = r.join();
        }
        let mut nodes = Vec::new();
        for (i, node) in self.shared.nodes.iter().enumerate() {
            let killed = node.killed.load(Ordering::SeqCst);
            let status = statuses[i];
            if !killed && !early[i] {
                if let Some(st) = status {
                    if !st.success() {
                        problems.push(format!("{} exited with {st}", node.id));
                    }
                }
            }
            nodes.push(NodeExit {
                id: node.id.clone(),
                status,
                stderr: node.stderr_text(),
                killed,
                died_early: early[i],
            });
        }
        let stats = self.stats();
        {
            let st = self.shared.lock();
            for (node, text) in st.bad_lines.iter() {
                problems.push(format!("{node} wrote a bad stdout line: {text:?}"));
            }
        }
        if stats.dropped_storm > 0 {
            problems.push(format!(
                "message storm: more than {STORM_CAP} node-to-node messages, {} dropped",
                stats.dropped_storm
            ));
        }
        let report = self.report();
        Shutdown {
            nodes,
            problems,
            stats,
            report,
        }
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        for node in &self.shared.nodes {
            *node.stdin.lock().unwrap_or_else(|e| e.into_inner()) = None;
            let mut child = node.child.lock().unwrap_or_else(|e| e.into_inner());
            if let Ok(None) = child.try_wait() {
                let _ = child.kill();
            }
            let _ = child.wait();
        }
        let _ = self.tx.send(Event::Stop);
        if let Some(r) = self.router.take() {
            let _ = r.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rng_is_deterministic_and_spread() {
        let mut a = Rng::new(42);
        let mut b = Rng::new(42);
        let xs: Vec<u64> = (0..8).map(|_| a.next_u64()).collect();
        let ys: Vec<u64> = (0..8).map(|_| b.next_u64()).collect();
        assert_eq!(xs, ys);
        let mut r = Rng::new(7);
        let hits = (0..10_000).filter(|_| r.chance(0.25)).count();
        assert!(
            (2_000..3_000).contains(&hits),
            "chance(0.25) hit {hits}/10000"
        );
        assert!((0..1000).all(|_| r.chance(1.0)));
        assert!((0..1000).all(|_| !r.chance(0.0)));
        assert!((0..1000).all(|_| (3..=5).contains(&r.between(3, 5))));
    }

    #[test]
    fn partition_cuts_both_ways_only_across() {
        let f = Faults {
            partition: Some((
                ["n1", "n2"].iter().map(|s| s.to_string()).collect(),
                ["n3"].iter().map(|s| s.to_string()).collect(),
            )),
            ..Faults::default()
        };
        assert!(f.cut("n2", "n3") && f.cut("n3", "n1"));
        assert!(!f.cut("n1", "n2") && !f.cut("n3", "n3"));
    }
}
