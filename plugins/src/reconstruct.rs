//! `reconstruct_trace`: the tree of spans a client lists (the course's
//! building block), checked: one trace, every parent present, no cycle.

use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use tracer_node::{handler, Ctx, Error};

/// One span as listed: its trace, its id, its parent (`parent` or
/// `parent_span_id`; none for a root).
#[derive(Deserialize)]
pub struct Listed {
    trace_id: String,
    span_id: String,
    #[serde(default, alias = "parent_span_id")]
    parent: Option<String>,
}

/// `reconstruct_trace {spans}`.
#[derive(Deserialize)]
pub struct ReconstructTrace {
    spans: Vec<Listed>,
}

/// `trace_tree_ok {trace_id, span_count, depth}`.
#[derive(Serialize, Debug, PartialEq)]
#[serde(tag = "type", rename = "trace_tree_ok")]
pub struct TraceTreeOk {
    trace_id: String,
    span_count: usize,
    /// Spans on the longest root-to-leaf path.
    depth: usize,
}

/// The most spans one request may list.
pub const MAX_SPANS: usize = 100_000;

/// Checks the listed spans and measures their tree.
pub fn reconstruct(spans: &[Listed]) -> Result<TraceTreeOk, Error> {
    let first = spans
        .first()
        .ok_or_else(|| Error::bad_field("spans", "must list at least one span"))?;
    if spans.len() > MAX_SPANS {
        return Err(Error::bad_field(
            "spans",
            format!("at most {MAX_SPANS} spans in one request"),
        ));
    }
    let mut index: HashMap<&str, usize> = HashMap::with_capacity(spans.len());
    for (i, s) in spans.iter().enumerate() {
        let at = |what: String| Error::bad_field(&format!("spans[{i}]"), what);
        if s.trace_id != first.trace_id {
            return Err(at(format!(
                "span {:?} is of trace {:?}, not {:?}",
                s.span_id, s.trace_id, first.trace_id
            )));
        }
        if s.span_id.is_empty() {
            return Err(Error::bad_field(
                &format!("spans[{i}].span_id"),
                "must not be empty",
            ));
        }
        if index.insert(&s.span_id, i).is_some() {
            return Err(at(format!("span {:?} is listed twice", s.span_id)));
        }
    }
    let mut parent: Vec<Option<usize>> = Vec::with_capacity(spans.len());
    for (i, s) in spans.iter().enumerate() {
        parent.push(match s.parent.as_deref() {
            None | Some("") => None,
            Some(p) => Some(*index.get(p).ok_or_else(|| {
                Error::bad_field(
                    &format!("spans[{i}]"),
                    format!(
                        "span {:?} names parent {p:?}, which is not listed",
                        s.span_id
                    ),
                )
            })?),
        });
    }
    // Depth of each span, following parents; a walk that comes back to a
    // span still on it is a cycle. Each span is walked once.
    let mut depth = vec![0usize; spans.len()]; // 0: not known yet
    let mut on_walk = vec![false; spans.len()];
    let mut walk = Vec::new();
    for start in 0..spans.len() {
        let mut i = start;
        while depth[i] == 0 {
            if on_walk[i] {
                return Err(Error::bad_field(
                    &format!("spans[{i}]"),
                    format!(
                        "span {:?} is its own ancestor (a parent cycle)",
                        spans[i].span_id
                    ),
                ));
            }
            on_walk[i] = true;
            walk.push(i);
            match parent[i] {
                Some(p) => i = p,
                None => break,
            }
        }
        let mut d = if depth[i] == 0 { 0 } else { depth[i] };
        while let Some(j) = walk.pop() {
            d += 1;
            depth[j] = d;
            on_walk[j] = false;
        }
    }
    Ok(TraceTreeOk {
        trace_id: first.trace_id.clone(),
        span_count: spans.len(),
        depth: depth.iter().copied().max().unwrap_or(0),
    })
}

/// Rebuilds the tree of the spans listed and reports its size and depth; a
/// missing parent, a cycle, a span of another trace or a repeated span id
/// is error 12 naming the span.
#[handler("reconstruct_trace")]
pub fn reconstruct_trace(_ctx: &mut Ctx<'_>, req: ReconstructTrace) -> Result<TraceTreeOk, Error> {
    reconstruct(&req.spans)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn listed(v: serde_json::Value) -> Vec<Listed> {
        serde_json::from_value::<ReconstructTrace>(json!({ "spans": v }))
            .unwrap()
            .spans
    }

    #[test]
    fn depth_is_the_longest_root_to_leaf_path() {
        let r = reconstruct(&listed(json!([
            {"trace_id": "t", "span_id": "c", "parent": "b"},
            {"trace_id": "t", "span_id": "a"},
            {"trace_id": "t", "span_id": "b", "parent": "a"},
            {"trace_id": "t", "span_id": "d", "parent_span_id": "a"}
        ])))
        .unwrap();
        assert_eq!(
            r,
            TraceTreeOk {
                trace_id: "t".into(),
                span_count: 4,
                depth: 3
            }
        );
    }

    #[test]
    fn cycles_missing_parents_and_strays_name_the_span() {
        let err = |v| reconstruct(&listed(v)).unwrap_err().text;
        let e = err(json!([
            {"trace_id": "t", "span_id": "a", "parent": "b"},
            {"trace_id": "t", "span_id": "b", "parent": "a"}
        ]));
        assert!(e.contains("cycle") && e.contains("spans["), "{e}");
        let e = err(json!([{"trace_id": "t", "span_id": "a", "parent": "a"}]));
        assert!(e.contains("\"a\" is its own ancestor"), "{e}");
        let e = err(json!([{"trace_id": "t", "span_id": "a", "parent": "zz"}]));
        assert!(e.contains("\"zz\", which is not listed"), "{e}");
        let e = err(json!([
            {"trace_id": "t", "span_id": "a"},
            {"trace_id": "u", "span_id": "b", "parent": "a"}
        ]));
        assert!(e.starts_with("field `spans[1]`"), "{e}");
        assert!(err(json!([])).contains("at least one"));
    }

    #[test]
    fn a_long_chain_is_walked_without_recursion() {
        let spans: Vec<serde_json::Value> = (0..50_000)
            .map(|i| {
                let parent = (i > 0).then(|| format!("s{}", i - 1));
                json!({"trace_id": "t", "span_id": format!("s{i}"), "parent": parent})
            })
            .collect();
        assert_eq!(reconstruct(&listed(json!(spans))).unwrap().depth, 50_000);
    }
}
