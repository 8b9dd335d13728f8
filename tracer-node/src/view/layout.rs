//! What every output draws the same way: the span tree of a trace in
//! display order, and where a span falls on the trace's time axis.

use super::model::Span;
use std::collections::HashMap;

/// Why a span is drawn as a root although it names a parent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Orphan {
    /// The parent id is not in the file.
    MissingParent,
    /// The parent ids go round in a circle; the tree is cut here.
    Cycle,
}

/// One span in display order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Row {
    /// Index into the trace's spans.
    pub span: usize,
    /// 0 for a root, 1 for its children, ...
    pub depth: usize,
    /// Set when the span is a root only because its parent is missing or
    /// part of a cycle.
    pub orphan: Option<Orphan>,
}

/// The spans in tree order: each root, then its subtree, depth first,
/// siblings (and roots) by start time. Every span appears exactly once,
/// whatever the parent ids say.
pub fn rows(spans: &[Span]) -> Vec<Row> {
    let index: HashMap<&str, usize> = spans
        .iter()
        .enumerate()
        .rev()
        .map(|(i, s)| (s.span_id.as_str(), i))
        .collect();
    let mut children = vec![Vec::new(); spans.len()];
    let mut roots = Vec::new();
    for (i, span) in spans.iter().enumerate() {
        match span.parent_id.as_deref().map(|p| index.get(p)) {
            None => roots.push((i, None)),
            Some(None) => roots.push((i, Some(Orphan::MissingParent))),
            Some(Some(&parent)) => children[parent].push(i),
        }
    }
    let by_start = |&i: &usize| (spans[i].start, i);
    roots.sort_by_key(|(i, _)| by_start(i));
    for list in &mut children {
        list.sort_by_key(by_start);
    }

    let mut out = Vec::with_capacity(spans.len());
    let mut visited = vec![false; spans.len()];
    let mut walk = |root: usize, orphan: Option<Orphan>, out: &mut Vec<Row>| {
        let mut stack = vec![(root, 0)];
        while let Some((i, depth)) = stack.pop() {
            if std::mem::replace(&mut visited[i], true) {
                continue;
            }
            out.push(Row {
                span: i,
                depth,
                orphan: if i == root { orphan } else { None },
            });
            stack.extend(children[i].iter().rev().map(|&c| (c, depth + 1)));
        }
    };
    for (root, orphan) in roots {
        walk(root, orphan, &mut out);
    }
    // What no root reaches hangs in a cycle: cut each at its earliest span.
    let mut rest: Vec<usize> = (0..spans.len()).collect();
    rest.sort_by_key(by_start);
    for i in rest {
        walk(i, Some(Orphan::Cycle), &mut out);
    }
    out
}

/// A trace's time axis: from the earliest start to the latest end of its
/// spans, whichever services' clocks they came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Axis {
    /// Earliest start, nanoseconds since the Unix epoch.
    pub start: u64,
    /// Latest end.
    pub end: u64,
}

/// Where a span is drawn on an axis `cells` wide: the first cell and how
/// many cells (at least one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bar {
    /// First cell, from 0.
    pub first: usize,
    /// Number of cells, at least 1, never past the last cell.
    pub len: usize,
}

impl Axis {
    /// The axis covering all these spans (0..0 when there are none).
    pub fn of(spans: &[Span]) -> Axis {
        Axis {
            start: spans.iter().map(|s| s.start).min().unwrap_or(0),
            end: spans.iter().map(|s| s.end).max().unwrap_or(0),
        }
    }

    /// The axis' length in nanoseconds.
    pub fn len(&self) -> u64 {
        self.end.saturating_sub(self.start)
    }

    /// Places `start..end` on `cells` cells: each end rounded to the
    /// nearest cell boundary, clipped to the axis, and at least one cell
    /// long, so that an instant still shows. `cells` 0 gives an empty bar.
    pub fn place(&self, start: u64, end: u64, cells: usize) -> Bar {
        if cells == 0 {
            return Bar { first: 0, len: 0 };
        }
        let total = u128::from(self.len());
        let cell = |t: u64| -> usize {
            if total == 0 {
                return 0;
            }
            let offset = u128::from(t.clamp(self.start, self.end.max(self.start)) - self.start);
            let c = (offset * cells as u128 + total / 2) / total;
            usize::try_from(c).unwrap_or(cells).min(cells)
        };
        let first = cell(start).min(cells - 1);
        let last = cell(end.max(start));
        Bar {
            first,
            len: last.saturating_sub(first).clamp(1, cells - first),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(id: &str, parent: Option<&str>, start: u64, end: u64) -> Span {
        Span {
            trace_id: "t".into(),
            span_id: id.into(),
            parent_id: parent.map(Into::into),
            name: id.into(),
            start,
            end,
            ..Span::default()
        }
    }

    fn shape(spans: &[Span]) -> Vec<(String, usize, Option<Orphan>)> {
        rows(spans)
            .into_iter()
            .map(|r| (spans[r.span].span_id.clone(), r.depth, r.orphan))
            .collect()
    }

    fn ids_depths(spans: &[Span]) -> Vec<(String, usize)> {
        shape(spans).into_iter().map(|(id, d, _)| (id, d)).collect()
    }

    fn expect(pairs: &[(&str, usize)]) -> Vec<(String, usize)> {
        pairs.iter().map(|&(s, d)| (s.to_owned(), d)).collect()
    }

    #[test]
    fn tree_order_is_depth_first_with_children_by_start() {
        // File order is scrambled; children must come by start time.
        let spans = [
            span("c2", Some("root"), 50, 60),
            span("g1", Some("c1"), 12, 15),
            span("root", None, 0, 100),
            span("c1", Some("root"), 10, 40),
            span("c0", Some("root"), 5, 6),
        ];
        assert_eq!(
            ids_depths(&spans),
            expect(&[("root", 0), ("c0", 1), ("c1", 1), ("g1", 2), ("c2", 1)])
        );
    }

    #[test]
    fn roots_come_by_start_and_a_missing_parent_is_marked() {
        let spans = [
            span("late", None, 500, 600),
            span("lost", Some("gone"), 100, 200),
            span("kid", Some("lost"), 120, 130),
        ];
        assert_eq!(
            shape(&spans),
            [
                ("lost".to_owned(), 0, Some(Orphan::MissingParent)),
                ("kid".to_owned(), 1, None),
                ("late".to_owned(), 0, None),
            ]
        );
    }

    #[test]
    fn cycles_end_and_show_every_span_once() {
        let spans = [
            span("a", Some("b"), 20, 30),
            span("b", Some("a"), 10, 40),
            span("self", Some("self"), 5, 6),
            span("hang", Some("a"), 25, 26),
            span("ok", None, 0, 1),
        ];
        assert_eq!(
            shape(&spans),
            [
                ("ok".to_owned(), 0, None),
                ("self".to_owned(), 0, Some(Orphan::Cycle)),
                ("b".to_owned(), 0, Some(Orphan::Cycle)),
                ("a".to_owned(), 1, None),
                ("hang".to_owned(), 2, None),
            ]
        );
    }

    #[test]
    fn a_deep_chain_does_not_overflow_the_stack() {
        let spans: Vec<Span> = (0..100_000u64)
            .map(|i| {
                let parent = i.checked_sub(1).map(|p| p.to_string());
                span(&i.to_string(), parent.as_deref(), i, 200_000 - i)
            })
            .collect();
        let rows = rows(&spans);
        assert_eq!(rows.len(), 100_000);
        assert_eq!(rows[99_999].depth, 99_999);
    }

    #[test]
    fn bars_round_to_the_nearest_cell() {
        let axis = Axis {
            start: 1000,
            end: 2000,
        };
        let bar = |s, e| {
            let b = axis.place(s, e, 10);
            (b.first, b.len)
        };
        assert_eq!(bar(1000, 2000), (0, 10), "the whole axis is every cell");
        assert_eq!(bar(1000, 1500), (0, 5));
        assert_eq!(bar(1500, 2000), (5, 5));
        assert_eq!(bar(1140, 1260), (1, 2), "1.4 rounds down, 2.6 up");
        assert_eq!(bar(1150, 1249), (2, 1), "1.5 rounds up; 2.49 down");
    }

    #[test]
    fn an_instant_still_gets_a_cell_even_at_the_end() {
        let axis = Axis {
            start: 0,
            end: 1000,
        };
        assert_eq!(axis.place(0, 0, 20), Bar { first: 0, len: 1 });
        assert_eq!(axis.place(500, 500, 20), Bar { first: 10, len: 1 });
        assert_eq!(axis.place(1000, 1000, 20), Bar { first: 19, len: 1 });
        assert_eq!(axis.place(999, 1000, 20), Bar { first: 19, len: 1 });
        // A trace of one instant.
        let point = Axis { start: 7, end: 7 };
        assert_eq!(point.place(7, 7, 20), Bar { first: 0, len: 1 });
    }

    #[test]
    fn bars_are_clipped_to_the_width() {
        let axis = Axis {
            start: 100,
            end: 200,
        };
        assert_eq!(axis.place(0, 1_000, 30), Bar { first: 0, len: 30 });
        assert_eq!(axis.place(300, 400, 30), Bar { first: 29, len: 1 });
        assert_eq!(
            axis.place(150, 90, 30),
            Bar { first: 15, len: 1 },
            "end before start"
        );
        assert_eq!(axis.place(100, 200, 1), Bar { first: 0, len: 1 });
        assert_eq!(axis.place(100, 200, 0), Bar { first: 0, len: 0 });
        let huge = Axis {
            start: 0,
            end: u64::MAX,
        };
        assert_eq!(
            huge.place(0, u64::MAX, usize::MAX),
            Bar {
                first: 0,
                len: usize::MAX
            }
        );
    }

    #[test]
    fn overlapping_spans_overlap_on_the_axis() {
        let spans = [
            span("root", None, 0, 100),
            span("x", Some("root"), 10, 60),
            span("y", Some("root"), 40, 90),
        ];
        let axis = Axis::of(&spans);
        let x = axis.place(spans[1].start, spans[1].end, 100);
        let y = axis.place(spans[2].start, spans[2].end, 100);
        assert_eq!((x.first, x.len), (10, 50));
        assert_eq!((y.first, y.len), (40, 50));
        assert!(y.first < x.first + x.len, "the bars share cells 40..60");
    }

    #[test]
    fn a_child_before_its_parent_widens_the_axis() {
        // The db's clock is 30 ns behind the web's: its span starts before
        // its parent's. The axis starts there, and nothing is negative.
        let spans = [
            span("web", None, 1_000, 1_100),
            span("db", Some("web"), 970, 1_020),
        ];
        let axis = Axis::of(&spans);
        assert_eq!((axis.start, axis.end, axis.len()), (970, 1_100, 130));
        assert_eq!(axis.place(970, 1_020, 13), Bar { first: 0, len: 5 });
        assert_eq!(axis.place(1_000, 1_100, 13), Bar { first: 3, len: 10 });
        assert_eq!(ids_depths(&spans), expect(&[("web", 0), ("db", 1)]));
    }

    #[test]
    fn no_spans_no_rows() {
        assert!(rows(&[]).is_empty());
        assert_eq!(Axis::of(&[]), Axis { start: 0, end: 0 });
    }
}
