//! Arguments become attributes (their `Debug` text) unless skipped; `fields`
//! adds more; `self` never is one.

mod support;

use support::{attr_str, run};
use tracer_core::Value;
use tracer_macros::traced;

#[derive(Debug)]
struct Point {
    x: i32,
    y: i32,
}

impl std::fmt::Display for Point {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "({}, {})", self.x, self.y)
    }
}

#[traced]
fn args(id: u32, name: &str, point: Point, opt: Option<bool>, mut count: usize) -> usize {
    count += 1;
    let _ = (id, name, point, opt);
    count
}

#[traced(skip(secret, point))]
fn skip_some(id: u32, secret: &str, point: Point) {
    let _ = (id, secret, point);
}

#[traced(skip_all)]
fn skip_everything(id: u32, secret: &str) {
    let _ = (id, secret);
}

#[traced(skip_all, fields(kept = id))]
fn skip_all_then_field(id: u32) {
    let _ = id;
}

#[traced(skip(id), fields(
    key = 1,
    a.b.c = "x",
    d = %point,
    e = ?point,
    "quoted.key" = true,
    f = 2.5,
    len = name.len() as i64,
    name_upper = name.to_uppercase(),
))]
fn with_fields(id: u32, name: &str, point: &Point) {
    let _ = (id, name, point);
}

#[traced(skip(self), fields(n = n))]
fn free_skip_self_is_allowed(n: u8) -> u8 {
    n
}

struct Store {
    n: i64,
}

impl Store {
    #[traced(fields(n = self.n, shown = %self.n))]
    fn method(&self, key: &str) -> i64 {
        let _ = key;
        self.n
    }

    #[traced(skip(self))]
    fn skip_self_explicitly(&mut self, key: u8) {
        let _ = key;
    }
}

#[test]
fn arguments_are_recorded_as_debug_strings() {
    let (out, run) = run("fields-args", || {
        args(3, "x", Point { x: 1, y: -2 }, Some(true), 9)
    });
    assert_eq!(out, 10);
    let s = run.one("args");
    assert_eq!(attr_str(s, "id"), "3");
    assert_eq!(attr_str(s, "name"), "\"x\"");
    assert_eq!(attr_str(s, "point"), "Point { x: 1, y: -2 }");
    assert_eq!(attr_str(s, "opt"), "Some(true)");
    // Recorded on entry: the body's change to `count` is not seen.
    assert_eq!(attr_str(s, "count"), "9");
    let keys: Vec<_> = s.attributes.iter().map(|kv| kv.key.as_ref()).collect();
    assert_eq!(keys, ["id", "name", "point", "opt", "count"]);
}

#[test]
fn skip_and_skip_all() {
    let ((), run) = run("fields-skip", || {
        skip_some(5, "hunter2", Point { x: 0, y: 0 });
        skip_everything(6, "hunter2");
        skip_all_then_field(7);
    });
    let s = run.one("skip_some");
    assert_eq!(attr_str(s, "id"), "5");
    assert_eq!(s.attributes.len(), 1, "{:?}", s.attributes);
    assert_eq!(run.one("skip_everything").attributes, []);
    let s = run.one("skip_all_then_field");
    assert_eq!(s.attributes.len(), 1);
    assert_eq!(s.attribute("kept"), Some(&Value::I64(7)));
}

#[test]
fn fields_of_every_form() {
    let ((), run) = run("fields-forms", || {
        with_fields(1, "ab", &Point { x: 3, y: 4 })
    });
    let s = run.one("with_fields");
    assert_eq!(s.attribute("id"), None, "skipped");
    assert_eq!(attr_str(s, "name"), "\"ab\"");
    assert_eq!(attr_str(s, "point"), "Point { x: 3, y: 4 }");
    assert_eq!(s.attribute("key"), Some(&Value::I64(1)));
    assert_eq!(attr_str(s, "a.b.c"), "x");
    assert_eq!(attr_str(s, "d"), "(3, 4)");
    assert_eq!(attr_str(s, "e"), "Point { x: 3, y: 4 }");
    assert_eq!(s.attribute("quoted.key"), Some(&Value::Bool(true)));
    assert_eq!(s.attribute("f"), Some(&Value::F64(2.5)));
    assert_eq!(s.attribute("len"), Some(&Value::I64(2)));
    assert_eq!(attr_str(s, "name_upper"), "AB");
    assert_eq!(s.attributes.len(), 10, "{:#?}", s.attributes);
}

#[test]
fn self_is_never_recorded() {
    let ((), run) = run("fields-self", || {
        let mut st = Store { n: 4 };
        assert_eq!(st.method("k"), 4);
        st.skip_self_explicitly(2);
        assert_eq!(free_skip_self_is_allowed(8), 8);
    });
    let s = run.one("method");
    assert_eq!(attr_str(s, "key"), "\"k\"");
    assert_eq!(s.attribute("n"), Some(&Value::I64(4)));
    assert_eq!(attr_str(s, "shown"), "4");
    assert_eq!(s.attributes.len(), 3, "{:#?}", s.attributes);
    assert!(s.attribute("self").is_none());
    let s = run.one("skip_self_explicitly");
    assert_eq!(s.attributes.len(), 1, "{:#?}", s.attributes);
    assert_eq!(attr_str(s, "key"), "2");
    let s = run.one("free_skip_self_is_allowed");
    assert_eq!(s.attribute("n"), Some(&Value::I64(8)));
}
