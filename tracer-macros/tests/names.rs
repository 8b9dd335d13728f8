//! Span names: the default, `name = "..."`, `name = expr`, and every kind of
//! function `#[traced]` can wrap.

mod support;

use std::fmt::Debug;
use support::run;
use tracer_macros::traced;

#[traced]
fn plain_function() -> u32 {
    7
}

#[traced(name = "custom")]
fn renamed() {}

#[traced(name = format!("order/{}", id))]
fn dynamic_name(id: u32) -> u32 {
    id * 2
}

#[traced(name = "custom_async")]
async fn renamed_async() -> u8 {
    1
}

struct Counter {
    n: u32,
}

impl Counter {
    #[traced]
    fn by_ref(&self) -> u32 {
        self.n
    }

    #[traced]
    fn by_mut(&mut self, by: u32) {
        self.n += by;
    }

    #[traced]
    fn by_value(self) -> u32 {
        self.n
    }

    #[traced(err)]
    fn by_mut_err(&mut self, fail: bool) -> Result<&mut u32, String> {
        if fail {
            return Err("no".into());
        }
        Ok(&mut self.n)
    }

    #[traced]
    fn associated() -> Self {
        Counter { n: 1 }
    }
}

#[traced]
fn generic<T: Debug + Clone>(value: &T) -> T {
    value.clone()
}

#[traced(ret)]
fn generic_where<T>(items: Vec<T>) -> usize
where
    T: Debug,
{
    items.len()
}

#[traced]
fn impl_trait_arg(value: impl Debug) -> String {
    format!("{value:?}")
}

#[traced]
fn impl_trait_ret(n: u32) -> impl Iterator<Item = u32> {
    0..n
}

#[traced(ret)]
fn impl_trait_ret_recorded(n: u32) -> impl Debug {
    vec![n; 2]
}

trait Greeter {
    fn who(&self) -> &'static str;

    #[traced]
    fn greet(&self) -> String {
        format!("hello {}", self.who())
    }
}

struct World;

impl Greeter for World {
    fn who(&self) -> &'static str {
        "world"
    }
}

#[test]
fn default_name_is_the_function_name() {
    let (out, run) = run("names-default", plain_function);
    assert_eq!(out, 7);
    assert_eq!(run.spans.len(), 1, "{:#?}", run.spans);
    assert_eq!(run.spans[0].name, "plain_function");
}

#[test]
fn name_literal_replaces_the_default() {
    let ((), run) = run("names-literal", renamed);
    assert_eq!(run.spans.len(), 1);
    assert_eq!(run.spans[0].name, "custom");
    let (out, run) = run_async();
    assert_eq!(out, 1);
    assert_eq!(run.spans.len(), 1);
    assert_eq!(run.spans[0].name, "custom_async");
}

fn run_async() -> (u8, support::Run) {
    run("names-literal-async", || support::block_on(renamed_async()))
}

#[test]
fn name_expression_can_use_the_arguments() {
    let (out, run) = run("names-expr", || dynamic_name(21));
    assert_eq!(out, 42);
    assert_eq!(
        run.one("order/21").attribute("id").unwrap().as_str(),
        Some("21")
    );
}

#[test]
fn methods_take_the_method_name() {
    let (out, run) = run("names-methods", || {
        let mut c = Counter::associated();
        c.by_mut(4);
        assert_eq!(c.by_ref(), 5);
        *c.by_mut_err(false).unwrap() += 1;
        assert!(c.by_mut_err(true).is_err());
        c.by_value()
    });
    assert_eq!(out, 6);
    let names: Vec<_> = run.spans.iter().map(|s| s.name.as_ref()).collect();
    assert_eq!(
        names,
        [
            "associated",
            "by_mut",
            "by_ref",
            "by_mut_err",
            "by_mut_err",
            "by_value"
        ]
    );
    // `self` is never an attribute; the other argument is.
    assert!(run.spans.iter().all(|s| s.attribute("self").is_none()));
    assert_eq!(
        run.one("by_mut").attribute("by").unwrap().as_str(),
        Some("4")
    );
    assert_eq!(run.one("by_value").attributes, []);
}

#[test]
fn generic_functions() {
    let (out, run) = run("names-generic", || {
        (generic(&"g".to_string()), generic_where(vec!['a', 'b']))
    });
    assert_eq!(out, ("g".to_string(), 2));
    assert_eq!(
        run.one("generic").attribute("value").unwrap().as_str(),
        Some("\"g\"")
    );
    let w = run.one("generic_where");
    assert_eq!(w.attribute("items").unwrap().as_str(), Some("['a', 'b']"));
    assert_eq!(w.attribute("return").unwrap().as_str(), Some("2"));
}

#[test]
fn impl_trait_in_argument_and_return_position() {
    let (out, run) = run("names-impl-trait", || {
        let s = impl_trait_arg(Some(3));
        let v: Vec<u32> = impl_trait_ret(3).collect();
        let d = format!("{:?}", impl_trait_ret_recorded(5));
        (s, v, d)
    });
    assert_eq!(
        out,
        ("Some(3)".to_string(), vec![0, 1, 2], "[5, 5]".to_string())
    );
    assert_eq!(
        run.one("impl_trait_arg")
            .attribute("value")
            .unwrap()
            .as_str(),
        Some("Some(3)")
    );
    assert_eq!(
        run.one("impl_trait_ret").attribute("n").unwrap().as_str(),
        Some("3")
    );
    assert_eq!(
        run.one("impl_trait_ret_recorded")
            .attribute("return")
            .unwrap()
            .as_str(),
        Some("[5, 5]")
    );
}

#[test]
fn trait_default_method() {
    let (out, run) = run("names-trait-default", || World.greet());
    assert_eq!(out, "hello world");
    assert_eq!(run.spans.len(), 1);
    assert_eq!(run.spans[0].name, "greet");
    assert_eq!(run.spans[0].attributes, []);
}

struct Slot {
    value: u32,
}

impl Slot {
    #[traced(err, ret)]
    async fn slot_mut(&mut self, fail: bool) -> Result<&mut u32, String> {
        support::yield_once().await;
        if fail {
            return Err("refused".into());
        }
        Ok(&mut self.value)
    }

    #[traced(ret)]
    fn first<'a>(&self, items: &'a [u32]) -> Option<&'a u32> {
        let _ = self.value;
        items.first()
    }
}

#[test]
fn methods_returning_borrows() {
    let (out, run) = run("names-borrows", || {
        let mut slot = Slot { value: 1 };
        *support::block_on(slot.slot_mut(false)).unwrap() += 10;
        assert!(support::block_on(slot.slot_mut(true)).is_err());
        let items = [4, 5];
        (slot.value, slot.first(&items).copied())
    });
    assert_eq!(out, (11, Some(4)));
    let names: Vec<_> = run.spans.iter().map(|s| s.name.as_ref()).collect();
    assert_eq!(names, ["slot_mut", "slot_mut", "first"]);
    assert_eq!(
        run.spans[0].attribute("return").unwrap().as_str(),
        Some("1")
    );
    assert_eq!(
        run.spans[2].attribute("return").unwrap().as_str(),
        Some("Some(4)")
    );
}
