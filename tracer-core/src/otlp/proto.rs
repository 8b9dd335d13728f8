//! The OTLP protobuf messages the node sends (`http/protobuf`), derived
//! with prost from the official definitions (opentelemetry-proto:
//! `collector/{trace,logs}/v1/*_service.proto`, `trace/v1/trace.proto`,
//! `logs/v1/logs.proto`, `common/v1/common.proto`,
//! `resource/v1/resource.proto`): the fields the node writes, with the
//! official names, types and numbers. prost does the wire format.

use prost::Message;

/// `ExportTraceServiceRequest`.
#[derive(Clone, PartialEq, Message)]
pub struct ExportTraceServiceRequest {
    /// `resource_spans = 1`.
    #[prost(message, repeated, tag = "1")]
    pub resource_spans: Vec<ResourceSpans>,
}

/// `ExportLogsServiceRequest`.
#[derive(Clone, PartialEq, Message)]
pub struct ExportLogsServiceRequest {
    /// `resource_logs = 1`.
    #[prost(message, repeated, tag = "1")]
    pub resource_logs: Vec<ResourceLogs>,
}

/// `ResourceSpans`.
#[derive(Clone, PartialEq, Message)]
pub struct ResourceSpans {
    /// `resource = 1`.
    #[prost(message, optional, tag = "1")]
    pub resource: Option<Resource>,
    /// `scope_spans = 2`.
    #[prost(message, repeated, tag = "2")]
    pub scope_spans: Vec<ScopeSpans>,
}

/// `ResourceLogs`.
#[derive(Clone, PartialEq, Message)]
pub struct ResourceLogs {
    /// `resource = 1`.
    #[prost(message, optional, tag = "1")]
    pub resource: Option<Resource>,
    /// `scope_logs = 2`.
    #[prost(message, repeated, tag = "2")]
    pub scope_logs: Vec<ScopeLogs>,
}

/// `Resource`.
#[derive(Clone, PartialEq, Message)]
pub struct Resource {
    /// `attributes = 1`.
    #[prost(message, repeated, tag = "1")]
    pub attributes: Vec<KeyValue>,
}

/// `InstrumentationScope`.
#[derive(Clone, PartialEq, Message)]
pub struct InstrumentationScope {
    /// `name = 1`.
    #[prost(string, tag = "1")]
    pub name: String,
    /// `version = 2`.
    #[prost(string, tag = "2")]
    pub version: String,
}

/// `ScopeSpans`.
#[derive(Clone, PartialEq, Message)]
pub struct ScopeSpans {
    /// `scope = 1`.
    #[prost(message, optional, tag = "1")]
    pub scope: Option<InstrumentationScope>,
    /// `spans = 2`.
    #[prost(message, repeated, tag = "2")]
    pub spans: Vec<Span>,
}

/// `ScopeLogs`.
#[derive(Clone, PartialEq, Message)]
pub struct ScopeLogs {
    /// `scope = 1`.
    #[prost(message, optional, tag = "1")]
    pub scope: Option<InstrumentationScope>,
    /// `log_records = 2`.
    #[prost(message, repeated, tag = "2")]
    pub log_records: Vec<LogRecord>,
}

/// `Span`.
#[derive(Clone, PartialEq, Message)]
pub struct Span {
    /// `trace_id = 1` (16 bytes).
    #[prost(bytes = "vec", tag = "1")]
    pub trace_id: Vec<u8>,
    /// `span_id = 2` (8 bytes).
    #[prost(bytes = "vec", tag = "2")]
    pub span_id: Vec<u8>,
    /// `trace_state = 3`.
    #[prost(string, tag = "3")]
    pub trace_state: String,
    /// `parent_span_id = 4` (empty for a root).
    #[prost(bytes = "vec", tag = "4")]
    pub parent_span_id: Vec<u8>,
    /// `name = 5`.
    #[prost(string, tag = "5")]
    pub name: String,
    /// `kind = 6` (`SpanKind`).
    #[prost(int32, tag = "6")]
    pub kind: i32,
    /// `start_time_unix_nano = 7`.
    #[prost(fixed64, tag = "7")]
    pub start_time_unix_nano: u64,
    /// `end_time_unix_nano = 8`.
    #[prost(fixed64, tag = "8")]
    pub end_time_unix_nano: u64,
    /// `attributes = 9`.
    #[prost(message, repeated, tag = "9")]
    pub attributes: Vec<KeyValue>,
    /// `events = 11`.
    #[prost(message, repeated, tag = "11")]
    pub events: Vec<Event>,
    /// `links = 13`.
    #[prost(message, repeated, tag = "13")]
    pub links: Vec<Link>,
    /// `status = 15`.
    #[prost(message, optional, tag = "15")]
    pub status: Option<Status>,
    /// `flags = 16` (the W3C trace flags in the low byte).
    #[prost(fixed32, tag = "16")]
    pub flags: u32,
}

/// `Span.Event`.
#[derive(Clone, PartialEq, Message)]
pub struct Event {
    /// `time_unix_nano = 1`.
    #[prost(fixed64, tag = "1")]
    pub time_unix_nano: u64,
    /// `name = 2`.
    #[prost(string, tag = "2")]
    pub name: String,
    /// `attributes = 3`.
    #[prost(message, repeated, tag = "3")]
    pub attributes: Vec<KeyValue>,
}

/// `Span.Link`.
#[derive(Clone, PartialEq, Message)]
pub struct Link {
    /// `trace_id = 1`.
    #[prost(bytes = "vec", tag = "1")]
    pub trace_id: Vec<u8>,
    /// `span_id = 2`.
    #[prost(bytes = "vec", tag = "2")]
    pub span_id: Vec<u8>,
    /// `trace_state = 3`.
    #[prost(string, tag = "3")]
    pub trace_state: String,
    /// `attributes = 4`.
    #[prost(message, repeated, tag = "4")]
    pub attributes: Vec<KeyValue>,
}

/// `Status`.
#[derive(Clone, PartialEq, Message)]
pub struct Status {
    /// `message = 2`.
    #[prost(string, tag = "2")]
    pub message: String,
    /// `code = 3` (`StatusCode`: 0 unset, 1 ok, 2 error).
    #[prost(int32, tag = "3")]
    pub code: i32,
}

/// `LogRecord`.
#[derive(Clone, PartialEq, Message)]
pub struct LogRecord {
    /// `time_unix_nano = 1`.
    #[prost(fixed64, tag = "1")]
    pub time_unix_nano: u64,
    /// `severity_number = 2`.
    #[prost(int32, tag = "2")]
    pub severity_number: i32,
    /// `severity_text = 3`.
    #[prost(string, tag = "3")]
    pub severity_text: String,
    /// `body = 5`.
    #[prost(message, optional, tag = "5")]
    pub body: Option<AnyValue>,
    /// `attributes = 6`.
    #[prost(message, repeated, tag = "6")]
    pub attributes: Vec<KeyValue>,
    /// `trace_id = 9`.
    #[prost(bytes = "vec", tag = "9")]
    pub trace_id: Vec<u8>,
    /// `span_id = 10`.
    #[prost(bytes = "vec", tag = "10")]
    pub span_id: Vec<u8>,
    /// `observed_time_unix_nano = 11`.
    #[prost(fixed64, tag = "11")]
    pub observed_time_unix_nano: u64,
}

/// `KeyValue`.
#[derive(Clone, PartialEq, Message)]
pub struct KeyValue {
    /// `key = 1`.
    #[prost(string, tag = "1")]
    pub key: String,
    /// `value = 2`.
    #[prost(message, optional, tag = "2")]
    pub value: Option<AnyValue>,
}

/// `AnyValue`: a `oneof value`.
#[derive(Clone, PartialEq, Message)]
pub struct AnyValue {
    /// The one value set.
    #[prost(oneof = "any_value::Value", tags = "1, 2, 3, 4, 5")]
    pub value: Option<any_value::Value>,
}

/// `AnyValue`'s `oneof value`.
pub mod any_value {
    /// One of the value kinds the node writes.
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum Value {
        /// `string_value = 1`.
        #[prost(string, tag = "1")]
        StringValue(String),
        /// `bool_value = 2`.
        #[prost(bool, tag = "2")]
        BoolValue(bool),
        /// `int_value = 3`.
        #[prost(int64, tag = "3")]
        IntValue(i64),
        /// `double_value = 4`.
        #[prost(double, tag = "4")]
        DoubleValue(f64),
        /// `array_value = 5`.
        #[prost(message, tag = "5")]
        ArrayValue(super::ArrayValue),
    }
}

/// `ArrayValue`.
#[derive(Clone, PartialEq, Message)]
pub struct ArrayValue {
    /// `values = 1`.
    #[prost(message, repeated, tag = "1")]
    pub values: Vec<AnyValue>,
}
