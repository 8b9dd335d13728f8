//! The case-matching rule from the end of `PROTOCOL.md`.
//!
//! * each expected line must equal SOME output line, compared as JSON;
//! * an expected line with no `body` key is compared with the output's `body`;
//! * objects must have the same set of keys;
//! * an expected string matches an actual string equal to it, or one that
//!   it matches WHOLE as a regular expression (anchored as `^(?:re)$`): the
//!   course writes `"Trace not sampled (1% rate)"`, whose parentheses are a
//!   group as a regex, and means the text itself;
//! * numbers compare as numbers, arrays element-wise with equal length.

use regex::Regex;
use serde_json::{Number, Value};

/// Compares `expected` with `actual` by the rule above, without the
/// body-only shortcut. `path` names the position for the error message.
pub fn match_value(expected: &Value, actual: &Value, path: &str) -> Result<(), String> {
    match (expected, actual) {
        (Value::Null, Value::Null) => Ok(()),
        (Value::Bool(e), Value::Bool(a)) if e == a => Ok(()),
        (Value::Number(e), Value::Number(a)) => {
            if numbers_equal(e, a) {
                Ok(())
            } else {
                Err(format!("{path}: expected number {e}, got {a}"))
            }
        }
        (Value::String(re), Value::String(a)) if re == a => Ok(()),
        (Value::String(re), Value::String(a)) => {
            let anchored = format!("^(?:{re})$");
            let compiled = Regex::new(&anchored).map_err(|err| {
                format!("{path}: expected value {re:?} is not a valid regex: {err}")
            })?;
            if compiled.is_match(a) {
                Ok(())
            } else {
                Err(format!(
                    "{path}: {a:?} does not match the regex {re:?} (whole string)"
                ))
            }
        }
        (Value::Array(e), Value::Array(a)) => {
            if e.len() != a.len() {
                return Err(format!(
                    "{path}: expected an array of {} elements, got {}",
                    e.len(),
                    a.len()
                ));
            }
            for (i, (ev, av)) in e.iter().zip(a).enumerate() {
                match_value(ev, av, &format!("{path}[{i}]"))?;
            }
            Ok(())
        }
        (Value::Object(e), Value::Object(a)) => {
            let missing: Vec<&String> = e.keys().filter(|k| !a.contains_key(*k)).collect();
            let extra: Vec<&String> = a.keys().filter(|k| !e.contains_key(*k)).collect();
            if !missing.is_empty() || !extra.is_empty() {
                return Err(format!(
                    "{path}: key sets differ (missing {missing:?}, unexpected {extra:?})"
                ));
            }
            for (k, ev) in e {
                match_value(ev, &a[k], &format!("{path}.{k}"))?;
            }
            Ok(())
        }
        _ => Err(format!("{path}: expected {expected}, got {actual}")),
    }
}

fn numbers_equal(e: &Number, a: &Number) -> bool {
    if let (Some(x), Some(y)) = (e.as_i64(), a.as_i64()) {
        return x == y;
    }
    if let (Some(x), Some(y)) = (e.as_u64(), a.as_u64()) {
        return x == y;
    }
    match (e.as_f64(), a.as_f64()) {
        (Some(x), Some(y)) => x == y,
        _ => false,
    }
}

/// Compares one expected line with one actual output line, applying the
/// body-only rule: an expected line without a `body` key is compared with
/// the actual line's `body`.
pub fn match_line(expected: &Value, actual: &Value) -> Result<(), String> {
    let has_body = expected.as_object().is_some_and(|o| o.contains_key("body"));
    if has_body {
        match_value(expected, actual, "$")
    } else {
        match actual.get("body") {
            Some(body) => match_value(expected, body, "$.body"),
            None => Err("actual line has no `body`".to_string()),
        }
    }
}

/// Index of the first actual line that matches `expected`, or an error
/// listing why each actual line missed.
pub fn find_match(expected: &Value, actuals: &[Value]) -> Result<usize, String> {
    let mut reasons = Vec::new();
    for (i, actual) in actuals.iter().enumerate() {
        match match_line(expected, actual) {
            Ok(()) => return Ok(i),
            Err(why) => reasons.push(format!("  line {i}: {why}")),
        }
    }
    if reasons.is_empty() {
        reasons.push("  (the node printed nothing)".to_string());
    }
    Err(reasons.join("\n"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ok(e: Value, a: Value) {
        if let Err(why) = match_line(&e, &a) {
            panic!("expected {e} to match {a}: {why}");
        }
    }

    fn miss(e: Value, a: Value) {
        assert!(match_line(&e, &a).is_err(), "expected {e} NOT to match {a}");
    }

    #[test]
    fn regex_matches_whole_string_only() {
        ok(
            json!({"body": {"s": "ab+c"}}),
            json!({"body": {"s": "abbbc"}}),
        );
        miss(
            json!({"body": {"s": "ab+c"}}),
            json!({"body": {"s": "xabbbc"}}),
        );
        miss(
            json!({"body": {"s": "ab+c"}}),
            json!({"body": {"s": "abcx"}}),
        );
        // Alternation must be anchored as a group, not just its ends.
        miss(json!({"body": {"s": "a|b"}}), json!({"body": {"s": "ax"}}));
        miss(json!({"body": {"s": "a|b"}}), json!({"body": {"s": "xb"}}));
        ok(json!({"body": {"s": "a|b"}}), json!({"body": {"s": "b"}}));
        ok(
            json!({"trace_id": ".*"}),
            json!({"body": {"trace_id": "3f2b-1"}}),
        );
        ok(json!({"trace_id": ".*"}), json!({"body": {"trace_id": ""}}));
        // A regex never matches a non-string.
        miss(json!({"n": ".*"}), json!({"body": {"n": 3}}));
        miss(json!({"n": "3"}), json!({"body": {"n": 3}}));
        // Literal strings work since they are regexes matching themselves.
        ok(
            json!({"type": "log_ok"}),
            json!({"body": {"type": "log_ok"}}),
        );
        miss(
            json!({"type": "log_ok"}),
            json!({"body": {"type": "log_okay"}}),
        );
        // A newline in the actual string is not skipped by `$`.
        miss(json!({"s": "abc"}), json!({"body": {"s": "abc\n"}}));
    }

    #[test]
    fn invalid_regex_is_a_miss_with_a_reason() {
        let err = match_line(&json!({"s": "(("}), &json!({"body": {"s": "x"}})).unwrap_err();
        assert!(err.contains("regex"), "{err}");
    }

    #[test]
    fn a_string_equal_to_the_expected_one_matches_even_if_the_regex_would_not() {
        let course = json!({"reason": "Trace not sampled (1% rate)"});
        ok(
            course.clone(),
            json!({"body": {"reason": "Trace not sampled (1% rate)"}}),
        );
        // As a regex it still matches what its group matches.
        ok(
            course.clone(),
            json!({"body": {"reason": "Trace not sampled 1% rate"}}),
        );
        miss(
            course,
            json!({"body": {"reason": "Trace not sampled (2% rate)"}}),
        );
    }

    #[test]
    fn key_sets_must_be_equal() {
        miss(
            json!({"type": "log_ok"}),
            json!({"body": {"type": "log_ok", "in_reply_to": 1}}),
        );
        miss(
            json!({"type": "log_ok", "in_reply_to": 1}),
            json!({"body": {"type": "log_ok"}}),
        );
        ok(
            json!({"type": "log_ok", "in_reply_to": 1}),
            json!({"body": {"in_reply_to": 1, "type": "log_ok"}}),
        );
        // Nested objects too.
        miss(
            json!({"a": {"x": 1}}),
            json!({"body": {"a": {"x": 1, "y": 2}}}),
        );
        let err = match_line(&json!({"a": 1}), &json!({"body": {"a": 1, "b": 2}})).unwrap_err();
        assert!(err.contains("\"b\""), "{err}");
    }

    #[test]
    fn body_only_comparison() {
        // No `body` key: compared with the output's body, envelope ignored.
        ok(
            json!({"type": "init_ok", "in_reply_to": 1}),
            json!({"src": "n1", "dest": "c1", "body": {"type": "init_ok", "in_reply_to": 1}}),
        );
        // No `body` in the actual line: cannot match a body-only line.
        miss(json!({"type": "init_ok"}), json!({"type": "init_ok"}));
        // With a `body` key the whole envelope is compared, key sets included.
        ok(
            json!({"src": "n1", "dest": "c.*", "body": {"type": "x"}}),
            json!({"src": "n1", "dest": "c1", "body": {"type": "x"}}),
        );
        miss(
            json!({"src": "n1", "body": {"type": "x"}}),
            json!({"src": "n1", "dest": "c1", "body": {"type": "x"}}),
        );
        miss(
            json!({"src": "n2", "dest": "c1", "body": {"type": "x"}}),
            json!({"src": "n1", "dest": "c1", "body": {"type": "x"}}),
        );
    }

    #[test]
    fn nested_arrays_compare_element_wise() {
        ok(
            json!({"a": [[1, "x+"], [], [{"k": null}]]}),
            json!({"body": {"a": [[1, "xxx"], [], [{"k": null}]]}}),
        );
        miss(
            json!({"a": [[1, 2], [3]]}),
            json!({"body": {"a": [[1, 2], [3, 4]]}}),
        );
        miss(json!({"a": [1, 2]}), json!({"body": {"a": [2, 1]}}));
        miss(json!({"a": [1, 2]}), json!({"body": {"a": [1, 2, 3]}}));
        miss(json!({"a": [1, 2, 3]}), json!({"body": {"a": [1, 2]}}));
        miss(json!({"a": []}), json!({"body": {"a": {}}}));
        miss(
            json!({"services": ["web", "api", "db"]}),
            json!({"body": {"services": ["web", "db"]}}),
        );
    }

    #[test]
    fn numbers_compare_as_numbers() {
        ok(json!({"n": 3}), json!({"body": {"n": 3.0}}));
        ok(json!({"n": 3.0}), json!({"body": {"n": 3}}));
        ok(json!({"n": -1}), json!({"body": {"n": -1}}));
        ok(json!({"n": u64::MAX}), json!({"body": {"n": u64::MAX}}));
        miss(json!({"n": 3}), json!({"body": {"n": 4}}));
        miss(json!({"n": 3}), json!({"body": {"n": 3.5}}));
        miss(json!({"n": 3}), json!({"body": {"n": "3"}}));
        miss(json!({"n": -1}), json!({"body": {"n": u64::MAX}}));
    }

    #[test]
    fn scalars_and_type_mismatches() {
        ok(
            json!({"b": true, "z": null}),
            json!({"body": {"b": true, "z": null}}),
        );
        miss(json!({"b": true}), json!({"body": {"b": false}}));
        miss(json!({"z": null}), json!({"body": {"z": false}}));
        miss(json!({"z": null}), json!({"body": {"z": "null"}}));
        miss(json!({"o": {}}), json!({"body": {"o": null}}));
    }

    #[test]
    fn find_match_picks_any_line() {
        let actuals = vec![
            json!({"src": "n1", "dest": "c1", "body": {"type": "log_ok", "in_reply_to": 3}}),
            json!({"src": "n1", "dest": "c1", "body": {"type": "search_results", "in_reply_to": 4, "logs": []}}),
        ];
        assert_eq!(
            find_match(
                &json!({"type": "search_results", "in_reply_to": 4, "logs": []}),
                &actuals
            ),
            Ok(1)
        );
        let err = find_match(
            &json!({"type": "search_results", "in_reply_to": 5, "logs": []}),
            &actuals,
        )
        .unwrap_err();
        assert!(err.contains("line 0") && err.contains("line 1"), "{err}");
        assert!(find_match(&json!({"type": "x"}), &[]).is_err());
    }
}
