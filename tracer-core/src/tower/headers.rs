//! W3C propagation over `http::HeaderMap`: the [`Extractor`] and
//! [`Injector`] of [`propagation`](crate::propagation) for the `http`
//! crate's header map, so that `propagation::extract(request.headers())`
//! and `propagation::inject(ctx, request.headers_mut())` work as they do for
//! the other carriers. The layers use exactly these.

use crate::propagation::{Extractor, Injector, TRACEPARENT, TRACESTATE};
use http::header::{HeaderMap, HeaderName, HeaderValue};

/// What a header value that is not visible ASCII reads as: text that
/// neither a `traceparent` nor a `tracestate` accepts, so that such a
/// header is rejected as invalid (and still counted, for the "present more
/// than once" rule), never skipped as if it were absent.
const NOT_TEXT: &str = "\u{0}";

const TRACEPARENT_NAME: HeaderName = HeaderName::from_static(TRACEPARENT);
const TRACESTATE_NAME: HeaderName = HeaderName::from_static(TRACESTATE);

/// Header names are matched case-insensitively (the map stores them in
/// lower case); every value of a repeated header is read, in order, in
/// place. The W3C names are looked up without parsing them again.
impl Extractor for HeaderMap {
    fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> {
        let values = match name {
            TRACEPARENT => HeaderMap::get_all(self, TRACEPARENT_NAME),
            TRACESTATE => HeaderMap::get_all(self, TRACESTATE_NAME),
            other => HeaderMap::get_all(self, other),
        };
        values.into_iter().map(|v| v.to_str().unwrap_or(NOT_TEXT))
    }
}

/// Replaces every earlier value of the header. A name or value that is not
/// a valid header is not written (the W3C headers this library writes
/// always are).
impl Injector for HeaderMap {
    fn set(&mut self, name: &str, value: String) {
        let Ok(value) = HeaderValue::try_from(value) else {
            return;
        };
        let name = match name {
            TRACEPARENT => TRACEPARENT_NAME,
            TRACESTATE => TRACESTATE_NAME,
            other => match HeaderName::try_from(other) {
                Ok(n) => n,
                Err(_) => return,
            },
        };
        self.insert(name, value);
    }
}

#[cfg(test)]
mod tests {
    use crate::propagation::{self, ExtractError, Injector};
    use crate::{SpanContext, SpanId, TraceFlags, TraceId, TraceState};
    use http::header::{HeaderMap, HeaderValue};

    const TP: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    fn map(pairs: &[(&'static str, &[u8])]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (k, v) in pairs {
            m.append(*k, HeaderValue::from_bytes(v).unwrap());
        }
        m
    }

    #[test]
    fn extracts_traceparent_and_tracestate_case_insensitively() {
        let mut m = HeaderMap::new();
        m.insert("TraceParent", HeaderValue::from_static(TP));
        m.append("TRACESTATE", HeaderValue::from_static("a=1"));
        m.append("tracestate", HeaderValue::from_static("b=2"));
        let ctx = propagation::extract(&m).unwrap();
        assert!(ctx.is_remote() && ctx.is_sampled());
        assert_eq!(
            ctx.trace_id(),
            TraceId::from_u128(0x4bf92f3577b34da6a3ce929d0e0e4736)
        );
        assert_eq!(ctx.span_id(), SpanId::from_u64(0x00f067aa0ba902b7));
        assert_eq!(ctx.trace_state().header(), "a=1,b=2", "joined in order");
    }

    #[test]
    fn missing_duplicated_and_invalid_traceparents_yield_no_parent() {
        assert_eq!(
            propagation::extract(&HeaderMap::new()),
            Err(ExtractError::Missing)
        );
        let twice = map(&[
            ("traceparent", TP.as_bytes()),
            ("traceparent", TP.as_bytes()),
        ]);
        assert_eq!(propagation::extract(&twice), Err(ExtractError::Duplicated));
        let bad = map(&[("traceparent", b"00-zz-00f067aa0ba902b7-01")]);
        assert!(matches!(
            propagation::extract(&bad),
            Err(ExtractError::Invalid(_))
        ));
        // Not visible ASCII: invalid, not absent; and still a second value.
        let binary = map(&[("traceparent", b"00-\xff")]);
        assert!(matches!(
            propagation::extract(&binary),
            Err(ExtractError::Invalid(_))
        ));
        let one_binary = map(&[("traceparent", TP.as_bytes()), ("traceparent", b"\xff")]);
        assert_eq!(
            propagation::extract(&one_binary),
            Err(ExtractError::Duplicated)
        );
    }

    #[test]
    fn a_binary_tracestate_is_dropped_and_the_parent_kept() {
        let m = map(&[("traceparent", TP.as_bytes()), ("tracestate", b"a=\xe9")]);
        let ctx = propagation::extract(&m).unwrap();
        assert!(ctx.trace_state().is_empty());
    }

    #[test]
    fn injects_both_headers_replacing_earlier_values() {
        let state = TraceState::parse(["congo=t61rcWkgMzE"]).unwrap();
        let ctx = SpanContext::new(
            TraceId::from_u128(0xabc),
            SpanId::from_u64(0xdef),
            TraceFlags::NONE,
            false,
            state,
        );
        let mut m = map(&[
            ("traceparent", b"stale"),
            ("traceparent", b"stale too"),
            ("tracestate", b"old=1"),
        ]);
        propagation::inject(&ctx, &mut m);
        let tps: Vec<_> = m.get_all("traceparent").iter().collect();
        assert_eq!(
            tps,
            ["00-00000000000000000000000000000abc-0000000000000def-00"]
        );
        assert_eq!(m["tracestate"], "congo=t61rcWkgMzE");
        // An invalid context writes nothing.
        let mut empty = HeaderMap::new();
        propagation::inject(
            &SpanContext::new(
                TraceId::INVALID,
                SpanId::INVALID,
                TraceFlags::NONE,
                false,
                TraceState::EMPTY,
            ),
            &mut empty,
        );
        assert!(empty.is_empty());
    }

    /// Header sets that exercise every rule of the processing model.
    fn cases() -> Vec<HeaderMap> {
        let tp2 = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-03";
        let future = "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-ff-what-ever";
        vec![
            map(&[]),
            map(&[("traceparent", TP.as_bytes())]),
            map(&[("traceparent", tp2.as_bytes()), ("tracestate", b"a=1")]),
            map(&[
                ("traceparent", future.as_bytes()),
                ("tracestate", b"a=1,b=2"),
            ]),
            map(&[
                ("traceparent", TP.as_bytes()),
                ("tracestate", b"a=1"),
                ("tracestate", b" b=2 ,"),
            ]),
            map(&[("traceparent", TP.as_bytes()), ("tracestate", b"a=1,a=2")]),
            map(&[("traceparent", TP.as_bytes()), ("tracestate", b"A=1")]),
            map(&[("traceparent", TP.as_bytes()), ("tracestate", b"a=\xe9")]),
            map(&[("traceparent", TP.as_bytes()), ("tracestate", b"")]),
            map(&[
                ("traceparent", TP.as_bytes()),
                ("traceparent", TP.as_bytes()),
            ]),
            map(&[("traceparent", b"\xff")]),
            map(&[("traceparent", TP.to_uppercase().as_bytes())]),
            map(&[(
                "traceparent",
                b"00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            )]),
            map(&[("tracestate", b"a=1")]),
        ]
    }

    #[test]
    fn injection_into_a_header_map_writes_the_formatted_traceparent() {
        for m in cases() {
            let Ok(remote) = propagation::extract(&m) else {
                continue;
            };
            for flags in [0x00, 0x01, 0x02, 0x03, 0xff] {
                let ctx = SpanContext::new(
                    remote.trace_id(),
                    SpanId::random(),
                    TraceFlags::new(flags),
                    false,
                    remote.trace_state().clone(),
                );
                let mut ours = HeaderMap::new();
                propagation::inject(&ctx, &mut ours);
                assert_eq!(
                    ours["traceparent"],
                    crate::Traceparent::format(&ctx).as_str()
                );
                let state = ctx.trace_state();
                assert_eq!(
                    ours.get("tracestate").map(|v| v.to_str().unwrap()),
                    (!state.is_empty()).then(|| state.header()).as_deref()
                );
            }
        }
        let invalid = SpanContext::new(
            TraceId::INVALID,
            SpanId::random(),
            TraceFlags::SAMPLED,
            false,
            TraceState::EMPTY,
        );
        let mut m = HeaderMap::new();
        propagation::inject(&invalid, &mut m);
        assert!(m.is_empty());
    }

    #[test]
    fn invalid_names_and_values_are_not_written() {
        let mut m = HeaderMap::new();
        m.set("bad name", "v".into());
        m.set("x-ok", "line\nbreak".into());
        assert!(m.is_empty());
        m.set("X-Custom", "v".into());
        assert_eq!(m["x-custom"], "v");
    }
}
