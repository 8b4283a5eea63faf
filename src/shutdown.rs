//! How a stop reaches every part of the process.
//!
//! Shutdown travels one way only: a [`CancellationToken`]
//! (`tokio_util::sync::CancellationToken`). Async tasks wait on
//! `token.cancelled()`; blocking threads (the tail readers, the wait for
//! the data dir's lock) check `token.is_cancelled()` between steps, and a
//! reader blocked on the memory budget wakes at once. The signals that
//! start a stop — SIGTERM and SIGINT — are received here ([`StopSignals`]):
//! `run` turns the first into a cancelled token and treats the second as
//! "exit now"; `notify` cancels its token at the first (and bounds its own
//! stop by its `shutdown_timeout`), and so does the wait for the data dir's
//! lock ([`cancel_on_signal`]).
//!
//! A leaf: it depends on nothing else in the crate.

use anyhow::Context;
use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio::task::JoinHandle;
pub use tokio_util::sync::CancellationToken;

/// SIGTERM and SIGINT, listened to from creation on (a signal that comes
/// before [`StopSignals::recv`] is called is not lost).
pub struct StopSignals {
    sigterm: Signal,
    sigint: Signal,
}

impl StopSignals {
    /// Start listening. Must run inside the runtime.
    pub fn listen() -> anyhow::Result<Self> {
        Ok(Self {
            sigterm: signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?,
            sigint: signal(SignalKind::interrupt()).context("cannot listen for SIGINT")?,
        })
    }

    /// The next SIGTERM or SIGINT.
    pub async fn recv(&mut self) {
        tokio::select! {
            _ = self.sigterm.recv() => {}
            _ = self.sigint.recv() => {}
        }
    }
}

/// Cancel `token` at the first SIGTERM or SIGINT. The returned task does
/// that; abort it to stop listening.
pub fn cancel_on_signal(token: CancellationToken) -> anyhow::Result<JoinHandle<()>> {
    let mut signals = StopSignals::listen()?;
    Ok(tokio::spawn(async move {
        signals.recv().await;
        token.cancel();
    }))
}
