//! Misuses of `#[traced]` and `#[handler]` fail to compile, with an error
//! pointing at the offending tokens (see the `.stderr` next to each case).

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/*.rs");
}
