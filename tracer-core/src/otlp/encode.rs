//! The OTLP encodings of spans and logs: `http/protobuf` (the default of
//! the specification, through the prost messages of [`proto`]) and
//! `http/json` (the protobuf JSON mapping of the OTLP spec: hex ids, enums
//! as integers, 64-bit integers as strings). Both group spans and logs
//! into one resource per service the same way ([`by_service`]).

use super::proto;
use crate::{Array, KeyValue, LogRecord, SpanData, SpanId, SpanKind, Status, TraceId, Value};
use serde::Serialize;
use std::collections::BTreeMap;

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

/// Items grouped by the service they belong to, services in order: each
/// group becomes one resource of an export request.
pub fn by_service<'a, T>(
    items: &'a [T],
    service: impl Fn(&'a T) -> &'a str,
) -> BTreeMap<&'a str, Vec<&'a T>> {
    let mut groups: BTreeMap<&str, Vec<&T>> = BTreeMap::new();
    for item in items {
        groups.entry(service(item)).or_default().push(item);
    }
    groups
}

/// Spans by service: a span's `service.name` attribute, else
/// `default_service`.
fn spans_by_service<'a>(
    spans: &'a [SpanData],
    default_service: &'a str,
) -> BTreeMap<&'a str, Vec<&'a SpanData>> {
    by_service(spans, |s| {
        s.attribute(SERVICE_NAME)
            .and_then(Value::as_str)
            .unwrap_or(default_service)
    })
}

/// One `ExportTraceServiceRequest`: spans grouped into one resource per
/// service (a span's `service.name` attribute, else `default_service`).
pub fn encode_spans(
    base: &[(String, String)],
    default_service: &str,
    spans: &[SpanData],
) -> String {
    let req = TracesRequest {
        resource_spans: spans_by_service(spans, default_service)
            .into_iter()
            .map(|(service, spans)| ResourceSpans {
                resource: resource(base, service),
                scope_spans: vec![ScopeSpans {
                    scope: SCOPE,
                    spans: spans.into_iter().map(span).collect(),
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
    let req = LogsRequest {
        resource_logs: by_service(logs, |l| &l.service)
            .into_iter()
            .map(|(service, records)| ResourceLogs {
                resource: resource(base, service),
                scope_logs: vec![ScopeLogs {
                    scope: SCOPE,
                    log_records: records.into_iter().map(log).collect(),
                }],
            })
            .collect(),
    };
    serde_json::to_string(&req).expect("OTLP structs serialize")
}

fn pb_any(v: &Value) -> proto::AnyValue {
    use proto::any_value::Value as V;
    let value = match v {
        Value::String(s) => V::StringValue(s.to_string()),
        Value::Bool(b) => V::BoolValue(*b),
        Value::I64(i) => V::IntValue(*i),
        Value::F64(f) => V::DoubleValue(*f),
        Value::Array(a) => V::ArrayValue(proto::ArrayValue {
            values: match a {
                Array::String(v) => v
                    .iter()
                    .map(|s| pb_any(&Value::from(s.to_string())))
                    .collect(),
                Array::Bool(v) => v.iter().map(|b| pb_any(&Value::Bool(*b))).collect(),
                Array::I64(v) => v.iter().map(|i| pb_any(&Value::I64(*i))).collect(),
                Array::F64(v) => v.iter().map(|f| pb_any(&Value::F64(*f))).collect(),
            },
        }),
    };
    proto::AnyValue { value: Some(value) }
}

fn pb_attrs(kvs: &[KeyValue], skip: Option<&str>) -> Vec<proto::KeyValue> {
    kvs.iter()
        .filter(|kv| Some(&*kv.key) != skip)
        .map(|kv| proto::KeyValue {
            key: kv.key.to_string(),
            value: Some(pb_any(&kv.value)),
        })
        .collect()
}

fn pb_resource(base: &[(String, String)], service: &str) -> proto::Resource {
    let mut attributes = vec![proto::KeyValue {
        key: SERVICE_NAME.to_owned(),
        value: Some(pb_any(&Value::from(service.to_owned()))),
    }];
    attributes.extend(
        base.iter()
            .filter(|(k, _)| k != SERVICE_NAME)
            .map(|(k, v)| proto::KeyValue {
                key: k.clone(),
                value: Some(pb_any(&Value::from(v.clone()))),
            }),
    );
    proto::Resource { attributes }
}

fn pb_scope() -> Option<proto::InstrumentationScope> {
    Some(proto::InstrumentationScope {
        name: SCOPE.name.to_owned(),
        version: SCOPE.version.to_owned(),
    })
}

fn pb_span(s: &SpanData) -> proto::Span {
    let (code, message) = match &s.status {
        Status::Unset => (0, String::new()),
        Status::Ok => (1, String::new()),
        Status::Error(m) => (2, m.to_string()),
    };
    proto::Span {
        trace_id: s.context.trace_id().to_u128().to_be_bytes().to_vec(),
        span_id: s.context.span_id().to_u64().to_be_bytes().to_vec(),
        trace_state: s.context.trace_state().header(),
        parent_span_id: s
            .parent_span_id
            .map(|p| p.to_u64().to_be_bytes().to_vec())
            .unwrap_or_default(),
        name: s.name.to_string(),
        kind: i32::from(kind(s.kind)),
        start_time_unix_nano: s.start_unix_nanos,
        end_time_unix_nano: s.end_unix_nanos,
        // The service is the resource's, not the span's.
        attributes: pb_attrs(&s.attributes, Some(SERVICE_NAME)),
        events: s
            .events
            .iter()
            .map(|e| proto::Event {
                time_unix_nano: e.time_unix_nanos,
                name: e.name.to_string(),
                attributes: pb_attrs(&e.attributes, None),
            })
            .collect(),
        links: s
            .links
            .iter()
            .map(|l| proto::Link {
                trace_id: l.context.trace_id().to_u128().to_be_bytes().to_vec(),
                span_id: l.context.span_id().to_u64().to_be_bytes().to_vec(),
                trace_state: l.context.trace_state().header(),
                attributes: pb_attrs(&l.attributes, None),
            })
            .collect(),
        status: Some(proto::Status { message, code }),
        flags: u32::from(s.context.flags().bits()),
    }
}

/// One `ExportTraceServiceRequest` in protobuf, grouped as
/// [`encode_spans`] groups the JSON one.
pub fn encode_spans_proto(
    base: &[(String, String)],
    default_service: &str,
    spans: &[SpanData],
) -> Vec<u8> {
    use prost::Message;
    proto::ExportTraceServiceRequest {
        resource_spans: spans_by_service(spans, default_service)
            .into_iter()
            .map(|(service, spans)| proto::ResourceSpans {
                resource: Some(pb_resource(base, service)),
                scope_spans: vec![proto::ScopeSpans {
                    scope: pb_scope(),
                    spans: spans.into_iter().map(pb_span).collect(),
                }],
            })
            .collect(),
    }
    .encode_to_vec()
}

fn pb_log(l: &LogRecord) -> proto::LogRecord {
    proto::LogRecord {
        time_unix_nano: l.time_unix_nanos,
        observed_time_unix_nano: l.time_unix_nanos,
        severity_number: i32::from(severity(l.level.as_deref())),
        severity_text: l.level.as_deref().unwrap_or_default().to_owned(),
        body: Some(pb_any(&Value::from(l.body.to_string()))),
        attributes: pb_attrs(&l.attributes, None),
        trace_id: l
            .trace_id
            .map(|t| t.to_u128().to_be_bytes().to_vec())
            .unwrap_or_default(),
        span_id: l
            .span_id
            .map(|s| s.to_u64().to_be_bytes().to_vec())
            .unwrap_or_default(),
    }
}

/// One `ExportLogsServiceRequest` in protobuf, one resource per service.
pub fn encode_logs_proto(base: &[(String, String)], logs: &[LogRecord]) -> Vec<u8> {
    use prost::Message;
    proto::ExportLogsServiceRequest {
        resource_logs: by_service(logs, |l| &l.service)
            .into_iter()
            .map(|(service, records)| proto::ResourceLogs {
                resource: Some(pb_resource(base, service)),
                scope_logs: vec![proto::ScopeLogs {
                    scope: pb_scope(),
                    log_records: records.into_iter().map(pb_log).collect(),
                }],
            })
            .collect(),
    }
    .encode_to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{InMemoryExporter, Sampler, Tracer};
    use std::sync::Arc;

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

    #[test]
    fn protobuf_requests_decode_to_what_was_encoded() {
        use prost::Message;
        let mem = Arc::new(InMemoryExporter::new());
        let t = Tracer::new(Sampler::AlwaysOn, mem.clone());
        {
            let root = t
                .span_builder("GET /x")
                .kind(SpanKind::Server)
                .attribute("service.name", "web")
                .attribute("n", 3_i64)
                .attribute("tags", vec!["a", "b"])
                .start()
                .entered();
            let mut c = t.span_builder("db").kind(SpanKind::Client).start();
            c.record_exception("E", "boom", None);
            drop(root);
        }
        let spans = mem.take();
        let bytes = encode_spans_proto(&[("deployment".into(), "test".into())], "node", &spans);
        let req = proto::ExportTraceServiceRequest::decode(&bytes[..]).unwrap();
        assert_eq!(req.resource_spans.len(), 2, "one resource per service");
        let web = &req.resource_spans[1];
        let service = &web.resource.as_ref().unwrap().attributes[0];
        assert_eq!(service.key, "service.name");
        let span = &web.scope_spans[0].spans[0];
        assert_eq!(span.kind, 2);
        assert_eq!(
            span.trace_id,
            spans[1].context.trace_id().to_u128().to_be_bytes()
        );
        assert!(span.parent_span_id.is_empty());
        assert_eq!(span.attributes[0].key, "n");
        assert_eq!(
            span.attributes[0].value,
            Some(proto::AnyValue {
                value: Some(proto::any_value::Value::IntValue(3))
            })
        );
        let db = &req.resource_spans[0].scope_spans[0].spans[0];
        assert_eq!(db.parent_span_id, span.span_id);
        assert_eq!(db.status.as_ref().unwrap().code, 2);
        assert_eq!(db.events[0].name, "exception");
        let logs = encode_logs_proto(
            &[],
            &[LogRecord {
                time_unix_nanos: 42,
                service: "web".into(),
                level: Some("ERROR".into()),
                body: "hi".into(),
                trace_id: TraceId::parse("4bf92f3577b34da6a3ce929d0e0e4736"),
                span_id: None,
                attributes: vec![],
            }],
        );
        let req = proto::ExportLogsServiceRequest::decode(&logs[..]).unwrap();
        let rec = &req.resource_logs[0].scope_logs[0].log_records[0];
        assert_eq!(rec.severity_number, 17);
        assert_eq!(rec.trace_id.len(), 16);
        assert!(rec.span_id.is_empty());
        assert_eq!(rec.time_unix_nano, 42);
    }
}
