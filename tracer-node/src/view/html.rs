//! The HTML page: one self-contained file (`page.html`, inline CSS and
//! JS) with the traces embedded as JSON in a
//! `<script type="application/json" id="data">` element.

use super::layout::{rows, Axis, Orphan};
use super::model::{Attrs, Log, Trace};
use serde_json::{json, Value as Json};

const PAGE: &str = include_str!("page.html");
const PLACEHOLDER: &str = "{{DATA}}";
/// Bars are placed on this many cells; the page draws them in per mille.
const CELLS: usize = 1000;

/// The page for these traces. `skipped` is the number of bad lines of
/// the input, which the page mentions.
pub fn page(traces: &[&Trace], skipped: usize) -> String {
    let data = json!({
        "skipped_lines": skipped,
        "traces": traces.iter().map(|t| trace(t)).collect::<Vec<_>>(),
    });
    PAGE.replacen(PLACEHOLDER, &script_safe(&data.to_string()), 1)
}

/// JSON that cannot end its `<script>` element early: `<` only occurs
/// inside JSON strings, where `\u003c` means the same.
fn script_safe(json: &str) -> String {
    json.replace('<', "\\u003c")
}

fn trace(t: &Trace) -> Json {
    let axis = Axis::of(&t.spans);
    let rows = rows(&t.spans);
    let offset = |time: u64| i128::from(time) - i128::from(axis.start);
    let (by_span, loose) = t.logs_by_span();
    let logs = |logs: &[&Log]| -> Vec<Json> {
        logs.iter()
            .map(|l| {
                json!({
                    "offset_ns": clamp(offset(l.time)),
                    "service": l.service,
                    "severity": l.severity,
                    "body": l.text(),
                    "attributes": pairs(&l.attributes),
                })
            })
            .collect()
    };
    let json_rows: Vec<Json> = rows
        .iter()
        .map(|row| {
            let s = &t.spans[row.span];
            let bar = axis.place(s.start, s.end, CELLS);
            json!({
                "span_id": s.span_id,
                "parent_id": s.parent_id,
                "name": s.name,
                "service": s.service,
                "kind": s.kind,
                "depth": row.depth,
                "orphan": row.orphan.map(|o| match o {
                    Orphan::MissingParent => "missing-parent",
                    Orphan::Cycle => "cycle",
                }),
                "start_unix_nano": s.start.to_string(),
                "offset_ns": clamp(offset(s.start)),
                "duration_ns": s.duration(),
                "left": bar.first as f64 / 10.0,
                "width": bar.len as f64 / 10.0,
                "error": s.is_error(),
                "status": {"code": s.status.code, "message": s.status.message},
                "attributes": pairs(&s.attributes),
                "events": s.events.iter().map(|e| json!({
                    "name": e.name,
                    "offset_ns": clamp(offset(e.time)),
                    "attributes": pairs(&e.attributes),
                })).collect::<Vec<_>>(),
                "links": s.links.iter().map(|l| json!({
                    "trace_id": l.trace_id,
                    "span_id": l.span_id,
                    "attributes": pairs(&l.attributes),
                })).collect::<Vec<_>>(),
                "logs": logs(by_span.get(s.span_id.as_str()).map_or(&[], Vec::as_slice)),
            })
        })
        .collect();
    let loose = logs(&loose);
    json!({
        "id": t.id,
        "root": rows.first().map(|r| t.spans[r.span].name.as_str()),
        "start_unix_nano": axis.start.to_string(),
        "duration_ns": axis.len(),
        "span_count": t.spans.len(),
        "errors": t.errors(),
        "services": t.services(),
        "rows": json_rows,
        "loose_logs": loose,
    })
}

fn pairs(attrs: &Attrs) -> Json {
    attrs.iter().map(|(k, v)| json!([k, v])).collect()
}

fn clamp(n: i128) -> i64 {
    n.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
}

#[cfg(test)]
mod tests {
    use super::super::model::Span;
    use super::*;

    #[test]
    fn data_cannot_close_its_script_element() {
        let t = Trace {
            id: "t".into(),
            spans: vec![Span {
                trace_id: "t".into(),
                span_id: "s".into(),
                name: "</script><script>alert(1)</script>".into(),
                ..Span::default()
            }],
            logs: vec![],
        };
        let html = page(&[&t], 0);
        assert_eq!(
            html.matches("</script>").count(),
            PAGE.matches("</script>").count()
        );
        let start = html
            .find(r#"<script type="application/json" id="data">"#)
            .unwrap();
        let body = &html[start..];
        let json = &body[body.find('>').unwrap() + 1..body.find("</script>").unwrap()];
        let back: Json = serde_json::from_str(json).unwrap();
        assert_eq!(back["traces"][0]["rows"][0]["name"], t.spans[0].name);
        assert_eq!(
            back["traces"][0]["rows"][0]["width"], 0.1,
            "an instant gets one cell of 1000"
        );
    }
}
