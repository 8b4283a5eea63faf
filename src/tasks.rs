//! Spawned tasks that must not die silently.
//!
//! Every long-lived task of the pipeline (sink workers, the dispatcher, the
//! checkpoint writer, the API server, the acknowledgement of staged batches)
//! is spawned through [`Critical`]. A panic in one, or an error it returns,
//! is reported once on a channel that `Pipeline::run` watches: the process
//! then stops with a non-zero exit and a message naming the task, instead of
//! running on with a stage missing (a dead worker stalls its sink's queue; a
//! dead checkpoint writer only writes at shutdown).
//!
//! A task that keeps failing and retrying (a sink worker, the checkpoint
//! writer) logs it at most every [`LOG_EVERY`].

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::time::Duration;

use futures::FutureExt;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// A failure that repeats (a batch a sink keeps refusing, a checkpoint that
/// cannot be written) is logged at most this often; every attempt is still
/// counted (the sink's health state, `/metrics`).
pub const LOG_EVERY: Duration = Duration::from_secs(5);

/// Spawns critical tasks and collects the first failure among them.
#[derive(Clone)]
pub struct Critical {
    failures: mpsc::UnboundedSender<String>,
}

/// Where [`Critical`] reports failures.
pub struct Failures(mpsc::UnboundedReceiver<String>);

impl Critical {
    /// A spawner and the receiver of its failures.
    pub fn new() -> (Self, Failures) {
        let (failures, rx) = mpsc::unbounded_channel();
        (Self { failures }, Failures(rx))
    }

    /// Report a failure of something not spawned here (a reader thread).
    pub fn report(&self, failure: String) {
        tracing::error!(failure = %failure, "a pipeline task died; stopping");
        let _ = self.failures.send(failure);
    }

    /// Spawn `task` named `name`; its panic or `Err` is reported as a failure.
    pub fn spawn<F>(&self, name: impl Into<String>, task: F) -> JoinHandle<()>
    where
        F: Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        let name = name.into();
        let failures = self.failures.clone();
        tokio::spawn(async move {
            let failure = match AssertUnwindSafe(task).catch_unwind().await {
                Ok(Ok(())) => return,
                Ok(Err(e)) => format!("task {name} failed: {e:#}"),
                Err(panic) => format!("task {name} panicked: {}", panic_message(&*panic)),
            };
            Critical { failures }.report(failure);
        })
    }
}

impl Failures {
    /// The first failure reported; pending forever while there is none.
    pub async fn first(&mut self) -> String {
        match self.0.recv().await {
            Some(failure) => failure,
            // Every spawner is gone: nothing can fail any more.
            None => std::future::pending().await,
        }
    }
}

/// The text a panic was raised with, when it has one.
pub fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "(no message)".to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panic_or_an_error_is_reported_with_the_task_name() {
        let (critical, mut failures) = Critical::new();
        critical.spawn("fine", async { Ok(()) });
        critical.spawn("checkpoint writer", async {
            let zero = std::hint::black_box(0u64);
            if zero == 0 {
                panic!("interval must be non-zero");
            }
            Ok(())
        });
        let failure = failures.first().await;
        assert_eq!(
            failure,
            "task checkpoint writer panicked: interval must be non-zero"
        );
        critical.spawn("api server", async {
            Err(anyhow::anyhow!("address in use"))
        });
        assert_eq!(
            failures.first().await,
            "task api server failed: address in use"
        );
    }
}
