//! Manual-instrumentation analysis: how many places in a piece of code start
//! a span, and which spans are never ended. The lexers and the lifecycle
//! check live in the `tracer-analyzer` crate.

use serde::{Deserialize, Serialize};
use tracer_analyzer::{analyze, Language, MAX_CODE_BYTES};
use tracer_node::{handler, Ctx, Error};

/// `manual_instrument {code, language?}`.
#[derive(Deserialize)]
pub struct ManualInstrument {
    code: String,
    #[serde(default)]
    language: Option<String>,
}

/// `instrumentation_ok {spans_created, warnings?}`.
#[derive(Serialize)]
#[serde(tag = "type", rename = "instrumentation_ok")]
pub struct InstrumentationOk {
    spans_created: usize,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    warnings: Vec<String>,
}

/// Lexes the code (detecting its language when not given), counts the
/// span-starting call sites and reports spans that are never ended.
#[handler("manual_instrument")]
pub fn manual_instrument(
    _ctx: &mut Ctx<'_>,
    req: ManualInstrument,
) -> Result<InstrumentationOk, Error> {
    let language = match req.language.as_deref() {
        None => None,
        Some(name) => Some(Language::from_name(name).ok_or_else(|| {
            Error::bad_field(
                "language",
                format!(
                    "unknown language {name:?}; accepted: {}",
                    Language::ACCEPTED
                ),
            )
        })?),
    };
    if req.code.len() > MAX_CODE_BYTES {
        return Err(Error::bad_field(
            "code",
            format!(
                "{} bytes is over the limit of {MAX_CODE_BYTES} bytes",
                req.code.len()
            ),
        ));
    }
    let analysis =
        analyze(&req.code, language).map_err(|e| Error::bad_field("code", e.to_string()))?;
    Ok(InstrumentationOk {
        spans_created: analysis.spans_created,
        warnings: analysis.warnings,
    })
}
