//! Reading an OTLP/JSON export file (one `ExportTraceServiceRequest` or
//! `ExportLogsServiceRequest` per line) into traces: spans and logs grouped
//! by trace id, whatever line they came on.

use serde::{Deserialize, Deserializer};
use serde_json::Value as Json;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{self, BufRead};

/// Attributes in the order the file lists them, values as plain JSON
/// (`intValue` becomes a number, `arrayValue` an array, ...).
pub type Attrs = Vec<(String, Json)>;

/// One span as the export file describes it.
#[derive(Debug, Clone, Default)]
pub struct Span {
    /// The trace it belongs to (lowercase hex).
    pub trace_id: String,
    /// Its own id (lowercase hex).
    pub span_id: String,
    /// Its parent's id, when it names one.
    pub parent_id: Option<String>,
    /// The operation name.
    pub name: String,
    /// `service.name` of its resource.
    pub service: String,
    /// `internal`, `server`, `client`, `producer`, `consumer` or `unspecified`.
    pub kind: &'static str,
    /// Start, in nanoseconds since the Unix epoch.
    pub start: u64,
    /// End, in nanoseconds since the Unix epoch (never before `start`).
    pub end: u64,
    /// The span's attributes.
    pub attributes: Attrs,
    /// Its events.
    pub events: Vec<Event>,
    /// Its links to other spans.
    pub links: Vec<Link>,
    /// Its status.
    pub status: Status,
}

impl Span {
    /// Duration in nanoseconds.
    pub fn duration(&self) -> u64 {
        self.end.saturating_sub(self.start)
    }

    /// Whether the span's status is ERROR.
    pub fn is_error(&self) -> bool {
        self.status.code == "ERROR"
    }
}

/// A span's status: `UNSET`, `OK` or `ERROR`, and the message.
#[derive(Debug, Clone)]
pub struct Status {
    /// `UNSET`, `OK` or `ERROR`.
    pub code: &'static str,
    /// The description (usually only with ERROR).
    pub message: String,
}

impl Default for Status {
    fn default() -> Self {
        Status {
            code: "UNSET",
            message: String::new(),
        }
    }
}

/// A timed event of a span (an exception, say).
#[derive(Debug, Clone)]
pub struct Event {
    /// Nanoseconds since the Unix epoch.
    pub time: u64,
    /// The event's name.
    pub name: String,
    /// Its attributes.
    pub attributes: Attrs,
}

/// A link from a span to another span, maybe of another trace.
#[derive(Debug, Clone)]
pub struct Link {
    /// The linked span's trace.
    pub trace_id: String,
    /// The linked span.
    pub span_id: String,
    /// The link's attributes.
    pub attributes: Attrs,
}

/// One log record that names a trace.
#[derive(Debug, Clone)]
pub struct Log {
    /// Nanoseconds since the Unix epoch.
    pub time: u64,
    /// `service.name` of its resource.
    pub service: String,
    /// The severity text (or the number's name when only that is given).
    pub severity: String,
    /// The body, as plain JSON.
    pub body: Json,
    /// Its attributes.
    pub attributes: Attrs,
    /// The span it was written in, if any.
    pub span_id: Option<String>,
}

impl Log {
    /// The body as one line of text.
    pub fn text(&self) -> String {
        match &self.body {
            Json::String(s) => s.clone(),
            other => other.to_string(),
        }
    }
}

/// The spans and logs of one trace id.
#[derive(Debug, Clone, Default)]
pub struct Trace {
    /// The trace id.
    pub id: String,
    /// Its spans, in file order, each span id once.
    pub spans: Vec<Span>,
    /// The logs that carry this trace id, in file order.
    pub logs: Vec<Log>,
}

impl Trace {
    /// Earliest span start (0 without spans).
    pub fn start(&self) -> u64 {
        self.spans.iter().map(|s| s.start).min().unwrap_or(0)
    }

    /// Latest span end (0 without spans).
    pub fn end(&self) -> u64 {
        self.spans.iter().map(|s| s.end).max().unwrap_or(0)
    }

    /// From the earliest start to the latest end, in nanoseconds.
    pub fn duration(&self) -> u64 {
        self.end().saturating_sub(self.start())
    }

    /// How many spans have status ERROR.
    pub fn errors(&self) -> usize {
        self.spans.iter().filter(|s| s.is_error()).count()
    }

    /// Its logs by the span they name, and apart those that name no span
    /// of the trace.
    pub fn logs_by_span(&self) -> (HashMap<&str, Vec<&Log>>, Vec<&Log>) {
        let mut by_span: HashMap<&str, Vec<&Log>> = self
            .spans
            .iter()
            .map(|s| (s.span_id.as_str(), Vec::new()))
            .collect();
        let mut loose = Vec::new();
        for log in &self.logs {
            match log.span_id.as_deref().and_then(|id| by_span.get_mut(id)) {
                Some(list) => list.push(log),
                None => loose.push(log),
            }
        }
        (by_span, loose)
    }

    /// The services of its spans, each once, in order of first start.
    pub fn services(&self) -> Vec<&str> {
        let mut spans: Vec<&Span> = self.spans.iter().collect();
        spans.sort_by_key(|s| s.start);
        let mut seen = HashSet::new();
        spans
            .into_iter()
            .map(|s| s.service.as_str())
            .filter(|s| seen.insert(*s))
            .collect()
    }
}

/// Everything read from one export file.
#[derive(Debug, Default)]
pub struct Export {
    /// The traces, by earliest span start.
    pub traces: Vec<Trace>,
    /// Lines that were not an export request: (line number, why).
    pub bad_lines: Vec<(usize, String)>,
    /// Spans without a trace or span id, left out.
    pub bad_spans: usize,
    /// Spans whose id had already been read for their trace, left out.
    pub duplicate_spans: usize,
    /// Lines read, blank ones excepted.
    pub lines: usize,
}

/// Reads an export file. Only an I/O error fails; a bad line is skipped
/// and listed in [`Export::bad_lines`].
pub fn read(mut input: impl BufRead) -> io::Result<Export> {
    let mut export = Export::default();
    let mut traces: BTreeMap<String, Trace> = BTreeMap::new();
    let mut seen: HashSet<(String, String)> = HashSet::new();
    let mut buf = Vec::new();
    let mut number = 0;
    loop {
        buf.clear();
        if input.read_until(b'\n', &mut buf)? == 0 {
            break;
        }
        number += 1;
        if buf.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        export.lines += 1;
        let request = match serde_json::from_slice::<Request>(&buf) {
            Ok(r) if r.resource_spans.is_none() && r.resource_logs.is_none() => {
                export
                    .bad_lines
                    .push((number, "neither resourceSpans nor resourceLogs".into()));
                continue;
            }
            Ok(r) => r,
            Err(e) => {
                export.bad_lines.push((number, e.to_string()));
                continue;
            }
        };
        for rs in request.resource_spans.unwrap_or_default() {
            let service = service_name(&rs.resource.attributes);
            for span in rs.scope_spans.into_iter().flat_map(|s| s.spans) {
                let span = span.into_span(&service);
                if span.trace_id.is_empty() || span.span_id.is_empty() {
                    export.bad_spans += 1;
                } else if !seen.insert((span.trace_id.clone(), span.span_id.clone())) {
                    export.duplicate_spans += 1;
                } else {
                    trace_entry(&mut traces, &span.trace_id).spans.push(span);
                }
            }
        }
        for rl in request.resource_logs.unwrap_or_default() {
            let service = service_name(&rl.resource.attributes);
            for log in rl.scope_logs.into_iter().flat_map(|s| s.log_records) {
                let trace_id = log.trace_id.to_ascii_lowercase();
                if !trace_id.is_empty() {
                    let log = log.into_log(&service);
                    trace_entry(&mut traces, &trace_id).logs.push(log);
                }
            }
        }
    }
    // A trace only logs speak of has nothing to draw.
    export.traces = traces
        .into_values()
        .filter(|t| !t.spans.is_empty())
        .collect();
    export.traces.sort_by_key(Trace::start);
    Ok(export)
}

fn trace_entry<'a>(traces: &'a mut BTreeMap<String, Trace>, id: &str) -> &'a mut Trace {
    traces.entry(id.to_owned()).or_insert_with(|| Trace {
        id: id.to_owned(),
        ..Trace::default()
    })
}

fn service_name(attrs: &[RawKv]) -> String {
    attrs
        .iter()
        .find(|kv| kv.key == "service.name")
        .and_then(|kv| kv.value.get("stringValue"))
        .and_then(Json::as_str)
        .unwrap_or("unknown_service")
        .to_owned()
}

/// An OTLP `AnyValue` as plain JSON.
fn plain(v: &Json) -> Json {
    let Some((kind, inner)) = v.as_object().and_then(|o| o.iter().next()) else {
        return Json::Null;
    };
    match (kind.as_str(), inner) {
        ("intValue", Json::String(s)) => s.parse::<i64>().map_or(inner.clone(), Json::from),
        ("arrayValue", a) => Json::Array(
            a.get("values")
                .and_then(Json::as_array)
                .map(|vs| vs.iter().map(plain).collect())
                .unwrap_or_default(),
        ),
        ("kvlistValue", kv) => Json::Object(
            kv.get("values")
                .and_then(Json::as_array)
                .map(|vs| {
                    vs.iter()
                        .filter_map(|e| {
                            Some((e.get("key")?.as_str()?.to_owned(), plain(&e["value"])))
                        })
                        .collect()
                })
                .unwrap_or_default(),
        ),
        (_, other) => other.clone(),
    }
}

fn plain_attrs(kvs: Vec<RawKv>) -> Attrs {
    kvs.into_iter()
        .map(|kv| (kv.key, plain(&kv.value)))
        .collect()
}

/// An enum given as its number or as its protobuf name.
fn enum_index(v: &Json, names: &[&str]) -> usize {
    match v {
        Json::Number(n) => n.as_u64().map_or(0, |n| n as usize),
        Json::String(s) => names
            .iter()
            .position(|name| s.ends_with(&name.to_ascii_uppercase()))
            .unwrap_or(0),
        _ => 0,
    }
}

const KINDS: [&str; 6] = [
    "unspecified",
    "internal",
    "server",
    "client",
    "producer",
    "consumer",
];
const CODES: [&str; 3] = ["UNSET", "OK", "ERROR"];

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Request {
    resource_spans: Option<Vec<ResourceSpans>>,
    resource_logs: Option<Vec<ResourceLogs>>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Resource {
    attributes: Vec<RawKv>,
}

#[derive(Deserialize)]
struct RawKv {
    key: String,
    #[serde(default)]
    value: Json,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", default)]
#[derive(Default)]
struct ResourceSpans {
    resource: Resource,
    scope_spans: Vec<ScopeSpans>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ScopeSpans {
    spans: Vec<RawSpan>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct RawSpan {
    trace_id: String,
    span_id: String,
    parent_span_id: String,
    name: String,
    kind: Json,
    #[serde(deserialize_with = "nanos")]
    start_time_unix_nano: u64,
    #[serde(deserialize_with = "nanos")]
    end_time_unix_nano: u64,
    attributes: Vec<RawKv>,
    events: Vec<RawEvent>,
    links: Vec<RawLink>,
    status: RawStatus,
}

impl RawSpan {
    fn into_span(self, service: &str) -> Span {
        let parent = self.parent_span_id.to_ascii_lowercase();
        Span {
            trace_id: self.trace_id.to_ascii_lowercase(),
            span_id: self.span_id.to_ascii_lowercase(),
            parent_id: (!parent.is_empty()).then_some(parent),
            name: self.name,
            service: service.to_owned(),
            kind: KINDS[enum_index(&self.kind, &KINDS).min(KINDS.len() - 1)],
            start: self.start_time_unix_nano,
            end: self.end_time_unix_nano.max(self.start_time_unix_nano),
            attributes: plain_attrs(self.attributes),
            events: self
                .events
                .into_iter()
                .map(|e| Event {
                    time: e.time_unix_nano,
                    name: e.name,
                    attributes: plain_attrs(e.attributes),
                })
                .collect(),
            links: self
                .links
                .into_iter()
                .map(|l| Link {
                    trace_id: l.trace_id.to_ascii_lowercase(),
                    span_id: l.span_id.to_ascii_lowercase(),
                    attributes: plain_attrs(l.attributes),
                })
                .collect(),
            status: Status {
                code: CODES[enum_index(&self.status.code, &CODES).min(CODES.len() - 1)],
                message: self.status.message,
            },
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct RawEvent {
    #[serde(deserialize_with = "nanos")]
    time_unix_nano: u64,
    name: String,
    attributes: Vec<RawKv>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct RawLink {
    trace_id: String,
    span_id: String,
    attributes: Vec<RawKv>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawStatus {
    code: Json,
    message: String,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct ResourceLogs {
    resource: Resource,
    scope_logs: Vec<ScopeLogs>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct ScopeLogs {
    log_records: Vec<RawLog>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct RawLog {
    #[serde(deserialize_with = "nanos")]
    time_unix_nano: u64,
    #[serde(deserialize_with = "nanos")]
    observed_time_unix_nano: u64,
    severity_text: String,
    severity_number: u8,
    body: Json,
    attributes: Vec<RawKv>,
    trace_id: String,
    span_id: String,
}

impl RawLog {
    fn into_log(self, service: &str) -> Log {
        let severity = if self.severity_text.is_empty() {
            // The OTLP ranges: 1-4 TRACE, 5-8 DEBUG, 9-12 INFO, ...
            ["", "TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"]
                [usize::from(self.severity_number.min(24)).div_ceil(4)]
            .to_owned()
        } else {
            self.severity_text
        };
        let span = self.span_id.to_ascii_lowercase();
        Log {
            time: if self.time_unix_nano == 0 {
                self.observed_time_unix_nano
            } else {
                self.time_unix_nano
            },
            service: service.to_owned(),
            severity,
            body: plain(&self.body),
            attributes: plain_attrs(self.attributes),
            span_id: (!span.is_empty()).then_some(span),
        }
    }
}

/// A 64-bit time: the JSON mapping writes it as a decimal string, some
/// writers as a number.
fn nanos<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    match Json::deserialize(d)? {
        Json::Number(n) => n
            .as_u64()
            .ok_or_else(|| serde::de::Error::custom(format!("bad time {n}"))),
        Json::String(s) => s
            .parse()
            .map_err(|_| serde::de::Error::custom(format!("bad time {s:?}"))),
        Json::Null => Ok(0),
        other => Err(serde::de::Error::custom(format!("bad time {other}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_of_one_trace_on_several_lines_come_together() {
        let text = concat!(
            r#"{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"web"}}]},"scopeSpans":[{"spans":[{"traceId":"AA","spanId":"01","name":"GET /","kind":2,"startTimeUnixNano":"1000","endTimeUnixNano":"5000","status":{"code":2,"message":"boom"},"attributes":[{"key":"n","value":{"intValue":"3"}},{"key":"t","value":{"arrayValue":{"values":[{"stringValue":"a"}]}}}]}]}]}]}"#,
            "\n\nnot json\n{}\n",
            r#"{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"db"}}]},"scopeSpans":[{"spans":[{"traceId":"aa","spanId":"02","parentSpanId":"01","name":"q","kind":"SPAN_KIND_CLIENT","startTimeUnixNano":2000,"endTimeUnixNano":"1500"},{"traceId":"aa","spanId":"01"},{"spanId":"03"}]}]}]}"#,
            "\n",
            r#"{"resourceLogs":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"db"}}]},"scopeLogs":[{"logRecords":[{"timeUnixNano":"2500","severityNumber":17,"body":{"stringValue":"slow"},"traceId":"aa","spanId":"02"},{"timeUnixNano":"1","body":{"stringValue":"no trace"}}]}]}]}"#,
        );
        let e = read(text.as_bytes()).unwrap();
        assert_eq!(e.lines, 5);
        assert_eq!(e.bad_lines.iter().map(|b| b.0).collect::<Vec<_>>(), [3, 4]);
        assert_eq!((e.bad_spans, e.duplicate_spans), (1, 1));
        assert_eq!(e.traces.len(), 1);
        let t = &e.traces[0];
        assert_eq!(t.id, "aa");
        assert_eq!(t.spans.len(), 2);
        let web = &t.spans[0];
        assert!(web.is_error() && web.status.message == "boom");
        assert_eq!((web.kind, web.service.as_str()), ("server", "web"));
        assert_eq!(web.attributes[0], ("n".into(), Json::from(3)));
        assert_eq!(web.attributes[1].1, serde_json::json!(["a"]));
        let db = &t.spans[1];
        assert_eq!(db.kind, "client");
        assert_eq!(db.parent_id.as_deref(), Some("01"));
        assert_eq!(
            (db.start, db.end),
            (2000, 2000),
            "an end before the start is the start"
        );
        assert_eq!(t.logs.len(), 1);
        assert_eq!(t.logs[0].severity, "ERROR");
        assert_eq!(t.logs[0].text(), "slow");
        let (by_span, loose) = t.logs_by_span();
        assert_eq!(
            (by_span["02"].len(), by_span["01"].len(), loose.len()),
            (1, 0, 0)
        );
        assert_eq!(t.services(), ["web", "db"]);
        assert_eq!((t.duration(), t.errors()), (4000, 1));
    }

    #[test]
    fn a_bad_time_makes_the_line_bad() {
        let e = read(
            &br#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"a","spanId":"b","startTimeUnixNano":"soon"}]}]}]}"#[..],
        )
        .unwrap();
        assert_eq!(e.bad_lines.len(), 1);
        assert!(e.bad_lines[0].1.contains("soon"), "{:?}", e.bad_lines);
        assert!(e.traces.is_empty());
    }
}
