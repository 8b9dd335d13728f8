//! See a trace (issue 15): `tracer-node view` on the export file of a real
//! run of the demo, drawn in the terminal, picked by each filter, written
//! as a Chrome trace, and as an HTML page that headless Chromium renders.

use serde_json::Value;
use std::collections::{BTreeSet, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use tests::{node_bin, Node};

/// A span as the export file has it.
#[derive(Debug, Clone)]
struct Truth {
    trace: String,
    id: String,
    parent: Option<String>,
    name: String,
    service: String,
    start: u64,
    end: u64,
    error: bool,
    /// Key and value as the page shows it (strings as they are).
    attributes: Vec<(String, String)>,
}

/// A log record that names a trace and a span.
#[derive(Debug, Clone)]
struct TruthLog {
    trace: String,
    span: String,
    body: String,
}

struct Demo {
    _dir: tempfile::TempDir,
    path: PathBuf,
    spans: Vec<Truth>,
    logs: Vec<TruthLog>,
}

impl Demo {
    fn traces(&self) -> BTreeSet<&str> {
        self.spans.iter().map(|s| s.trace.as_str()).collect()
    }

    fn spans_of<'a>(&'a self, trace: &'a str) -> impl Iterator<Item = &'a Truth> + 'a {
        self.spans.iter().filter(move |s| s.trace == trace)
    }

    fn find(&self, trace: &str, id: &str) -> Option<&Truth> {
        self.spans.iter().find(|s| s.trace == trace && s.id == id)
    }

    /// Ancestors present in the file (0 for a root or an orphan).
    fn depth(&self, span: &Truth) -> usize {
        let mut depth = 0;
        let mut at = span;
        while let Some(parent) = at.parent.as_deref().and_then(|p| self.find(&span.trace, p)) {
            depth += 1;
            at = parent;
            assert!(depth <= self.spans.len(), "a cycle in the demo");
        }
        depth
    }

    fn duration(&self, trace: &str) -> u64 {
        let start = self.spans_of(trace).map(|s| s.start).min().unwrap();
        let end = self.spans_of(trace).map(|s| s.end).max().unwrap();
        end - start
    }

    fn errors(&self, trace: &str) -> usize {
        self.spans_of(trace).filter(|s| s.error).count()
    }

    /// The earliest span without a parent in the file.
    fn root(&self, trace: &str) -> &Truth {
        self.spans
            .iter()
            .filter(|s| s.trace == trace)
            .filter(|s| {
                s.parent
                    .as_deref()
                    .is_none_or(|p| self.find(trace, p).is_none())
            })
            .min_by_key(|s| s.start)
            .unwrap()
    }
}

fn workspace() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap()
}

/// The demo run once with `TRACER_EXPORT_FILE`, and what its file holds.
fn demo() -> &'static Demo {
    static DEMO: OnceLock<Demo> = OnceLock::new();
    DEMO.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("demo.otlp");
        let mut node = Node::spawn_with_env(&[("TRACER_EXPORT_FILE", path.to_str().unwrap())]);
        node.send_bytes(&std::fs::read(workspace().join("examples/demo.jsonl")).unwrap());
        let f = node.finish_full();
        assert!(f.status.success(), "the demo failed: {}", f.stderr);
        let (spans, logs) = truth(&std::fs::read_to_string(&path).unwrap());
        assert!(spans.len() >= 30, "the demo exports its spans: {spans:?}");
        Demo {
            _dir: dir,
            path,
            spans,
            logs,
        }
    })
}

/// Reads the export file the plain way, for the tests to check against.
fn truth(text: &str) -> (Vec<Truth>, Vec<TruthLog>) {
    let service = |r: &Value| {
        r["resource"]["attributes"]
            .as_array()
            .and_then(|a| a.iter().find(|kv| kv["key"] == "service.name"))
            .map(|kv| kv["value"]["stringValue"].as_str().unwrap().to_owned())
            .unwrap()
    };
    let nanos = |v: &Value| v.as_str().unwrap().parse::<u64>().unwrap();
    let (mut spans, mut logs) = (Vec::new(), Vec::new());
    for line in text.lines() {
        let req: Value = serde_json::from_str(line).unwrap();
        for rs in req["resourceSpans"].as_array().into_iter().flatten() {
            for s in rs["scopeSpans"][0]["spans"].as_array().unwrap() {
                let attributes = s["attributes"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|kv| {
                        let v = kv["value"].as_object().unwrap().values().next().unwrap();
                        let shown = v.as_str().map_or_else(|| v.to_string(), str::to_owned);
                        (kv["key"].as_str().unwrap().to_owned(), shown)
                    })
                    .collect();
                spans.push(Truth {
                    trace: s["traceId"].as_str().unwrap().to_owned(),
                    id: s["spanId"].as_str().unwrap().to_owned(),
                    parent: s["parentSpanId"].as_str().map(str::to_owned),
                    name: s["name"].as_str().unwrap().to_owned(),
                    service: service(rs),
                    start: nanos(&s["startTimeUnixNano"]),
                    end: nanos(&s["endTimeUnixNano"]),
                    error: s["status"]["code"] == 2,
                    attributes,
                });
            }
        }
        for rl in req["resourceLogs"].as_array().into_iter().flatten() {
            for l in rl["scopeLogs"][0]["logRecords"].as_array().unwrap() {
                if let (Some(trace), Some(span)) = (l["traceId"].as_str(), l["spanId"].as_str()) {
                    logs.push(TruthLog {
                        trace: trace.to_owned(),
                        span: span.to_owned(),
                        body: l["body"]["stringValue"].as_str().unwrap().to_owned(),
                    });
                }
            }
        }
    }
    (spans, logs)
}

/// Runs `tracer-node view ARGS` without colour, `stdin` on its input.
fn view(args: &[&str], stdin: &[u8]) -> Output {
    view_env(args, stdin, &[("NO_COLOR", "1")])
}

/// Runs `tracer-node view ARGS` with these colour variables only.
fn view_env(args: &[&str], stdin: &[u8], env: &[(&str, &str)]) -> Output {
    let mut child = Command::new(node_bin())
        .arg("view")
        .args(args)
        .env_remove("NO_COLOR")
        .env_remove("CLICOLOR_FORCE")
        .env_remove("CLICOLOR")
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    // The viewer may exit before reading (a bad flag); that is no failure here.
    let _ = input.write_all(stdin);
    drop(input);
    child.wait_with_output().unwrap()
}

fn view_demo(extra: &[&str]) -> (String, String) {
    let mut args = vec![demo().path.to_str().unwrap()];
    args.extend(extra);
    let out = view(&args, b"");
    let (stdout, stderr) = text(&out);
    assert!(
        out.status.success(),
        "view {extra:?}: {}\n{stderr}",
        out.status
    );
    (stdout, stderr)
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8(out.stdout.clone()).unwrap(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Per drawn trace: its header line and the lines under it.
fn sections(stdout: &str) -> Vec<(String, Vec<&str>)> {
    stdout
        .split("\n\n")
        .filter(|s| !s.trim().is_empty())
        .map(|s| {
            let mut lines = s.lines();
            let header = lines.next().unwrap();
            (header.to_owned(), lines.collect())
        })
        .collect()
}

fn header_ids(stdout: &str) -> Vec<String> {
    sections(stdout)
        .into_iter()
        .map(|(h, _)| h.split_whitespace().next().unwrap().to_owned())
        .collect()
}

fn plural(n: usize, word: &str) -> String {
    format!("{n} {word}{}", if n == 1 { "" } else { "s" })
}

/// The row of `span` in its trace's lines: indented by its depth, marked
/// when its parent is not in the file.
fn row_index(d: &Demo, lines: &[&str], span: &Truth) -> usize {
    let orphan = span
        .parent
        .as_deref()
        .is_some_and(|p| d.find(&span.trace, p).is_none());
    let prefix = format!(
        "{}{}{} ",
        "  ".repeat(d.depth(span)),
        if orphan { "↑ " } else { "" },
        span.name
    );
    lines
        .iter()
        .position(|l| l.starts_with(&prefix) && l.contains(&format!(" {} ", span.service)))
        .unwrap_or_else(|| panic!("no row {prefix:?} for {span:?} in\n{}", lines.join("\n")))
}

#[test]
fn every_trace_is_drawn_with_its_header_and_a_row_per_span() {
    let d = demo();
    let (out, _) = view_demo(&["--width", "120"]);
    assert!(
        !out.contains('\x1b'),
        "NO_COLOR and a pipe: no escape codes"
    );
    let sections = sections(&out);
    assert_eq!(sections.len(), d.traces().len(), "{out}");
    for (header, lines) in &sections {
        let id = header.split_whitespace().next().unwrap();
        assert!(d.traces().contains(id), "{header}");
        let spans: Vec<&Truth> = d.spans_of(id).collect();
        // trace id, root span, duration, span count, error count, services
        let fields: Vec<&str> = header.split("  ").collect();
        assert_eq!(fields[1], d.root(id).name, "{header}");
        assert_eq!(fields[3], plural(spans.len(), "span"), "{header}");
        assert_eq!(fields[4], plural(d.errors(id), "error"), "{header}");
        let services: BTreeSet<&str> = fields[5].split(", ").collect();
        let want: BTreeSet<&str> = spans.iter().map(|s| s.service.as_str()).collect();
        assert_eq!(services, want, "{header}");
        for span in &spans {
            let row = lines[row_index(d, lines, span)];
            assert_eq!(
                row.contains(" ERROR "),
                span.error,
                "ERROR marks error rows: {row}"
            );
            assert!(row.contains('█'), "a bar: {row}");
            assert!(row.chars().count() <= 120, "{row}");
        }
        let rows = lines.iter().filter(|l| l.contains('█')).count();
        assert_eq!(rows, spans.len(), "one row per span:\n{}", lines.join("\n"));
    }
}

#[test]
fn the_tree_is_indented_under_its_root_and_errors_stand_out() {
    // The demo's collected trace: web GET / -> api GET /users (ERROR) -> db.
    let d = demo();
    let db = d.spans.iter().find(|s| s.name == "SELECT users").unwrap();
    let (out, _) = view_demo(&["--trace", &db.trace, "--width", "100"]);
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines[0].starts_with(&format!(
            "{}  GET /  100.00ms  3 spans  1 error  web, api, db",
            db.trace
        )),
        "{out}"
    );
    assert!(lines[2].starts_with("GET /  "), "{out}");
    assert!(
        lines[3].starts_with("  GET /users  ") && lines[3].contains("70.00ms ERROR"),
        "{out}"
    );
    assert!(lines[4].starts_with("    SELECT users "), "{out}");
    assert!(!lines[4].contains("ERROR"), "{out}");
    // Bars on the trace's axis: the root spans it all, the db call starts
    // 20 of 100 ms in and lasts half of it.
    let bar = |l: &str| {
        let first = l.chars().position(|c| c == '█').unwrap();
        (first, l.chars().filter(|&c| c == '█').count())
    };
    let (root_at, root_len) = bar(lines[2]);
    let (db_at, db_len) = bar(lines[4]);
    assert_eq!(
        root_at + root_len,
        100,
        "the root ends at the last column: {out}"
    );
    assert_eq!(
        db_at - root_at,
        (root_len as f64 * 0.2).round() as usize,
        "{out}"
    );
    assert!(db_len.abs_diff(root_len / 2) <= 1, "{out}");
}

#[test]
fn filters_pick_the_traces() {
    let d = demo();
    let all = d.traces();
    let set = |out: &str| header_ids(out).into_iter().collect::<BTreeSet<_>>();

    let (out, _) = view_demo(&["--errors"]);
    let want: BTreeSet<String> = all
        .iter()
        .filter(|t| d.errors(t) > 0)
        .map(|t| t.to_string())
        .collect();
    assert!(!want.is_empty() && want.len() < all.len());
    assert_eq!(set(&out), want);

    let (out, _) = view_demo(&["--service", "db"]);
    let want: BTreeSet<String> = d
        .spans
        .iter()
        .filter(|s| s.service == "db")
        .map(|s| s.trace.clone())
        .collect();
    assert!(want.len() >= 2);
    assert_eq!(set(&out), want);

    let (out, _) = view_demo(&["--service", "web", "--errors"]);
    let want: BTreeSet<String> = all
        .iter()
        .filter(|t| d.errors(t) > 0 && d.spans_of(t).any(|s| s.service == "web"))
        .map(|t| t.to_string())
        .collect();
    assert_eq!(set(&out), want);

    let (out, _) = view_demo(&["--slowest", "3"]);
    let mut by_duration: Vec<&str> = all.iter().copied().collect();
    by_duration.sort_by_key(|t| std::cmp::Reverse(d.duration(t)));
    assert_eq!(header_ids(&out), by_duration[..3].to_vec(), "longest first");

    // A trace by id: the full id, a prefix, or the UUID spelling.
    let id = all.iter().next().unwrap().to_string();
    let uuid = format!(
        "{}-{}-{}-{}-{}",
        &id[..8],
        &id[8..12],
        &id[12..16],
        &id[16..20],
        &id[20..]
    );
    for given in [id.clone(), id[..12].to_owned(), uuid.to_uppercase()] {
        let (out, _) = view_demo(&["--trace", &given]);
        assert_eq!(header_ids(&out), vec![id.as_str()], "--trace {given}");
    }

    let out = view(
        &[demo().path.to_str().unwrap(), "--trace", "ffffffffffff"],
        b"",
    );
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "nothing to show: {stderr}");
    assert!(
        stdout.is_empty() && stderr.contains("matches the options"),
        "{stderr}"
    );
}

#[test]
fn logs_are_drawn_under_their_span() {
    let d = demo();
    let (without, _) = view_demo(&[]);
    assert!(!without.contains("· +"), "no logs without --logs");
    let (out, _) = view_demo(&["--logs", "--width", "140"]);
    let sections = sections(&out);
    let logs: Vec<&TruthLog> = d
        .logs
        .iter()
        .filter(|l| d.find(&l.trace, &l.span).is_some())
        .collect();
    assert!(logs.len() >= 4, "the demo has logs in spans: {:?}", d.logs);
    for log in logs {
        let span = d.find(&log.trace, &log.span).unwrap();
        let (_, lines) = sections
            .iter()
            .find(|(h, _)| h.starts_with(&log.trace))
            .unwrap();
        let row = row_index(d, lines, span);
        let indent = "  ".repeat(d.depth(span) + 1);
        let under: Vec<&&str> = lines[row + 1..]
            .iter()
            .take_while(|l| l.starts_with(&format!("{indent}· ")))
            .collect();
        assert!(
            under.iter().any(|l| l.ends_with(&log.body)),
            "{log:?} under its span:\n{}",
            lines.join("\n")
        );
    }
}

#[test]
fn colour_only_when_wanted() {
    let file = demo().path.to_str().unwrap();
    let args = [file, "--errors"];
    let piped = view_env(&args, b"", &[]);
    assert!(piped.status.success());
    assert!(!text(&piped).0.contains('\x1b'), "a pipe gets no colour");
    let forced = text(&view_env(&args, b"", &[("CLICOLOR_FORCE", "1")])).0;
    assert!(
        forced.contains("\x1b[31mERROR"),
        "errors in red: {forced:?}"
    );
    let plain = text(&view_env(
        &args,
        b"",
        &[("CLICOLOR_FORCE", "1"), ("NO_COLOR", "1")],
    ))
    .0;
    assert!(!plain.contains('\x1b'), "NO_COLOR wins");
    assert_eq!(forced.lines().count(), plain.lines().count());
}

#[test]
fn standard_input_is_read_when_no_file_is_given() {
    let d = demo();
    let bytes = std::fs::read(&d.path).unwrap();
    let (from_file, _) = view_demo(&["--width", "90"]);
    for args in [&["--width", "90"][..], &["-", "--width", "90"]] {
        let out = view(args, &bytes);
        assert!(out.status.success(), "{}", text(&out).1);
        assert_eq!(text(&out).0, from_file, "view {args:?} < file");
    }
}

#[test]
fn bad_lines_are_skipped_counted_and_named() {
    let d = demo();
    let good = std::fs::read_to_string(&d.path).unwrap();
    let first = good.lines().find(|l| l.contains("resourceSpans")).unwrap();
    let mut input = b"not json\n{\"foo\": 1}\n".to_vec();
    input.extend_from_slice(first.as_bytes());
    input.extend_from_slice(b"\n\n[1, 2]\n\xff\xfe{\n");
    let out = view(&[], &input);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "the good line is drawn: {stderr}");
    assert!(stderr.contains("skipped 4 of 5 lines"), "{stderr}");
    assert!(
        stderr.contains("line 1:") && stderr.contains("line 2:"),
        "{stderr}"
    );
    assert!(!header_ids(&stdout).is_empty(), "{stdout}");

    // Nothing but garbage: said, and exit 1.
    let out = view(&[], b"garbage\n\x00\x01\x02\n{\"resourceSpans\": 7}\n");
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stdout.is_empty());
    assert!(
        stderr.contains("skipped 3 of 3 lines") && stderr.contains("no span"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");

    // An empty input has nothing to show either.
    assert_eq!(view(&[], b"").status.code(), Some(1));

    // A file that is not there: exit 2, naming it.
    let out = view(&["/no/such/export.otlp"], b"");
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out).1.contains("/no/such/export.otlp"),
        "{}",
        text(&out).1
    );

    // Too narrow to draw is a usage error.
    let out = view(&["--width", "5"], b"");
    assert_eq!(out.status.code(), Some(2), "{}", text(&out).1);
}

#[test]
fn the_chrome_trace_matches_the_export_file() {
    let d = demo();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("trace.json");
    let (stdout, stderr) = view_demo(&["--chrome", path.to_str().unwrap()]);
    assert!(stdout.is_empty(), "a file, not a drawing: {stdout}");
    assert!(
        stderr.contains(&format!(
            "wrote {} traces ({} spans)",
            d.traces().len(),
            d.spans.len()
        )),
        "{stderr}"
    );
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let events = doc["traceEvents"].as_array().unwrap();
    let base = d.spans.iter().map(|s| s.start).min().unwrap();
    assert_eq!(doc["otherData"]["epoch_unix_nano"], base.to_string());

    // One process per service, named.
    let processes: HashMap<u64, &str> = events
        .iter()
        .filter(|e| e["ph"] == "M" && e["name"] == "process_name")
        .map(|e| {
            (
                e["pid"].as_u64().unwrap(),
                e["args"]["name"].as_str().unwrap(),
            )
        })
        .collect();
    let services: BTreeSet<&str> = d.spans.iter().map(|s| s.service.as_str()).collect();
    assert_eq!(
        processes.values().copied().collect::<BTreeSet<_>>(),
        services
    );
    assert_eq!(processes.len(), services.len());
    let threads: BTreeSet<(u64, u64)> = events
        .iter()
        .filter(|e| e["ph"] == "M" && e["name"] == "thread_name")
        .map(|e| (e["pid"].as_u64().unwrap(), e["tid"].as_u64().unwrap()))
        .collect();

    // A complete event per span, at its times in microseconds.
    let complete: Vec<&Value> = events.iter().filter(|e| e["ph"] == "X").collect();
    assert_eq!(complete.len(), d.spans.len());
    let mut event_of: HashMap<(&str, &str), &Value> = HashMap::new();
    let mut tid_of: HashMap<&str, u64> = HashMap::new();
    for e in &complete {
        let trace = e["args"]["trace_id"].as_str().unwrap();
        let id = e["args"]["span_id"].as_str().unwrap();
        let span = d
            .find(trace, id)
            .unwrap_or_else(|| panic!("{e} is no span"));
        assert_eq!(e["name"], span.name.as_str());
        assert!(
            close(&e["ts"], (span.start - base) as f64 / 1000.0),
            "ts of {e}"
        );
        assert!(
            close(&e["dur"], (span.end - span.start) as f64 / 1000.0),
            "dur of {e}"
        );
        let pid = e["pid"].as_u64().unwrap();
        assert_eq!(processes[&pid], span.service, "{e}");
        let tid = e["tid"].as_u64().unwrap();
        assert_eq!(
            *tid_of.entry(trace).or_insert(tid),
            tid,
            "one thread per trace"
        );
        assert!(threads.contains(&(pid, tid)), "thread {pid}/{tid} is named");
        for (k, v) in &span.attributes {
            let got = &e["args"]["attributes"][k];
            assert_eq!(
                got.as_str().map_or_else(|| got.to_string(), str::to_owned),
                *v,
                "{e}"
            );
        }
        assert!(event_of.insert((trace, id), e).is_none(), "{e} twice");
    }
    assert_eq!(
        tid_of.values().collect::<BTreeSet<_>>().len(),
        d.traces().len(),
        "a thread per trace"
    );

    // Nesting where the clocks agree; flows where a call crosses services.
    let mut crossing = 0;
    for span in &d.spans {
        let Some(parent) = span.parent.as_deref().and_then(|p| d.find(&span.trace, p)) else {
            continue;
        };
        let (c, p) = (
            event_of[&(&*span.trace, &*span.id)],
            event_of[&(&*span.trace, &*parent.id)],
        );
        let interval = |e: &Value| {
            (
                e["ts"].as_f64().unwrap(),
                e["ts"].as_f64().unwrap() + e["dur"].as_f64().unwrap(),
            )
        };
        if parent.start <= span.start && span.end <= parent.end {
            let ((cs, ce), (ps, pe)) = (interval(c), interval(p));
            let slack = 4.0 * f64::EPSILON * pe.abs().max(1.0);
            assert!(ps <= cs + slack && ce <= pe + slack, "{c} within {p}");
        }
        if parent.service != span.service {
            crossing += 1;
        }
    }
    assert!(crossing >= 4, "the demo has calls across services");
    let flows = |ph: &str| -> HashMap<u64, &Value> {
        events
            .iter()
            .filter(|e| e["ph"] == ph)
            .map(|e| (e["id"].as_u64().unwrap(), e))
            .collect()
    };
    let (starts, ends) = (flows("s"), flows("f"));
    assert_eq!(starts.len(), crossing);
    assert_eq!(
        starts.keys().collect::<BTreeSet<_>>(),
        ends.keys().collect::<BTreeSet<_>>(),
        "each flow starts and ends"
    );
    for (id, s) in &starts {
        let f = ends[id];
        assert_eq!(f["bp"], "e");
        assert_ne!(s["pid"], f["pid"], "a flow crosses services");
        assert_eq!(s["tid"], f["tid"], "within one trace");
        // It ends where a child span of that process starts.
        assert!(
            complete
                .iter()
                .any(|e| e["pid"] == f["pid"] && e["ts"] == f["ts"]),
            "{f}"
        );
    }
}

/// Equal but for the last bit (serde_json reads floats that closely).
fn close(got: &Value, want: f64) -> bool {
    (got.as_f64().unwrap() - want).abs() <= 2.0 * f64::EPSILON * want.abs().max(1.0)
}

/// The embedded data of the page, and that it loads nothing from outside.
#[test]
fn the_html_page_is_self_contained() {
    let d = demo();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("view.html");
    view_demo(&["--html", path.to_str().unwrap()]);
    let html = std::fs::read_to_string(&path).unwrap();
    let open = r#"<script type="application/json" id="data">"#;
    let (page, rest) = html.split_at(html.find(open).unwrap() + open.len());
    let (json, page_end) = rest.split_at(rest.find("</script>").unwrap());
    // The page itself (the data may well name URLs) loads nothing.
    for outside in ["<link", " src=", "http://", "https://", "@import", "url("] {
        assert!(
            !page.contains(outside) && !page_end.contains(outside),
            "{outside}"
        );
    }
    let data: Value = serde_json::from_str(json).unwrap();
    let rows: usize = data["traces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["rows"].as_array().unwrap().len())
        .sum();
    assert_eq!(rows, d.spans.len());
}

/// The page in a real browser: every span of the demo is a visible row,
/// and a click on a row shows that span's attributes, status and logs.
#[test]
fn the_html_page_renders_in_chromium_and_a_click_shows_the_span() {
    let chromium =
        PathBuf::from(std::env::var_os("CHROMIUM").unwrap_or_else(|| "/usr/bin/chromium".into()));
    if !chromium.is_file() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI needs Chromium at {} (.ci/run installs Debian's)",
            chromium.display()
        );
        eprintln!("skipped: no Chromium at {}", chromium.display());
        return;
    }
    let d = demo();
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("view.html");
    view_demo(&["--html", page.to_str().unwrap()]);

    use headless_chrome::{Browser, LaunchOptions};
    use std::ffi::OsStr;
    let options = LaunchOptions::default_builder()
        .path(Some(chromium))
        .headless(true)
        .sandbox(false)
        .window_size(Some((1280, 900)))
        .user_data_dir(Some(dir.path().join("profile")))
        .args(
            [
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ]
            .map(OsStr::new)
            .to_vec(),
        )
        .build()
        .unwrap();
    let browser = Browser::new(options).unwrap();
    let tab = browser.new_tab().unwrap();
    tab.navigate_to(&format!("file://{}", page.display()))
        .unwrap()
        .wait_until_navigated()
        .unwrap();
    tab.wait_for_element("#details").unwrap();

    let rendered = tab
        .evaluate(
            "JSON.stringify([...document.querySelectorAll('.row[data-span-id]')].map(r => \
             [r.dataset.traceId, r.dataset.spanId, r.getBoundingClientRect().height > 0]))",
            false,
        )
        .unwrap()
        .value
        .unwrap();
    let rendered: Vec<(String, String, bool)> =
        serde_json::from_str(rendered.as_str().unwrap()).unwrap();
    let want: BTreeSet<(String, String, bool)> = d
        .spans
        .iter()
        .map(|s| (s.trace.clone(), s.id.clone(), true))
        .collect();
    assert_eq!(rendered.len(), d.spans.len(), "one row per span");
    assert_eq!(
        rendered.into_iter().collect::<BTreeSet<_>>(),
        want,
        "every span a visible row"
    );

    // Click rows: spans with attributes, an error, one with logs.
    let mut clicked: Vec<&Truth> = d
        .spans
        .iter()
        .filter(|s| !s.attributes.is_empty())
        .take(3)
        .collect();
    clicked.extend(d.spans.iter().filter(|s| s.error).take(1));
    let logged = d
        .logs
        .iter()
        .find(|l| d.find(&l.trace, &l.span).is_some())
        .unwrap();
    clicked.push(d.find(&logged.trace, &logged.span).unwrap());
    for span in clicked {
        let selector = format!(
            r#".row[data-trace-id="{}"][data-span-id="{}"]"#,
            span.trace, span.id
        );
        tab.find_element(&selector).unwrap().click().unwrap();
        let details = tab
            .wait_for_element("#details")
            .unwrap()
            .get_inner_text()
            .unwrap();
        assert!(
            details.contains(&span.name) && details.contains(&span.id),
            "{span:?}:\n{details}"
        );
        let attrs = tab
            .find_element("#details-attributes")
            .unwrap()
            .get_inner_text()
            .unwrap();
        for (k, v) in &span.attributes {
            assert!(
                attrs.contains(k) && attrs.contains(v),
                "{k}={v} shown:\n{attrs}"
            );
        }
        let status = tab
            .find_element("#details-status")
            .unwrap()
            .get_inner_text()
            .unwrap();
        assert_eq!(status.starts_with("ERROR"), span.error, "{status}");
        for log in d
            .logs
            .iter()
            .filter(|l| l.trace == span.trace && l.span == span.id)
        {
            assert!(details.contains(&log.body), "log {log:?} shown:\n{details}");
        }
        let selected = tab.find_elements(".row.selected").unwrap();
        assert_eq!(selected.len(), 1);
        assert_eq!(
            selected[0]
                .get_attribute_value("data-span-id")
                .unwrap()
                .as_deref(),
            Some(span.id.as_str())
        );
    }
}
