//! Feeds arbitrary bytes (as lossy UTF-8) to the analyzer in every language
//! and with detection: it must never panic or hang, and an error must point
//! inside the input and say where.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tracer_analyzer::{analyze, detect_language, lexer, Language, MAX_CODE_BYTES};

fuzz_target!(|data: &[u8]| {
    let code = String::from_utf8_lossy(data);
    let _ = detect_language(&code);
    let langs = Language::ALL.iter().copied().map(Some).chain([None]);
    for lang in langs {
        match analyze(&code, lang) {
            Ok(a) => {
                if let Some(l) = lang {
                    assert_eq!(a.language, l);
                }
                for w in &a.warnings {
                    assert!(w.starts_with("span '") && w.ends_with("' is never ended"));
                }
            }
            Err(e) => {
                assert!(e.line >= 1 && e.column >= 1);
                if code.len() <= MAX_CODE_BYTES {
                    let line = code
                        .split('\n')
                        .nth(e.line - 1)
                        .expect("error line in input");
                    assert!(e.column <= line.chars().count() + 1, "{e}");
                    assert!(e
                        .message
                        .contains(&format!("line {}, column {}", e.line, e.column)));
                }
            }
        }
    }
    // Tokens tile the input in order, each at the position it claims.
    for lang in Language::ALL {
        if let Ok(tokens) = lexer::tokenize(&code, lang) {
            let (mut pos, mut line, mut column, mut end) = (0, 1, 1, 0);
            for t in &tokens {
                assert!(t.offset >= end, "tokens overlap");
                assert_eq!(&code[t.offset..t.offset + t.text.len()], t.text);
                for c in code[pos..t.offset].chars() {
                    if c == '\n' {
                        line += 1;
                        column = 1;
                    } else {
                        column += 1;
                    }
                }
                assert_eq!((t.line, t.column), (line, column));
                pos = t.offset;
                end = t.offset + t.text.len();
            }
        }
    }
});
