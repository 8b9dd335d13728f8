//! Spawning and driving a real `tracer-node` process.

use serde_json::{json, Value};
use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long a request waits for its reply.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(5);
/// How long `finish` waits for the process to exit after stdin closes.
pub const EXIT_TIMEOUT: Duration = Duration::from_secs(10);

const BIN_NAME: &str = "tracer-node";

/// Path of the `tracer-node` binary: `TRACER_NODE_BIN` if set, else next
/// to the test executable's profile directory (built once if missing).
pub fn node_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(locate_bin)
}

fn locate_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("TRACER_NODE_BIN") {
        let p = PathBuf::from(p);
        assert!(
            p.is_file(),
            "TRACER_NODE_BIN={} does not name an existing file",
            p.display()
        );
        return p;
    }
    let exe = std::env::current_exe().expect("current_exe");
    // target/<profile>/deps/<test>-<hash> or target/<profile>/examples/<name>
    //   ->  target/<profile>
    let mut profile_dir = exe.parent().expect("exe has a parent").to_path_buf();
    if profile_dir
        .file_name()
        .is_some_and(|n| n == "deps" || n == "examples")
    {
        profile_dir.pop();
    }
    let bin = profile_dir.join(format!("{BIN_NAME}{}", std::env::consts::EXE_SUFFIX));
    if bin.is_file() {
        return bin;
    }
    let build_log = build_node(&profile_dir);
    assert!(
        bin.is_file(),
        "the {BIN_NAME} binary is missing at {} and `cargo build -p {BIN_NAME}` did not \
         produce it (set TRACER_NODE_BIN to use another binary)\n{build_log}",
        bin.display()
    );
    bin
}

fn build_node(profile_dir: &Path) -> String {
    let cargo = std::env::var("CARGO")
        .ok()
        .or_else(|| option_env!("CARGO").map(str::to_string))
        .unwrap_or_else(|| "cargo".to_string());
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate lives inside the workspace");
    let mut cmd = Command::new(&cargo);
    cmd.current_dir(workspace).args(["build", "-p", BIN_NAME]);
    match profile_dir.file_name().and_then(|n| n.to_str()) {
        Some("debug") | None => {}
        Some("release") => {
            cmd.arg("--release");
        }
        Some(other) => {
            cmd.args(["--profile", other]);
        }
    }
    if let Some(target_dir) = profile_dir.parent() {
        cmd.arg("--target-dir").arg(target_dir);
    }
    eprintln!("tests: {BIN_NAME} not built yet, running {cmd:?}");
    match cmd.output() {
        Ok(out) => format!(
            "`{cmd:?}` exited with {}:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(err) => format!("could not run `{cmd:?}`: {err}"),
    }
}

/// What a stdout line turned out to be.
type Line = Result<Value, String>;

/// Outcome of waiting for the next stdout line.
enum Next {
    Line(Value),
    Timeout,
    Closed,
}

/// What remains once the node has exited.
#[derive(Debug)]
pub struct Finished {
    pub status: ExitStatus,
    /// Stdout lines not yet consumed by `recv_timeout`/`request`.
    pub lines: Vec<Value>,
    /// Stdout lines that were not JSON (each one is a protocol violation).
    pub bad_lines: Vec<String>,
    /// Every JSON stdout line of the whole session, handed out or not.
    pub all_lines: Vec<Value>,
    pub stderr: String,
}

/// A running `tracer-node` process.
pub struct Node {
    child: Child,
    stdin: Option<ChildStdin>,
    rx: Receiver<Line>,
    /// Lines received but not yet handed out (unrelated to a request).
    pending: VecDeque<Value>,
    /// Every JSON line the node has printed so far, in order.
    history: Vec<Value>,
    bad_lines: Vec<String>,
    stderr: Arc<Mutex<Vec<u8>>>,
    stdout_thread: Option<JoinHandle<()>>,
    stderr_thread: Option<JoinHandle<()>>,
    next_msg_id: u64,
}

impl Node {
    pub fn spawn() -> Node {
        Node::spawn_with_env(&[])
    }

    /// Starts the node with extra environment variables. The variables the
    /// node reads for debugging are removed first so that the outer
    /// environment cannot change a test's outcome.
    pub fn spawn_with_env(env: &[(&str, &str)]) -> Node {
        let bin = node_bin();
        let mut cmd = Command::new(bin);
        cmd.env_remove("TRACER_DEBUG_HANDLERS")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|err| panic!("cannot start {}: {err}", bin.display()));
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().expect("piped stdout");
        let mut stderr_pipe = child.stderr.take().expect("piped stderr");

        let (tx, rx) = mpsc::channel::<Line>();
        let stdout_thread = std::thread::spawn(move || {
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
                        let line = match std::str::from_utf8(&buf) {
                            Ok(text) => {
                                serde_json::from_str::<Value>(text).map_err(|_| text.to_string())
                            }
                            Err(_) => Err(String::from_utf8_lossy(&buf).into_owned()),
                        };
                        if tx.send(line).is_err() {
                            break;
                        }
                    }
                }
            }
        });
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&stderr);
        let stderr_thread = std::thread::spawn(move || {
            let mut chunk = [0u8; 8192];
            loop {
                match stderr_pipe.read(&mut chunk) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => sink.lock().unwrap().extend_from_slice(&chunk[..n]),
                }
            }
        });
        Node {
            child,
            stdin,
            rx,
            pending: VecDeque::new(),
            history: Vec::new(),
            bad_lines: Vec::new(),
            stderr,
            stdout_thread: Some(stdout_thread),
            stderr_thread: Some(stderr_thread),
            next_msg_id: 1000,
        }
    }

    /// Everything the node wrote to stderr so far.
    /// The node's process id (for reading `/proc/<pid>/status`).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The node's peak resident memory so far, in bytes (`VmHWM` of
    /// `/proc/<pid>/status`; Linux only).
    pub fn peak_rss(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).ok()?;
        let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
        let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kb * 1024)
    }

    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr.lock().unwrap()).into_owned()
    }

    fn stdin(&mut self) -> &mut ChildStdin {
        self.stdin.as_mut().expect("stdin already closed")
    }

    /// Writes raw bytes to stdin, exactly as given.
    pub fn send_bytes(&mut self, bytes: &[u8]) {
        let res = {
            let stdin = self.stdin();
            stdin.write_all(bytes).and_then(|()| stdin.flush())
        };
        if let Err(err) = res {
            panic!(
                "writing to the node's stdin failed ({err}); did it exit?\nstderr:\n{}",
                self.stderr_text()
            );
        }
    }

    /// Writes one line (a newline is appended).
    pub fn send_raw(&mut self, line: &str) {
        let mut bytes = Vec::with_capacity(line.len() + 1);
        bytes.extend_from_slice(line.as_bytes());
        bytes.push(b'\n');
        self.send_bytes(&bytes);
    }

    /// Writes one JSON value as one line.
    pub fn send(&mut self, msg: &Value) {
        self.send_raw(&msg.to_string());
    }

    /// Closes stdin without waiting for the process.
    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    fn next_line(&mut self, deadline: Instant) -> Next {
        let wait = deadline.saturating_duration_since(Instant::now());
        match self.rx.recv_timeout(wait) {
            Ok(Ok(v)) => {
                self.history.push(v.clone());
                Next::Line(v)
            }
            Ok(Err(text)) => {
                self.bad_lines.push(text.clone());
                panic!("the node wrote a non-JSON line to stdout: {text:?}");
            }
            Err(RecvTimeoutError::Timeout) => Next::Timeout,
            Err(RecvTimeoutError::Disconnected) => Next::Closed,
        }
    }

    /// The next output line not yet handed out, waiting at most `timeout`.
    pub fn recv_timeout(&mut self, timeout: Duration) -> Option<Value> {
        if let Some(v) = self.pending.pop_front() {
            return Some(v);
        }
        match self.next_line(Instant::now() + timeout) {
            Next::Line(v) => Some(v),
            Next::Timeout | Next::Closed => None,
        }
    }

    /// Like `recv_timeout` with the reply timeout, panicking on silence.
    pub fn recv(&mut self) -> Value {
        match self.recv_timeout(REPLY_TIMEOUT) {
            Some(v) => v,
            None => panic!(
                "no output line from the node within {REPLY_TIMEOUT:?}\nstderr:\n{}",
                self.stderr_text()
            ),
        }
    }

    /// Lines received while waiting for other replies, not yet handed out.
    pub fn take_pending(&mut self) -> Vec<Value> {
        self.pending.drain(..).collect()
    }

    /// Every JSON line the node has printed so far (handed out or not).
    pub fn history(&self) -> &[Value] {
        &self.history
    }

    /// A fresh msg_id, unique within this node's session.
    pub fn fresh_msg_id(&mut self) -> u64 {
        self.next_msg_id += 1;
        self.next_msg_id
    }

    /// Waits for the line whose `body.in_reply_to` equals `msg_id`;
    /// unrelated lines stay queued. Returns the whole line.
    pub fn wait_reply(&mut self, msg_id: &Value) -> Value {
        self.wait_reply_for(msg_id, REPLY_TIMEOUT)
    }

    pub fn wait_reply_for(&mut self, msg_id: &Value, timeout: Duration) -> Value {
        let is_reply = |v: &Value| v.get("body").and_then(|b| b.get("in_reply_to")) == Some(msg_id);
        if let Some(pos) = self.pending.iter().position(is_reply) {
            return self.pending.remove(pos).expect("position is valid");
        }
        let deadline = Instant::now() + timeout;
        loop {
            match self.next_line(deadline) {
                Next::Line(v) if is_reply(&v) => return v,
                Next::Line(v) => self.pending.push_back(v),
                Next::Timeout => panic!(
                    "no reply with in_reply_to={msg_id} within {timeout:?}; other lines: {:?}\nstderr:\n{}",
                    self.pending,
                    self.stderr_text()
                ),
                Next::Closed => panic!(
                    "the node closed stdout before replying to msg_id {msg_id}; other lines: {:?}\nstderr:\n{}",
                    self.pending,
                    self.stderr_text()
                ),
            }
        }
    }

    /// Sends `body` (with a fresh `msg_id`) in an envelope from `src` to
    /// `dest` and returns the whole reply line.
    pub fn request_to(&mut self, src: &str, dest: &str, body: Value) -> Value {
        let mut body = body;
        let id = self.fresh_msg_id();
        body.as_object_mut()
            .expect("request body must be a JSON object")
            .insert("msg_id".to_string(), json!(id));
        self.send(&json!({"src": src, "dest": dest, "body": body}));
        self.wait_reply(&json!(id))
    }

    /// Sends `body` from `c1` to `n1` with a fresh `msg_id` and returns the
    /// whole reply line (envelope).
    pub fn request(&mut self, body: Value) -> Value {
        self.request_to("c1", "n1", body)
    }

    /// Like `request`, returning only the reply's body.
    pub fn call(&mut self, body: Value) -> Value {
        let reply = self.request(body);
        match reply.get("body") {
            Some(b) => b.clone(),
            None => panic!("reply line has no body: {reply}"),
        }
    }

    /// Closes stdin, waits for the process to exit (killing it after
    /// `EXIT_TIMEOUT`), and returns what is left.
    pub fn try_finish(mut self) -> Result<Finished, String> {
        self.stdin = None;
        let deadline = Instant::now() + EXIT_TIMEOUT;
        let status = loop {
            match self.child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10))
                }
                Ok(None) => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    return Err(format!(
                        "the node did not exit within {EXIT_TIMEOUT:?} after stdin closed (killed)\nstderr:\n{}",
                        self.stderr_text()
                    ));
                }
                Err(err) => return Err(format!("waiting for the node failed: {err}")),
            }
        };
        if let Some(t) = self.stdout_thread.take() {
            let _ = t.join();
        }
        if let Some(t) = self.stderr_thread.take() {
            let _ = t.join();
        }
        let mut lines: Vec<Value> = self.pending.drain(..).collect();
        let mut bad_lines = std::mem::take(&mut self.bad_lines);
        while let Ok(line) = self.rx.try_recv() {
            match line {
                Ok(v) => {
                    self.history.push(v.clone());
                    lines.push(v);
                }
                Err(text) => bad_lines.push(text),
            }
        }
        Ok(Finished {
            status,
            lines,
            bad_lines,
            all_lines: std::mem::take(&mut self.history),
            stderr: self.stderr_text(),
        })
    }

    /// `try_finish`, failing the test on a timeout or a non-JSON line.
    pub fn finish_full(self) -> Finished {
        let f = self.try_finish().unwrap_or_else(|err| panic!("{err}"));
        assert!(
            f.bad_lines.is_empty(),
            "the node wrote non-JSON lines to stdout: {:?}",
            f.bad_lines
        );
        f
    }

    /// Closes stdin and waits for exit, failing the test on a timeout or a
    /// non-JSON line. Returns (exit status, remaining stdout lines, stderr).
    pub fn finish(self) -> (ExitStatus, Vec<Value>, String) {
        let f = self.finish_full();
        (f.status, f.lines, f.stderr)
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.stdin = None;
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
