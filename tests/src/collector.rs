//! A real OpenTelemetry collector for the export tests: `rotel` (from
//! PyPI), its OTLP/HTTP receiver on a loopback port, logging what it
//! receives in detail while it exports to its blackhole exporter.
//! `.ci/run` installs rotel (`python3 -m pip install rotel`).

use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

/// The `rotel-agent` executable: `$ROTEL_AGENT`, else the one the `rotel`
/// package of PyPI ships.
pub fn rotel_agent() -> PathBuf {
    if let Ok(p) = std::env::var("ROTEL_AGENT") {
        return PathBuf::from(p);
    }
    let out = Command::new("python3")
        .args([
            "-c",
            "import os, rotel; print(os.path.join(os.path.dirname(rotel.__file__), 'rotel-agent'))",
        ])
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "the collector tests need rotel: python3 -m pip install rotel ({})",
        String::from_utf8_lossy(&out.stderr)
    );
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
}

/// A loopback port nobody listens on now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A running collector; its detailed debug log goes to a file we read.
pub struct Collector {
    child: Child,
    out: PathBuf,
    _dir: TempDir,
}

/// A directory removed when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    /// A fresh directory under the system's temporary one.
    pub fn new(tag: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!(
            "tracer-otlp-{tag}-{}-{}",
            std::process::id(),
            free_port()
        ));
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl Collector {
    /// A collector that logs every span and log record it receives.
    pub fn start(http_port: u16) -> Collector {
        Self::start_with(http_port, true)
    }

    /// A collector that only receives (for volume: logging 400,000 items in
    /// detail would be the test's bottleneck).
    pub fn start_quiet(http_port: u16) -> Collector {
        Self::start_with(http_port, false)
    }

    pub fn start_with(http_port: u16, detailed: bool) -> Collector {
        let dir = TempDir::new("rotel");
        let out = dir.0.join("received.txt");
        let file = std::fs::File::create(&out).unwrap();
        let mut args: Vec<String> = [
            "start",
            "--otlp-http-endpoint",
            &format!("127.0.0.1:{http_port}"),
            "--otlp-grpc-endpoint",
            &format!("127.0.0.1:{}", free_port()),
            "--exporter",
            "blackhole",
            "--batch-timeout",
            "50ms",
            "--log-file",
            dir.0.join("agent.log").to_str().unwrap(),
            "--pid-file",
            dir.0.join("agent.pid").to_str().unwrap(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        if detailed {
            for a in [
                "--debug-log",
                "traces",
                "--debug-log",
                "logs",
                "--debug-log-verbosity",
                "detailed",
            ] {
                args.push(a.to_owned());
            }
        }
        let child = Command::new(rotel_agent())
            .args(&args)
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .expect("start rotel-agent");
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", http_port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "rotel did not listen on {http_port}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Collector {
            child,
            out,
            _dir: dir,
        }
    }

    pub fn output(&self) -> String {
        let mut s = String::new();
        if let Ok(mut f) = std::fs::File::open(&self.out) {
            let _ = f.read_to_string(&mut s);
        }
        s
    }

    /// Waits until the collector has logged `spans` spans and `logs` logs.
    pub fn received(&self, spans: usize, logs: usize) -> Received {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let r = Received::parse(&self.output());
            if r.spans.len() >= spans && r.logs.len() >= logs {
                return r;
            }
            assert!(
                Instant::now() < deadline,
                "collector got {} spans and {} logs, expected {spans} and {logs}:\n{}",
                r.spans.len(),
                r.logs.len(),
                self.output()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[derive(Debug, Default, Clone)]
/// A span as the collector logged it.
pub struct RSpan {
    pub service: String,
    pub trace_id: String,
    pub parent_id: String,
    pub id: String,
    pub name: String,
    pub kind: String,
    pub status: String,
}

#[derive(Debug, Default, Clone)]
/// A log record as the collector logged it.
pub struct RLog {
    pub service: String,
    pub body: String,
    pub trace_id: String,
    pub span_id: String,
}

#[derive(Debug, Default)]
/// What the collector logged.
pub struct Received {
    pub spans: Vec<RSpan>,
    pub logs: Vec<RLog>,
}

fn field<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    let rest = line.trim_start().strip_prefix(name)?;
    Some(rest.trim_start().strip_prefix(':')?.trim())
}

impl Received {
    /// Reads rotel's detailed debug log: resources, then spans or log records.
    pub fn parse(text: &str) -> Received {
        let mut r = Received::default();
        let mut service = String::new();
        let mut in_log = false;
        for line in text.lines() {
            let t = line.trim();
            if t.starts_with("ResourceSpans #") || t.starts_with("ResourceLog #") {
                service.clear();
                in_log = false;
            } else if let Some(s) = t
                .strip_prefix("-> service.name: Str(")
                .and_then(|s| s.strip_suffix(')'))
            {
                service = s.to_owned();
            } else if t.starts_with("Span #") {
                in_log = false;
                r.spans.push(RSpan {
                    service: service.clone(),
                    ..RSpan::default()
                });
            } else if t.starts_with("LogRecord #") {
                in_log = true;
                r.logs.push(RLog {
                    service: service.clone(),
                    ..RLog::default()
                });
            } else if in_log {
                let l = r.logs.last_mut().unwrap();
                if let Some(b) = t
                    .strip_prefix("Body: Str(")
                    .and_then(|s| s.strip_suffix(')'))
                {
                    l.body = b.to_owned();
                } else if let Some(v) = field(t, "Trace ID") {
                    l.trace_id = v.to_owned();
                } else if let Some(v) = field(t, "Span ID") {
                    l.span_id = v.to_owned();
                }
            } else if let Some(s) = r.spans.last_mut() {
                if let Some(v) = field(t, "Trace ID") {
                    s.trace_id = v.to_owned();
                } else if let Some(v) = field(t, "Parent ID") {
                    s.parent_id = v.to_owned();
                } else if let Some(v) = field(t, "ID") {
                    s.id = v.to_owned();
                } else if let Some(v) = field(t, "Name") {
                    s.name = v.to_owned();
                } else if let Some(v) = field(t, "Kind") {
                    s.kind = v.to_owned();
                } else if let Some(v) = field(t, "Status code") {
                    s.status = v.to_owned();
                }
            }
        }
        r
    }
}
