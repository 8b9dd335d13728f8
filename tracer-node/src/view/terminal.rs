//! The terminal drawing: per trace a header, then one row per span in tree
//! order with its bar on the trace's time axis. Styles are written as
//! `anstyle` codes; the `anstream` stream the caller passes drops them
//! when the output is not a colour terminal or `NO_COLOR` is set.

use super::layout::{rows, Axis, Orphan};
use super::model::{Log, Trace};
use anstyle::{AnsiColor, Style};
use std::io::{self, Write};

/// How to draw.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Columns of a line.
    pub width: usize,
    /// Whether to draw logs under their span.
    pub logs: bool,
}

const BOLD: Style = Style::new().bold();
const DIM: Style = Style::new().dimmed();
const ERROR: Style = AnsiColor::Red.on_default().bold();
const WARN: Style = AnsiColor::Yellow.on_default();
const PALETTE: [AnsiColor; 6] = [
    AnsiColor::Cyan,
    AnsiColor::Green,
    AnsiColor::Blue,
    AnsiColor::Magenta,
    AnsiColor::BrightCyan,
    AnsiColor::BrightGreen,
];
const DURATION_W: usize = 9;
/// Deeper spans are indented as much as this (a chain of 10,000 spans
/// would otherwise draw lines of 20,000 spaces).
const MAX_INDENT: usize = 32;
const STATUS_W: usize = 5;

/// Draws the traces one after the other, a blank line between them.
pub fn render(out: &mut impl Write, traces: &[&Trace], opts: Options) -> io::Result<()> {
    let mut services: Vec<&str> = traces
        .iter()
        .flat_map(|t| t.spans.iter().map(|s| s.service.as_str()))
        .collect();
    services.sort_unstable();
    services.dedup();
    let colour = |service: &str| {
        let i = services.binary_search(&service).unwrap_or(0);
        PALETTE[i % PALETTE.len()].on_default()
    };
    for (n, trace) in traces.iter().enumerate() {
        if n > 0 {
            writeln!(out)?;
        }
        render_trace(out, trace, opts, &colour)?;
    }
    Ok(())
}

fn render_trace(
    out: &mut impl Write,
    trace: &Trace,
    opts: Options,
    colour: &dyn Fn(&str) -> Style,
) -> io::Result<()> {
    let rows = rows(&trace.spans);
    let axis = Axis::of(&trace.spans);
    let errors = trace.errors();
    let root = rows
        .first()
        .map_or("", |r| trace.spans[r.span].name.as_str());
    let err = if errors > 0 { ERROR } else { Style::new() };
    writeln!(
        out,
        "{BOLD}{}{BOLD:#}  {BOLD}{}{BOLD:#}  {}  {} {}  {err}{} {}{err:#}  {}",
        clean(&trace.id),
        clean(root),
        duration(axis.len()),
        trace.spans.len(),
        plural(trace.spans.len(), "span"),
        errors,
        plural(errors, "error"),
        clean(&trace.services().join(", ")),
    )?;

    let service_w = trace
        .spans
        .iter()
        .map(|s| s.service.chars().count())
        .max()
        .unwrap_or(0)
        .min(20);
    let fixed = service_w + DURATION_W + STATUS_W + 4;
    let min_bar = (opts.width / 3).max(10);
    let room = opts.width.saturating_sub(fixed + min_bar);
    // Indentation takes at most half the name column, so that a deep
    // span's name still shows.
    let levels = MAX_INDENT.min(room / 4);
    let label = |depth: usize, orphan: Option<Orphan>, name: &str| {
        let mark = match orphan {
            Some(Orphan::MissingParent) => "↑ ",
            Some(Orphan::Cycle) => "↺ ",
            None => "",
        };
        format!("{}{mark}{name}", indent(depth, levels))
    };
    let longest = rows
        .iter()
        .map(|r| {
            label(r.depth, r.orphan, &trace.spans[r.span].name)
                .chars()
                .count()
        })
        .max()
        .unwrap_or(0);
    let label_w = longest.min(room).max(8);
    let bar_w = opts.width.saturating_sub(label_w + fixed).max(1);

    // The axis' scale above the bars.
    let total = duration(axis.len());
    if bar_w > total.len() + 2 {
        writeln!(
            out,
            "{:w$}{DIM}0{:>b$}{DIM:#}",
            "",
            total,
            w = label_w + fixed,
            b = bar_w - 1
        )?;
    }

    let (logs, loose) = trace.logs_by_span();
    let mut notes = Vec::new();
    for row in &rows {
        let span = &trace.spans[row.span];
        let (name_style, bar_style, status) = if span.is_error() {
            (ERROR, ERROR, "ERROR")
        } else {
            (Style::new(), colour(&span.service), "")
        };
        let bar = axis.place(span.start, span.end, bar_w);
        writeln!(
            out,
            "{} {} {:>DURATION_W$} {} {:first$}{bar_style}{}{bar_style:#}",
            fit_styled(
                &label(row.depth, row.orphan, &span.name),
                label_w,
                name_style
            ),
            fit_styled(&span.service, service_w, colour(&span.service)),
            duration(span.duration()),
            fit_styled(status, STATUS_W, name_style),
            "",
            "█".repeat(bar.len),
            first = bar.first,
        )?;
        match row.orphan {
            Some(Orphan::MissingParent) => notes.push(format!(
                "↑ {}: its parent {} is not in the file",
                span.name,
                span.parent_id.as_deref().unwrap_or("")
            )),
            Some(Orphan::Cycle) => notes.push(format!(
                "↺ {}: its parent ids go round in a circle",
                span.name
            )),
            None => {}
        }
        if opts.logs {
            for log in logs.get(span.span_id.as_str()).into_iter().flatten() {
                render_log(
                    out,
                    log,
                    indent(row.depth + 1, levels + 1),
                    axis,
                    opts.width,
                )?;
            }
        }
    }
    if opts.logs {
        for log in loose {
            render_log(out, log, String::new(), axis, opts.width)?;
        }
    }
    for note in notes {
        writeln!(out, "{WARN}{}{WARN:#}", fit(&note, opts.width).trim_end())?;
    }
    Ok(())
}

fn render_log(
    out: &mut impl Write,
    log: &Log,
    indent: String,
    axis: Axis,
    width: usize,
) -> io::Result<()> {
    let offset = i128::from(log.time) - i128::from(axis.start);
    let sign = if offset < 0 { "-" } else { "+" };
    let style = match log.severity.to_ascii_uppercase().as_str() {
        "ERROR" | "FATAL" | "CRITICAL" => ERROR,
        "WARN" | "WARNING" => WARN,
        _ => DIM,
    };
    let head = format!(
        "{indent}· {sign}{} ",
        duration(offset.unsigned_abs().try_into().unwrap_or(u64::MAX))
    );
    let severity = if log.severity.is_empty() {
        String::new()
    } else {
        format!("{} ", log.severity)
    };
    let room = width.saturating_sub(head.chars().count() + severity.chars().count());
    writeln!(
        out,
        "{DIM}{head}{DIM:#}{style}{severity}{style:#}{}",
        fit(&log.text().replace('\n', " "), room).trim_end()
    )
}

/// Two spaces per level, for at most `levels` levels.
fn indent(depth: usize, levels: usize) -> String {
    "  ".repeat(depth.min(levels))
}

fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        word.to_owned()
    } else {
        format!("{word}s")
    }
}

/// `text` with each control character (an escape sequence hidden in a
/// span name, say) shown as `�`.
fn clean(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { '\u{fffd}' } else { c })
        .collect()
}

/// `text` made [`clean`], cut or padded to exactly `width` characters (a
/// cut ends in `…`).
fn fit(text: &str, width: usize) -> String {
    let text = &clean(text);
    let n = text.chars().count();
    if n <= width {
        format!("{text}{}", " ".repeat(width - n))
    } else if width == 0 {
        String::new()
    } else {
        let mut cut: String = text.chars().take(width - 1).collect();
        cut.push('…');
        cut
    }
}

fn fit_styled(text: &str, width: usize, style: Style) -> String {
    format!("{style}{}{style:#}", fit(text, width))
}

/// A duration in nanoseconds as people read it: `691ns`, `25.8µs`,
/// `70.00ms`, `1.50s`.
pub fn duration(ns: u64) -> String {
    let n = ns as f64;
    if ns < 1_000 {
        format!("{ns}ns")
    } else if ns < 1_000_000 {
        format!("{:.1}µs", n / 1e3)
    } else if ns < 1_000_000_000 {
        format!("{:.2}ms", n / 1e6)
    } else {
        format!("{:.2}s", n / 1e9)
    }
}

#[cfg(test)]
mod tests {
    use super::super::model::Span;
    use super::*;

    fn draw(trace: &Trace, width: usize) -> String {
        let mut out = anstream::AutoStream::never(Vec::new());
        render(&mut out, &[trace], Options { width, logs: true }).unwrap();
        String::from_utf8(out.into_inner()).unwrap()
    }

    #[test]
    fn rows_are_indented_and_bars_fill_the_width() {
        let span = |id: &str, parent: Option<&str>, start, end| Span {
            trace_id: "t1".into(),
            span_id: id.into(),
            parent_id: parent.map(Into::into),
            name: format!("op-{id}"),
            service: "svc".into(),
            start,
            end,
            ..Span::default()
        };
        let mut child = span("b", Some("a"), 1_000_000, 2_000_000);
        child.status.code = "ERROR";
        let trace = Trace {
            id: "t1".into(),
            spans: vec![
                child,
                span("a", None, 0, 2_000_000),
                span("c", Some("x"), 0, 0),
            ],
            logs: vec![],
        };
        let text = draw(&trace, 80);
        let lines: Vec<&str> = text.lines().collect();
        assert!(
            lines[0].starts_with("t1  op-a  2.00ms  3 spans  1 error  svc"),
            "{text}"
        );
        assert!(lines[2].starts_with("op-a "), "{text}");
        assert!(lines[3].starts_with("  op-b "), "{text}");
        assert!(lines[3].contains("ERROR"), "{text}");
        assert!(lines[4].starts_with("↑ op-c "), "{text}");
        assert!(text.contains("its parent x is not in the file"), "{text}");
        for line in &lines[1..=3] {
            assert_eq!(
                line.chars().count(),
                80,
                "reaches the last column: {line:?}"
            );
        }
        // The root covers the whole bar; the child its second half.
        let bar = |l: &str| l.chars().filter(|&c| c == '█').count();
        let (root, child) = (bar(lines[2]), bar(lines[3]));
        assert!(root > 20 && root.abs_diff(2 * child) <= 1, "{root} {child}");
        assert_eq!(bar(lines[4]), 1, "an instant is one cell");
        assert!(!text.contains('\x1b'), "no colour codes");
    }

    #[test]
    fn a_deep_chain_stays_within_the_width() {
        let spans = (0..10_000u64)
            .map(|i| Span {
                trace_id: "deep".into(),
                span_id: i.to_string(),
                parent_id: i.checked_sub(1).map(|p| p.to_string()),
                name: format!("level {i}"),
                service: "svc".into(),
                start: i,
                end: 20_000 - i,
                ..Span::default()
            })
            .collect();
        let trace = Trace {
            id: "deep".into(),
            spans,
            logs: vec![],
        };
        let text = draw(&trace, 100);
        assert_eq!(text.lines().filter(|l| l.contains('█')).count(), 10_000);
        assert!(text.lines().all(|l| l.chars().count() <= 100));
        let last = text.lines().last().unwrap();
        assert!(last.trim_start().starts_with("level 9999 "), "{last}");
        let wide = draw(&trace, 400);
        let last = wide.lines().last().unwrap();
        let shown = format!("{}level 9999 ", "  ".repeat(MAX_INDENT));
        assert!(last.starts_with(&shown), "{last}");
    }

    #[test]
    fn durations_read_well() {
        assert_eq!(duration(691), "691ns");
        assert_eq!(duration(25_838), "25.8µs");
        assert_eq!(duration(70_000_000), "70.00ms");
        assert_eq!(duration(1_500_000_000), "1.50s");
    }

    #[test]
    fn fit_cuts_and_pads_by_characters() {
        assert_eq!(fit("abc", 5), "abc  ");
        assert_eq!(fit("abcdef", 4), "abc…");
        assert_eq!(fit("µµµ", 2), "µ…");
        assert_eq!(fit("x", 0), "");
        assert_eq!(fit("a\x1b[2Jb", 6), "a\u{fffd}[2Jb");
    }
}
