//! Every case under `tests/cases/` against the real binary.

use std::path::PathBuf;
use tests::{cases_dir, run_case};

fn case_inputs() -> Vec<PathBuf> {
    let mut inputs: Vec<PathBuf> = std::fs::read_dir(cases_dir())
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", cases_dir().display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.ends_with(".in.jsonl"))
        })
        .collect();
    inputs.sort();
    inputs
}

#[test]
fn the_seed_cases_are_present() {
    let names: Vec<String> = case_inputs()
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert!(
        names.len() >= 3,
        "expected at least 3 cases, found {names:?}"
    );
    for seed in [
        "seed-auto-instrument.in.jsonl",
        "seed-log-search.in.jsonl",
        "seed-manual-instrument.in.jsonl",
        "course-collector-aggregate.in.jsonl",
        "course-collector-sampling.in.jsonl",
        "course-analysis-error-rate.in.jsonl",
        "course-analysis-performance.in.jsonl",
    ] {
        assert!(names.iter().any(|n| n == seed), "missing seed case {seed}");
    }
}

#[test]
fn every_case_matches() {
    let inputs = case_inputs();
    assert!(
        inputs.len() >= 3,
        "expected at least the 3 seed cases in {}",
        cases_dir().display()
    );
    let mut failures = Vec::new();
    for input in &inputs {
        let name = input.file_name().unwrap().to_string_lossy();
        let stem = name.trim_end_matches(".in.jsonl");
        let output = input.with_file_name(format!("{stem}.out.jsonl"));
        if !output.is_file() {
            failures.push(format!("{stem}: no {}", output.display()));
            continue;
        }
        if let Err(why) = run_case(input, &output) {
            failures.push(format!("{stem}:\n{why}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n\n{}",
        failures.len(),
        inputs.len(),
        failures.join("\n\n")
    );
}
