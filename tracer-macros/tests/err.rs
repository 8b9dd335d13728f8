//! `err` records an `Err` return as an exception and status ERROR; `ret`
//! records the return value.

mod support;

use std::fmt;
use std::num::ParseIntError;
use support::{attr_str, block_on, run, yield_once};
use tracer_core::{SpanData, Status};
use tracer_macros::traced;

#[derive(Debug, PartialEq)]
struct AppError(String);

impl fmt::Display for AppError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "app failed: {}", self.0)
    }
}

impl From<ParseIntError> for AppError {
    fn from(e: ParseIntError) -> Self {
        AppError(e.to_string())
    }
}

#[traced(err)]
fn parse(input: &str) -> Result<u32, AppError> {
    // `?` converting the error with `From`.
    let n: u32 = input.parse()?;
    if n == 0 {
        return Err(AppError("zero".into()));
    }
    Ok(n * 2)
}

#[traced(err)]
async fn parse_async(input: String) -> Result<u32, AppError> {
    yield_once().await;
    let n: u32 = input.parse()?;
    if n == 0 {
        return Err(AppError("zero".into()));
    }
    yield_once().await;
    Ok(n * 2)
}

#[traced(err, ret)]
fn err_and_ret(ok: bool) -> Result<Vec<u8>, AppError> {
    if ok {
        Ok(vec![1, 2])
    } else {
        Err(AppError("nope".into()))
    }
}

#[traced(ret, err)]
async fn err_and_ret_async(ok: bool) -> Result<&'static str, AppError> {
    yield_once().await;
    if !ok {
        return Err(AppError("async nope".into()));
    }
    Ok("fine")
}

#[traced(ret)]
fn ret_only(ok: bool) -> Result<u8, AppError> {
    if ok {
        Ok(1)
    } else {
        Err(AppError("plain".into()))
    }
}

#[traced(ret)]
fn ret_plain(n: u32) -> Option<String> {
    if n > 10 {
        return None;
    }
    Some(n.to_string())
}

#[traced]
fn no_err_option() -> Result<(), AppError> {
    Err(AppError("unrecorded".into()))
}

#[traced(err)]
fn boxed(input: &str) -> Result<i64, Box<dyn std::error::Error + Send + Sync>> {
    Ok(input.parse::<i64>()?)
}

fn exception(span: &SpanData) -> (&str, &str) {
    assert_eq!(span.events.len(), 1, "{:#?}", span.events);
    let ev = &span.events[0];
    assert_eq!(ev.name, "exception");
    let get = |k: &str| {
        ev.attributes
            .iter()
            .find(|kv| kv.key == k)
            .unwrap_or_else(|| panic!("no {k} in {:?}", ev.attributes))
            .value
            .as_str()
            .unwrap()
    };
    (get("exception.type"), get("exception.message"))
}

#[test]
fn ok_leaves_status_unset_and_no_event() {
    let (out, run) = run("err-ok", || parse("21"));
    assert_eq!(out, Ok(42));
    let s = run.one("parse");
    assert_eq!(s.status, Status::Unset);
    assert_eq!(s.events, []);
    assert_eq!(s.attribute("return"), None, "no `ret`");
}

#[test]
fn err_sets_status_and_records_an_exception() {
    let (out, run) = run("err-err", || parse("0"));
    assert_eq!(out, Err(AppError("zero".into())));
    let s = run.one("parse");
    assert_eq!(s.status, Status::Error("app failed: zero".into()));
    let (ty, msg) = exception(s);
    assert_eq!(ty, std::any::type_name::<AppError>());
    assert_eq!(msg, "app failed: zero");
}

#[test]
fn question_mark_in_a_sync_body() {
    let (out, run) = run("err-question-sync", || parse("x1"));
    let expected = "x1".parse::<u32>().unwrap_err().to_string();
    assert_eq!(out, Err(AppError(expected.clone())));
    let s = run.one("parse");
    let text = format!("app failed: {expected}");
    assert_eq!(s.status, Status::Error(text.clone().into()));
    assert_eq!(exception(s).1, text);
}

#[test]
fn async_ok_err_and_question_mark() {
    let (out, run) = run("err-async", || {
        (
            block_on(parse_async("4".into())),
            block_on(parse_async("0".into())),
            block_on(parse_async("-".into())),
        )
    });
    let bad = "-".parse::<u32>().unwrap_err().to_string();
    assert_eq!(
        out,
        (
            Ok(8),
            Err(AppError("zero".into())),
            Err(AppError(bad.clone()))
        )
    );
    let spans: Vec<_> = run
        .spans
        .iter()
        .filter(|s| s.name == "parse_async")
        .collect();
    assert_eq!(spans.len(), 3);
    let by_input = |i: &str| {
        *spans
            .iter()
            .find(|s| attr_str(s, "input") == format!("{i:?}"))
            .unwrap()
    };
    let ok = by_input("4");
    assert_eq!(ok.status, Status::Unset);
    assert_eq!(ok.events, []);
    let zero = by_input("0");
    assert_eq!(zero.status, Status::Error("app failed: zero".into()));
    assert_eq!(exception(zero).1, "app failed: zero");
    let q = by_input("-");
    assert_eq!(q.status, Status::Error(format!("app failed: {bad}").into()));
    assert!(exception(q).0.ends_with("AppError"));
}

#[test]
fn ret_with_err_records_the_ok_value_only() {
    let (out, run) = run("err-ret", || (err_and_ret(true), err_and_ret(false)));
    assert_eq!(out, (Ok(vec![1, 2]), Err(AppError("nope".into()))));
    assert_eq!(run.spans.len(), 2);
    let ok = &run.spans[0];
    assert_eq!(attr_str(ok, "return"), "[1, 2]");
    assert_eq!(ok.status, Status::Unset);
    let err = &run.spans[1];
    assert_eq!(err.attribute("return"), None);
    assert_eq!(err.status, Status::Error("app failed: nope".into()));
    assert_eq!(exception(err).1, "app failed: nope");
}

#[test]
fn ret_with_err_in_async_fn() {
    let (out, run) = run("err-ret-async", || {
        (
            block_on(err_and_ret_async(true)),
            block_on(err_and_ret_async(false)),
        )
    });
    assert_eq!(out, (Ok("fine"), Err(AppError("async nope".into()))));
    assert_eq!(attr_str(&run.spans[0], "return"), "\"fine\"");
    assert_eq!(run.spans[0].status, Status::Unset);
    assert_eq!(run.spans[1].attribute("return"), None);
    assert_eq!(
        run.spans[1].status,
        Status::Error("app failed: async nope".into())
    );
}

#[test]
fn ret_without_err_records_the_whole_value() {
    let (_, run) = run("err-ret-only", || {
        (ret_only(true), ret_only(false), ret_plain(4), ret_plain(40))
    });
    let returns: Vec<_> = run.spans.iter().map(|s| attr_str(s, "return")).collect();
    assert_eq!(
        returns,
        ["Ok(1)", "Err(AppError(\"plain\"))", "Some(\"4\")", "None"]
    );
    // Without `err`, an `Err` is not an error of the span.
    assert!(run
        .spans
        .iter()
        .all(|s| s.status == Status::Unset && s.events.is_empty()));
}

#[test]
fn err_is_recorded_only_with_the_option() {
    let (out, run) = run("err-no-option", no_err_option);
    assert!(out.is_err());
    let s = run.one("no_err_option");
    assert_eq!(s.status, Status::Unset);
    assert_eq!(s.events, []);
}

#[test]
fn boxed_dyn_error() {
    let (out, run) = run("err-boxed", || {
        (boxed("5").unwrap(), boxed("five").is_err())
    });
    assert_eq!(out, (5, true));
    assert_eq!(run.spans[0].status, Status::Unset);
    let msg = "five".parse::<i64>().unwrap_err().to_string();
    assert_eq!(run.spans[1].status, Status::Error(msg.clone().into()));
    assert_eq!(exception(&run.spans[1]).1, msg);
}
