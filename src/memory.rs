//! The memory budget for batches in flight (half of `memory_limit`).
//!
//! A reader reserves a finished batch's Arrow size before handing it on, and
//! the reservation travels with the batch until every sink is done with it
//! (delivered, staged into its own buffers, or dead-lettered). When the sinks
//! fall behind, the reservations are not returned, the next reservation
//! waits, and the reader stops reading: the log file is the buffer, and
//! memory stays bounded however long a sink stalls.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Reservations are counted in KiB, so that a u32 of permits covers any budget.
const UNIT: u64 = 1024;

/// Bytes that batches in flight may take, shared by every reader.
#[derive(Debug)]
pub struct MemoryBudget {
    permits: Arc<Semaphore>,
    total_units: u32,
    reserved: Arc<AtomicU64>,
}

/// Bytes of one batch, returned to the budget when dropped.
#[derive(Debug)]
pub struct Reservation {
    _permit: Option<OwnedSemaphorePermit>,
    bytes: u64,
    reserved: Arc<AtomicU64>,
}

impl MemoryBudget {
    pub fn new(bytes: u64) -> Self {
        let total_units = u32::try_from((bytes / UNIT).max(1)).unwrap_or(u32::MAX);
        Self {
            permits: Arc::new(Semaphore::new(total_units as usize)),
            total_units,
            reserved: Arc::default(),
        }
    }

    /// Block the calling reader thread until `bytes` fit in the budget. A
    /// batch larger than the whole budget waits until nothing else is in
    /// flight, then takes all of it.
    pub fn reserve_blocking(&self, bytes: usize) -> Reservation {
        let units = u32::try_from((bytes as u64).div_ceil(UNIT))
            .unwrap_or(u32::MAX)
            .clamp(1, self.total_units);
        // The semaphore is never closed, so acquiring only waits.
        let permit =
            futures::executor::block_on(Arc::clone(&self.permits).acquire_many_owned(units)).ok();
        self.reserved.fetch_add(bytes as u64, Relaxed);
        Reservation {
            _permit: permit,
            bytes: bytes as u64,
            reserved: Arc::clone(&self.reserved),
        }
    }

    /// Bytes reserved by batches in flight now.
    pub fn reserved(&self) -> u64 {
        self.reserved.load(Relaxed)
    }

    /// The budget in bytes.
    pub fn limit(&self) -> u64 {
        u64::from(self.total_units) * UNIT
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.reserved.fetch_sub(self.bytes, Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_reader_waits_until_batches_in_flight_are_released() {
        let budget = Arc::new(MemoryBudget::new(100 * 1024));
        let first = budget.reserve_blocking(60 * 1024);
        assert_eq!(budget.reserved(), 60 * 1024);
        let (tx, rx) = std::sync::mpsc::channel();
        let b = Arc::clone(&budget);
        let waiter = std::thread::spawn(move || {
            let r = b.reserve_blocking(60 * 1024);
            tx.send(()).expect("send");
            r
        });
        assert!(
            rx.recv_timeout(Duration::from_millis(200)).is_err(),
            "the second batch does not fit while the first is in flight"
        );
        drop(first);
        rx.recv_timeout(Duration::from_secs(5))
            .expect("released memory lets the reader go on");
        let second = waiter.join().expect("waiter");
        assert_eq!(budget.reserved(), 60 * 1024);
        drop(second);
        assert_eq!(budget.reserved(), 0);
    }

    #[test]
    fn a_batch_larger_than_the_budget_takes_all_of_it() {
        let budget = MemoryBudget::new(64 * 1024);
        let big = budget.reserve_blocking(1 << 20);
        assert_eq!(budget.permits.available_permits(), 0);
        drop(big);
        assert_eq!(budget.permits.available_permits(), 64);
    }
}
