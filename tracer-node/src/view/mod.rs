//! `tracer-node view`: reads the node's OTLP/JSON export file and draws
//! its traces in the terminal, as an HTML page, or as a Chrome trace.

pub mod chrome;
pub mod html;
pub mod layout;
pub mod model;
pub mod terminal;

use model::{Export, Trace};
use std::fs::File;
use std::io::{self, BufReader, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Draw the traces of an OTLP JSON export file (what `--export-file` /
/// `TRACER_EXPORT_FILE` writes).
#[derive(clap::Args, Debug)]
pub struct ViewArgs {
    /// The export file; standard input when absent or `-`
    #[arg(value_name = "FILE")]
    file: Option<PathBuf>,
    /// Only the trace with this id (hex or UUID; a prefix will do)
    #[arg(long, value_name = "ID")]
    trace: Option<String>,
    /// Only traces with a span of this service
    #[arg(long, value_name = "NAME")]
    service: Option<String>,
    /// Only traces with an ERROR span
    #[arg(long)]
    errors: bool,
    /// Only the N longest traces, longest first
    #[arg(long, value_name = "N")]
    slowest: Option<usize>,
    /// Show log records under their span
    #[arg(long)]
    logs: bool,
    /// Columns to draw in [default: the terminal's, else 100]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(20..))]
    width: Option<u16>,
    /// Write a self-contained HTML page to OUT instead of drawing
    #[arg(long, value_name = "OUT")]
    html: Option<PathBuf>,
    /// Write a Chrome trace-event JSON file to OUT (Perfetto UI,
    /// chrome://tracing, speedscope) instead of drawing
    #[arg(long, value_name = "OUT")]
    chrome: Option<PathBuf>,
}

/// Runs `view`: 0 when traces were shown, 1 when there were none to show,
/// 2 when the input could not be read or an output not written.
pub fn run(args: ViewArgs) -> ExitCode {
    let (export, source) = match read_input(args.file.as_deref()) {
        Ok(read) => read,
        Err(e) => {
            eprintln!("tracer-node view: {e}");
            return ExitCode::from(2);
        }
    };
    report_bad_input(&export, &source);
    let traces = select(&export.traces, &args);
    if traces.is_empty() {
        if export.traces.is_empty() {
            eprintln!("tracer-node view: no span in {source}");
        } else {
            eprintln!(
                "tracer-node view: none of the {} traces in {source} matches the options",
                export.traces.len()
            );
        }
        return ExitCode::from(1);
    }
    let result = if args.html.is_some() || args.chrome.is_some() {
        write_files(&args, &traces, export.bad_lines.len())
    } else {
        draw(&args, &traces)
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // `tracer-node view f | head` is not an error.
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tracer-node view: {e}");
            ExitCode::from(2)
        }
    }
}

fn read_input(file: Option<&Path>) -> io::Result<(Export, String)> {
    match file {
        Some(path) if path != Path::new("-") => {
            let named = |e: io::Error| {
                io::Error::new(e.kind(), format!("cannot read {}: {e}", path.display()))
            };
            let export =
                model::read(BufReader::new(File::open(path).map_err(named)?)).map_err(named)?;
            Ok((export, path.display().to_string()))
        }
        _ => Ok((model::read(io::stdin().lock())?, "standard input".into())),
    }
}

/// Says on stderr what was skipped, naming the first few bad lines.
fn report_bad_input(export: &Export, source: &str) {
    if !export.bad_lines.is_empty() {
        eprintln!(
            "tracer-node view: skipped {} of {} lines of {source} that are not OTLP JSON export requests",
            export.bad_lines.len(),
            export.lines
        );
        for (line, why) in export.bad_lines.iter().take(3) {
            eprintln!("  line {line}: {why}");
        }
    }
    if export.bad_spans > 0 {
        eprintln!(
            "tracer-node view: skipped {} spans without a trace or span id",
            export.bad_spans
        );
    }
    if export.duplicate_spans > 0 {
        eprintln!(
            "tracer-node view: skipped {} spans read twice",
            export.duplicate_spans
        );
    }
}

/// The traces the options pick, by start time (longest first with
/// `--slowest`).
fn select<'a>(traces: &'a [Trace], args: &ViewArgs) -> Vec<&'a Trace> {
    let wanted_id = args
        .trace
        .as_deref()
        .map(|id| id.replace('-', "").to_ascii_lowercase());
    let mut picked: Vec<&Trace> = traces
        .iter()
        .filter(|t| wanted_id.as_deref().is_none_or(|id| t.id.starts_with(id)))
        .filter(|t| {
            args.service
                .as_deref()
                .is_none_or(|name| t.spans.iter().any(|s| s.service == name))
        })
        .filter(|t| !args.errors || t.errors() > 0)
        .collect();
    if let Some(n) = args.slowest {
        picked.sort_by_key(|t| std::cmp::Reverse(t.duration()));
        picked.truncate(n);
    }
    picked
}

fn draw(args: &ViewArgs, traces: &[&Trace]) -> io::Result<()> {
    let width = match args.width {
        Some(w) => usize::from(w),
        None if io::stdout().is_terminal() => {
            terminal_size::terminal_size().map_or(100, |(w, _)| usize::from(w.0))
        }
        None => 100,
    };
    let mut out = anstream::stdout().lock();
    terminal::render(
        &mut out,
        traces,
        terminal::Options {
            width,
            logs: args.logs,
        },
    )?;
    out.flush()
}

fn write_files(args: &ViewArgs, traces: &[&Trace], skipped: usize) -> io::Result<()> {
    let spans: usize = traces.iter().map(|t| t.spans.len()).sum();
    let write = |path: &Path, text: &str| -> io::Result<()> {
        std::fs::write(path, text).map_err(|e| {
            io::Error::new(e.kind(), format!("cannot write {}: {e}", path.display()))
        })?;
        eprintln!(
            "tracer-node view: wrote {} traces ({spans} spans) to {}",
            traces.len(),
            path.display()
        );
        Ok(())
    };
    if let Some(path) = &args.html {
        write(path, &html::page(traces, skipped))?;
    }
    if let Some(path) = &args.chrome {
        write(path, &chrome::document(traces).to_string())?;
    }
    Ok(())
}
