//! The memory budget for batches in flight (half of `memory_limit`).
//!
//! A reader reserves a finished batch's Arrow size before handing it on, and
//! the reservation travels with the batch until every sink is done with it
//! (delivered, staged into its own buffers, or dead-lettered). When the sinks
//! fall behind, the reservations are not returned, the next reservation
//! waits, and the reader stops reading: the log file is the buffer, and
//! memory stays bounded however long a sink stalls. A waiting reader
//! gives up as soon as the pipeline's shutdown token is cancelled.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

/// Reservations are counted in KiB, so that a u32 of permits covers any budget.
const UNIT: u64 = 1024;

/// Bytes that batches in flight may take, shared by every reader.
#[derive(Debug)]
pub struct MemoryBudget {
    permits: Arc<Semaphore>,
    total_units: u32,
    /// The pipeline's (multi-thread) runtime, whose workers drive the
    /// timers of the waits.
    runtime: tokio::runtime::Handle,
}

/// One batch's share of the budget, returned when dropped.
#[derive(Debug)]
pub struct Reservation {
    _permit: OwnedSemaphorePermit,
}

impl MemoryBudget {
    /// A budget of `bytes`, whose waits run on `runtime`.
    pub fn new(bytes: u64, runtime: tokio::runtime::Handle) -> Self {
        let total_units = u32::try_from((bytes / UNIT).max(1)).unwrap_or(u32::MAX);
        Self {
            permits: Arc::new(Semaphore::new(total_units as usize)),
            total_units,
            runtime,
        }
    }

    /// Block the calling reader thread (not a runtime thread) until `bytes`
    /// fit in the budget; `None` if `shutdown` is cancelled while waiting
    /// (the batch is then not delivered, and read again on the next start).
    /// A batch larger than the whole budget waits until nothing else is in
    /// flight, then takes all of it (and says so: the batch limits are too
    /// large for `memory_limit`).
    pub fn reserve_blocking(
        &self,
        bytes: usize,
        shutdown: &CancellationToken,
    ) -> Option<Reservation> {
        let wanted = (bytes as u64).div_ceil(UNIT);
        if wanted > u64::from(self.total_units) {
            tracing::warn!(
                batch_bytes = bytes,
                budget_bytes = self.limit(),
                "a batch is larger than the memory budget for batches (half of memory_limit); lower batch.max_bytes or max_rows"
            );
        }
        let units = u32::try_from(wanted)
            .unwrap_or(u32::MAX)
            .clamp(1, self.total_units);
        let acquire = Arc::clone(&self.permits).acquire_many_owned(units);
        self.runtime.block_on(async {
            tokio::select! {
                // Room that is there now is taken even when stopping.
                biased;
                // The semaphore is never closed, so acquiring only waits.
                permit = acquire => permit.ok().map(|p| Reservation { _permit: p }),
                () = shutdown.cancelled() => None,
            }
        })
    }

    /// Take up to `bytes` of the budget now, without waiting: the share of
    /// a copy made on a batch's way to one sink (the rows its `when` kept),
    /// held with the batch. Less, or nothing, when the budget is used up
    /// at that moment: then the readers are waiting anyway, and a wait here
    /// could deadlock behind them (the source batch's reservation is held).
    pub fn charge(&self, bytes: usize) -> Option<Reservation> {
        let wanted = u32::try_from((bytes as u64).div_ceil(UNIT)).unwrap_or(u32::MAX);
        let free = u32::try_from(self.permits.available_permits()).unwrap_or(u32::MAX);
        let units = wanted.min(free);
        if units == 0 {
            return None;
        }
        let permit = Arc::clone(&self.permits)
            .try_acquire_many_owned(units)
            .ok()?;
        Some(Reservation { _permit: permit })
    }

    /// Reserve `bytes` if they fit now, without waiting (tests hold
    /// reservations with it).
    #[cfg(test)]
    pub(crate) fn try_reserve(&self, bytes: usize) -> Option<Reservation> {
        let units = u32::try_from((bytes as u64).div_ceil(UNIT)).ok()?.max(1);
        let permit = Arc::clone(&self.permits)
            .try_acquire_many_owned(units)
            .ok()?;
        Some(Reservation { _permit: permit })
    }

    /// Bytes reserved by batches in flight now (a batch larger than the
    /// whole budget counts as the budget).
    pub fn reserved(&self) -> u64 {
        let free = u64::try_from(self.permits.available_permits()).unwrap_or(u64::MAX);
        self.limit().saturating_sub(free * UNIT)
    }

    /// The budget in bytes.
    pub fn limit(&self) -> u64 {
        u64::from(self.total_units) * UNIT
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// Like the pipeline's: a multi-thread runtime drives its timers from
    /// its own workers, which `Handle::block_on` relies on.
    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_time()
            .build()
            .expect("runtime")
    }

    #[test]
    fn a_reader_waits_until_batches_in_flight_are_released() {
        let rt = runtime();
        let budget = Arc::new(MemoryBudget::new(100 * 1024, rt.handle().clone()));
        let running = CancellationToken::new();
        let first = budget.reserve_blocking(60 * 1024, &running).expect("fits");
        assert_eq!(budget.reserved(), 60 * 1024);
        let (tx, rx) = std::sync::mpsc::channel();
        let (b, r) = (Arc::clone(&budget), running.clone());
        let waiter = std::thread::spawn(move || {
            let reservation = b.reserve_blocking(60 * 1024, &r);
            tx.send(()).expect("send");
            reservation
        });
        assert!(
            rx.recv_timeout(Duration::from_millis(200)).is_err(),
            "the second batch does not fit while the first is in flight"
        );
        drop(first);
        rx.recv_timeout(Duration::from_secs(5))
            .expect("released memory lets the reader go on");
        let second = waiter
            .join()
            .expect("waiter")
            .expect("fits after the release");
        assert_eq!(budget.reserved(), 60 * 1024);
        drop(second);
        assert_eq!(budget.reserved(), 0);
    }

    #[test]
    fn a_waiting_reader_gives_up_on_shutdown() {
        let rt = runtime();
        let budget = MemoryBudget::new(100 * 1024, rt.handle().clone());
        let shutdown = CancellationToken::new();
        let _held = budget
            .reserve_blocking(100 * 1024, &shutdown)
            .expect("fits");
        shutdown.cancel();
        assert!(budget.reserve_blocking(1024, &shutdown).is_none());
    }

    #[test]
    fn a_batch_larger_than_the_budget_takes_all_of_it() {
        let rt = runtime();
        let budget = MemoryBudget::new(64 * 1024, rt.handle().clone());
        let big = budget
            .reserve_blocking(1 << 20, &CancellationToken::new())
            .expect("fits alone");
        assert_eq!(budget.permits.available_permits(), 0);
        drop(big);
        assert_eq!(budget.permits.available_permits(), 64);
    }
}
