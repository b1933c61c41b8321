//! Running a stage on a thread of its own rather than on one of the runtime's workers.
//!
//! Tokio runs a task woken from a worker next on that same worker (its LIFO slot, which no
//! other worker may steal from). Stage 1 wakes the sink, the aggregates producer and the area
//! stage many times a second, so awaited on a worker it shared that worker with them: in an
//! end-to-end profile on two cores, one worker ran stage 1 and a third of the rest while the
//! other worker idled three quarters of the time (BENCHMARKS.md, fifteenth session). That
//! happened where `pipeline::run` was spawned as a task (the benches, tests, a library
//! user); `citysense run` and the demo await it in `Runtime::block_on` on the main thread,
//! which is no worker. On a thread of its own stage 1 runs the same however it is called:
//! still inside the runtime (spawns, timers, I/O), with the tasks it wakes on the workers.

use std::future::Future;

use tokio::runtime::{Handle, RuntimeFlavor};
use tokio::sync::oneshot;

/// Runs `stage` to completion on a thread of the runtime's blocking pool and returns its
/// output. Dropping the returned future ends the stage at its next poll, as dropping a
/// future awaited in place would (an aborted task, or a runtime dropped to simulate a
/// crash); a panic in the stage resumes here. On a current-thread runtime, which has one
/// thread, `stage` is awaited in place.
pub(crate) async fn run_on_own_thread<F>(stage: F) -> F::Output
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let handle = Handle::current();
    if handle.runtime_flavor() == RuntimeFlavor::CurrentThread {
        return stage.await;
    }
    // Held until this future completes or is dropped; its drop detaches the stage.
    let (_attached, detached) = oneshot::channel::<()>();
    let thread = tokio::task::spawn_blocking(move || {
        handle.block_on(async move {
            tokio::select! {
                // First, so that a detached stage is not polled again: once the runtime is
                // going away its timers may no longer be used. (A poll already under way
                // then may still touch one and panic on this thread, which ends the stage
                // as the crash that a dropped runtime stands for would.)
                biased;
                _ = detached => None,
                output = stage => Some(output),
            }
        })
    });
    match thread.await {
        Ok(Some(output)) => output,
        // `_attached` lives until this function returns, so the stage cannot be detached
        // while it is awaited.
        Ok(None) => unreachable!("stage detached while awaited"),
        Err(err) => match err.try_into_panic() {
            Ok(panic) => std::panic::resume_unwind(panic),
            // Cancelled before it started: the runtime is shutting down and drops this
            // future with its task.
            Err(_) => std::future::pending().await,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    /// Sets its flag when dropped.
    struct DropFlag(Arc<AtomicBool>);

    impl Drop for DropFlag {
        fn drop(&mut self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_stage_runs_off_the_workers_and_can_still_spawn_and_sleep() {
        let caller = std::thread::current().id();
        let (stage_thread, spawned_thread) = run_on_own_thread(async {
            tokio::time::sleep(Duration::from_millis(5)).await;
            let spawned = tokio::spawn(async { std::thread::current().id() }).await.unwrap();
            (std::thread::current().id(), spawned)
        })
        .await;
        assert_ne!(stage_thread, caller);
        assert_ne!(stage_thread, spawned_thread, "a task the stage spawns runs on a worker, not on the stage's thread");
    }

    #[tokio::test]
    async fn on_a_current_thread_runtime_a_stage_runs_in_place() {
        let caller = std::thread::current().id();
        assert_eq!(run_on_own_thread(async { std::thread::current().id() }).await, caller);
    }

    #[test]
    fn dropping_the_caller_ends_the_stage() {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let dropped = Arc::new(AtomicBool::new(false));
        let flag = DropFlag(dropped.clone());
        let (ran_on, ended) = runtime.block_on(async {
            let caller = tokio::spawn(run_on_own_thread(async move {
                let _flag = flag;
                std::future::pending::<()>().await
            }));
            tokio::time::sleep(Duration::from_millis(20)).await;
            let ran_on = !dropped.load(Ordering::SeqCst);
            caller.abort();
            let mut ended = false;
            for _ in 0..200 {
                ended = dropped.load(Ordering::SeqCst);
                if ended {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            (ran_on, ended)
        });
        // Not dropped: a stage still running would hold the runtime's drop forever.
        runtime.shutdown_background();
        assert!(ran_on, "the stage ended on its own");
        assert!(ended, "the stage still runs after its caller was dropped");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_panic_in_the_stage_reaches_the_caller() {
        let caller = tokio::spawn(run_on_own_thread(async { panic!("stage failed") }));
        let err = caller.await.unwrap_err();
        let message = err.into_panic();
        assert_eq!(message.downcast_ref::<&str>(), Some(&"stage failed"));
    }
}
