//! tidewater: tails container logs, parses them, batches them into Arrow and
//! delivers them to a Parquet data lake, at least once.
//!
//! Data flows one way — [`source`] → [`parse`] → [`batch`] (masked by
//! [`redact`]) → [`route`] → sinks (`tidewater-sinks`) — and
//! acknowledgements flow back through [`ack`] to [`checkpoint`];
//! [`pipeline`] wires the stages together.
//!
//! Imports between these modules form no cycle (`scripts/check-imports.py`
//! checks it): the types several stages share are in leaves ([`file`] for
//! file identity, [`shutdown`] for the one way a stop travels), each
//! component owns its configuration type and its checks, and [`config`],
//! the registry of named components, imports them, never the reverse.

pub mod ack;
pub mod api;
pub mod batch;
pub mod checkpoint;
pub mod config;
pub mod data_dir;
pub mod dead_letter;
pub mod deliver;
pub mod file;
pub mod health;
pub mod memory;
pub mod metrics;
#[cfg(feature = "amqp")]
pub mod notify;
pub mod parse;
pub mod pipeline;
pub mod pod;
pub mod recycle;
pub mod redact;
pub mod route;
pub mod schema;
pub mod shutdown;
pub mod sinks;
pub mod source;
pub mod stats;
pub mod status;
pub mod tasks;

/// Lock a mutex shared between the pipeline's threads. A panicked holder
/// leaves plain data (offsets, counters) that is still consistent, so the
/// poison is ignored rather than spreading the panic.
pub(crate) fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
