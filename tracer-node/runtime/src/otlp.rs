//! The OTLP/JSON encoding of spans and logs (the protobuf JSON mapping of
//! the OTLP spec: hex ids, enums as integers, 64-bit integers as strings).

use serde::Serialize;
use std::collections::BTreeMap;
use tracer_core::{Array, KeyValue, LogRecord, SpanData, SpanId, SpanKind, Status, TraceId, Value};

/// `service.name`, the one resource attribute every export carries.
pub const SERVICE_NAME: &str = "service.name";

/// The variant names are the OTLP JSON field names.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
#[allow(clippy::enum_variant_names)]
enum AnyValue<'a> {
    StringValue(&'a str),
    BoolValue(bool),
    IntValue(String),
    DoubleValue(f64),
    ArrayValue { values: Vec<AnyValue<'a>> },
}

fn any(v: &Value) -> AnyValue<'_> {
    match v {
        Value::String(s) => AnyValue::StringValue(s),
        Value::Bool(b) => AnyValue::BoolValue(*b),
        Value::I64(i) => AnyValue::IntValue(i.to_string()),
        Value::F64(f) => AnyValue::DoubleValue(*f),
        Value::Array(a) => AnyValue::ArrayValue {
            values: match a {
                Array::String(v) => v.iter().map(|s| AnyValue::StringValue(s)).collect(),
                Array::Bool(v) => v.iter().map(|b| AnyValue::BoolValue(*b)).collect(),
                Array::I64(v) => v
                    .iter()
                    .map(|i| AnyValue::IntValue(i.to_string()))
                    .collect(),
                Array::F64(v) => v.iter().map(|f| AnyValue::DoubleValue(*f)).collect(),
            },
        },
    }
}

#[derive(Serialize)]
struct Attr<'a> {
    key: &'a str,
    value: AnyValue<'a>,
}

fn attrs<'a>(kvs: &'a [KeyValue], skip: Option<&str>) -> Vec<Attr<'a>> {
    kvs.iter()
        .filter(|kv| Some(&*kv.key) != skip)
        .map(|kv| Attr {
            key: &kv.key,
            value: any(&kv.value),
        })
        .collect()
}

#[derive(Serialize)]
struct Resource<'a> {
    attributes: Vec<Attr<'a>>,
}

#[derive(Serialize)]
struct Scope {
    name: &'static str,
    version: &'static str,
}

const SCOPE: Scope = Scope {
    name: "tracer",
    version: env!("CARGO_PKG_VERSION"),
};

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct OtlpStatus<'a> {
    code: u8,
    #[serde(skip_serializing_if = "str::is_empty")]
    message: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct OtlpEvent<'a> {
    time_unix_nano: String,
    name: &'a str,
    attributes: Vec<Attr<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct OtlpLink<'a> {
    trace_id: String,
    span_id: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    trace_state: String,
    attributes: Vec<Attr<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct OtlpSpan<'a> {
    trace_id: String,
    span_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    parent_span_id: Option<String>,
    #[serde(skip_serializing_if = "String::is_empty")]
    trace_state: String,
    flags: u32,
    name: &'a str,
    kind: u8,
    start_time_unix_nano: String,
    end_time_unix_nano: String,
    attributes: Vec<Attr<'a>>,
    events: Vec<OtlpEvent<'a>>,
    links: Vec<OtlpLink<'a>>,
    status: OtlpStatus<'a>,
}

fn kind(k: SpanKind) -> u8 {
    match k {
        SpanKind::Internal => 1,
        SpanKind::Server => 2,
        SpanKind::Client => 3,
        SpanKind::Producer => 4,
        SpanKind::Consumer => 5,
    }
}

fn span(s: &SpanData) -> OtlpSpan<'_> {
    let (code, message) = match &s.status {
        Status::Unset => (0, ""),
        Status::Ok => (1, ""),
        Status::Error(m) => (2, &**m),
    };
    OtlpSpan {
        trace_id: s.context.trace_id().to_hex(),
        span_id: s.context.span_id().to_hex(),
        parent_span_id: s.parent_span_id.map(SpanId::to_hex),
        trace_state: s.context.trace_state().header(),
        flags: u32::from(s.context.flags().bits()),
        name: &s.name,
        kind: kind(s.kind),
        start_time_unix_nano: s.start_unix_nanos.to_string(),
        end_time_unix_nano: s.end_unix_nanos.to_string(),
        // The service is the resource's, not the span's.
        attributes: attrs(&s.attributes, Some(SERVICE_NAME)),
        events: s
            .events
            .iter()
            .map(|e| OtlpEvent {
                time_unix_nano: e.time_unix_nanos.to_string(),
                name: &e.name,
                attributes: attrs(&e.attributes, None),
            })
            .collect(),
        links: s
            .links
            .iter()
            .map(|l| OtlpLink {
                trace_id: l.context.trace_id().to_hex(),
                span_id: l.context.span_id().to_hex(),
                trace_state: l.context.trace_state().header(),
                attributes: attrs(&l.attributes, None),
            })
            .collect(),
        status: OtlpStatus { code, message },
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ScopeSpans<'a> {
    scope: Scope,
    spans: Vec<OtlpSpan<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ResourceSpans<'a> {
    resource: Resource<'a>,
    scope_spans: Vec<ScopeSpans<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct TracesRequest<'a> {
    resource_spans: Vec<ResourceSpans<'a>>,
}

fn resource<'a>(base: &'a [(String, String)], service: &'a str) -> Resource<'a> {
    let mut attributes = vec![Attr {
        key: SERVICE_NAME,
        value: AnyValue::StringValue(service),
    }];
    attributes.extend(
        base.iter()
            .filter(|(k, _)| k != SERVICE_NAME)
            .map(|(k, v)| Attr {
                key: k,
                value: AnyValue::StringValue(v),
            }),
    );
    Resource { attributes }
}

/// One `ExportTraceServiceRequest`: spans grouped into one resource per
/// service (a span's `service.name` attribute, else `default_service`).
pub fn encode_spans(
    base: &[(String, String)],
    default_service: &str,
    spans: &[SpanData],
) -> String {
    let mut by_service: BTreeMap<&str, Vec<OtlpSpan<'_>>> = BTreeMap::new();
    for s in spans {
        let service = s
            .attribute(SERVICE_NAME)
            .and_then(Value::as_str)
            .unwrap_or(default_service);
        by_service.entry(service).or_default().push(span(s));
    }
    let req = TracesRequest {
        resource_spans: by_service
            .into_iter()
            .map(|(service, spans)| ResourceSpans {
                resource: resource(base, service),
                scope_spans: vec![ScopeSpans {
                    scope: SCOPE,
                    spans,
                }],
            })
            .collect(),
    };
    serde_json::to_string(&req).expect("OTLP structs serialize")
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct OtlpLog<'a> {
    time_unix_nano: String,
    observed_time_unix_nano: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    severity_text: Option<&'a str>,
    severity_number: u8,
    body: AnyValue<'a>,
    attributes: Vec<Attr<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    trace_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    span_id: Option<String>,
}

fn severity(level: Option<&str>) -> u8 {
    match level.map(str::to_ascii_lowercase).as_deref() {
        Some("trace") => 1,
        Some("debug") => 5,
        Some("info") => 9,
        Some("warn" | "warning") => 13,
        Some("error") => 17,
        Some("fatal" | "critical") => 21,
        _ => 0,
    }
}

fn log(l: &LogRecord) -> OtlpLog<'_> {
    let time = l.time_unix_nanos.to_string();
    OtlpLog {
        observed_time_unix_nano: time.clone(),
        time_unix_nano: time,
        severity_text: l.level.as_deref(),
        severity_number: severity(l.level.as_deref()),
        body: AnyValue::StringValue(&l.body),
        attributes: attrs(&l.attributes, None),
        trace_id: l.trace_id.map(TraceId::to_hex),
        span_id: l.span_id.map(SpanId::to_hex),
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ScopeLogs<'a> {
    scope: Scope,
    log_records: Vec<OtlpLog<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ResourceLogs<'a> {
    resource: Resource<'a>,
    scope_logs: Vec<ScopeLogs<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct LogsRequest<'a> {
    resource_logs: Vec<ResourceLogs<'a>>,
}

/// One `ExportLogsServiceRequest`, one resource per service.
pub fn encode_logs(base: &[(String, String)], logs: &[LogRecord]) -> String {
    let mut by_service: BTreeMap<&str, Vec<OtlpLog<'_>>> = BTreeMap::new();
    for l in logs {
        by_service.entry(&l.service).or_default().push(log(l));
    }
    let req = LogsRequest {
        resource_logs: by_service
            .into_iter()
            .map(|(service, log_records)| ResourceLogs {
                resource: resource(base, service),
                scope_logs: vec![ScopeLogs {
                    scope: SCOPE,
                    log_records,
                }],
            })
            .collect(),
    };
    serde_json::to_string(&req).expect("OTLP structs serialize")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use tracer_core::{InMemoryExporter, Sampler, Tracer};

    #[test]
    fn spans_encode_as_the_otlp_json_mapping() {
        let mem = Arc::new(InMemoryExporter::new());
        let t = Tracer::new(Sampler::AlwaysOn, mem.clone());
        {
            let root = t
                .span_builder("GET /x")
                .kind(SpanKind::Server)
                .attribute("service.name", "web")
                .attribute("n", 3_i64)
                .start()
                .entered();
            let mut c = t.span_builder("db").kind(SpanKind::Client).start();
            c.record_exception("E", "boom", None);
            drop(root);
        }
        let spans = mem.take();
        let json: serde_json::Value = serde_json::from_str(&encode_spans(
            &[("deployment".into(), "test".into())],
            "node",
            &spans,
        ))
        .unwrap();
        let rs = json["resourceSpans"].as_array().unwrap();
        assert_eq!(rs.len(), 2, "one resource per service: {json}");
        let web = rs
            .iter()
            .find(|r| r["resource"]["attributes"][0]["value"]["stringValue"] == "web")
            .unwrap();
        let span = &web["scopeSpans"][0]["spans"][0];
        assert_eq!(span["kind"], 2);
        assert_eq!(span["traceId"].as_str().unwrap().len(), 32);
        assert!(span.get("parentSpanId").is_none());
        assert_eq!(span["attributes"][0]["key"], "n");
        assert_eq!(span["attributes"][0]["value"]["intValue"], "3");
        assert!(span["startTimeUnixNano"].is_string());
        let node = rs
            .iter()
            .find(|r| r["resource"]["attributes"][0]["value"]["stringValue"] == "node")
            .unwrap();
        let db = &node["scopeSpans"][0]["spans"][0];
        assert_eq!(db["kind"], 3);
        assert_eq!(db["parentSpanId"], span["spanId"]);
        assert_eq!(db["status"]["code"], 2);
        assert_eq!(db["events"][0]["name"], "exception");
        assert_eq!(node["resource"]["attributes"][1]["key"], "deployment");
    }

    #[test]
    fn logs_carry_w3c_ids_and_their_attributes() {
        let record = |trace: Option<TraceId>| LogRecord {
            time_unix_nanos: 42,
            service: "web".into(),
            level: Some("ERROR".into()),
            body: "hi".into(),
            trace_id: trace,
            span_id: SpanId::from_hex("00f067aa0ba902b7"),
            attributes: vec![KeyValue::new("tracer.trace_id", "abc123")],
        };
        let json: serde_json::Value = serde_json::from_str(&encode_logs(
            &[],
            &[
                record(TraceId::parse("4bf92f35-77b3-4da6-a3ce-929d0e0e4736")),
                record(None),
            ],
        ))
        .unwrap();
        let recs = &json["resourceLogs"][0]["scopeLogs"][0]["logRecords"];
        assert_eq!(recs[0]["traceId"], "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(recs[0]["spanId"], "00f067aa0ba902b7");
        assert_eq!(recs[0]["severityNumber"], 17);
        assert_eq!(recs[0]["body"]["stringValue"], "hi");
        assert!(recs[1].get("traceId").is_none());
        assert_eq!(recs[1]["attributes"][0]["value"]["stringValue"], "abc123");
    }
}
