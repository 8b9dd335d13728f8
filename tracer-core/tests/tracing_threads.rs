//! Spans crossing `.await` and threads keep their parent, on a
//! multi-threaded executor.

mod support;

use std::time::Duration;
use support::{named, Setup};
use tracer_core::Sampler;
use tracing::Instrument;

#[traced]
fn traced_step() {}

use tracer_macros::traced;

#[test]
fn spans_keep_their_parent_across_await_and_threads() {
    let s = Setup::new(Sampler::AlwaysOn);
    let _ = tracer_core::global::set_tracer(s.tracer.clone());
    let dispatch = s.dispatch();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .on_thread_start({
            let dispatch = dispatch.clone();
            move || {
                // Each worker uses the layer (a scoped default per thread).
                std::mem::forget(tracing::dispatcher::set_default(&dispatch));
            }
        })
        .build()
        .unwrap();
    let _main = tracing::dispatcher::set_default(&dispatch);
    rt.block_on(async {
        let root = tracing::info_span!("request");
        let mut tasks = Vec::new();
        for i in 0..8 {
            let task = async move {
                for _ in 0..3 {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                    traced_step();
                }
                tracing::info_span!("work", i).in_scope(|| ());
            }
            .instrument(tracing::info_span!(parent: &root, "task", i));
            tasks.push(tokio::spawn(task));
        }
        for t in tasks {
            t.await.unwrap();
        }
        drop(root);
    });
    drop(rt);
    let spans = s.take();
    let root = named(&spans, "request");
    let tasks: Vec<_> = spans.iter().filter(|x| x.name == "task").collect();
    assert_eq!(tasks.len(), 8);
    for t in &tasks {
        assert_eq!(t.parent_span_id, Some(root.context.span_id()));
    }
    let task_ids: Vec<_> = tasks.iter().map(|t| t.context.span_id()).collect();
    let steps: Vec<_> = spans.iter().filter(|x| x.name == "traced_step").collect();
    assert_eq!(steps.len(), 24);
    for st in steps.iter().chain(
        spans
            .iter()
            .filter(|x| x.name == "work")
            .collect::<Vec<_>>()
            .iter(),
    ) {
        assert!(
            st.parent_span_id.is_some_and(|p| task_ids.contains(&p)),
            "{} under a task: {st:#?}",
            st.name
        );
        assert_eq!(st.context.trace_id(), root.context.trace_id());
    }
}
