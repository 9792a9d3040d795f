//! Completion tokens between an input and the pipeline, and the interface
//! an input hands its records to.
//!
//! An input (Kafka partition, Kinesis shard, file) may advance its
//! checkpoint past a record only once every event decoded from it was
//! scored and its alerts and dead letters were handed to their durable
//! queues. The input makes one [`Ack`] per record with the function that
//! marks the record done; the pipeline clones it into every piece of work
//! the record turns into; when the last clone is dropped the function runs,
//! exactly once. A record that decodes to nothing is done as soon as the
//! pipeline drops the `Ack` it was given.
//!
//! Dropping is completion, so a pipeline stage must not drop an `Ack` it has
//! not finished with: the service makes a panicking worker abort the process
//! rather than unwind (an unwinding drop would acknowledge unfinished work).
//! Pure: no I/O, no async runtime.

use std::future::Future;
use std::sync::Arc;

use crate::tenant::RecordMeta;

/// A shared completion token; see the module docs.
#[derive(Clone)]
pub struct Ack(Arc<dyn Send + Sync>);

/// Runs its function when dropped, that is when the last clone of its
/// [`Ack`] is. The function lives in the `Arc`'s own allocation: one
/// allocation per record, not two (an `Arc` of a boxed closure).
struct OnDrop<F: FnOnce()>(Option<F>);

impl<F: FnOnce()> Drop for OnDrop<F> {
    fn drop(&mut self) {
        if let Some(f) = self.0.take() {
            f();
        }
    }
}

impl Ack {
    /// A token that runs `on_done` when its last clone is dropped.
    pub fn new(on_done: impl FnOnce() + Send + Sync + 'static) -> Self {
        Ack(Arc::new(OnDrop(Some(on_done))))
    }

    /// A token with nothing to report (replays, tests).
    pub fn none() -> Self {
        Ack(Arc::new(()))
    }

    /// Live clones of this token (diagnostics and tests).
    pub fn holders(&self) -> usize {
        Arc::strong_count(&self.0)
    }
}

impl std::fmt::Debug for Ack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Ack(holders={})", self.holders())
    }
}

/// The pipeline stopped accepting records (shutdown or a failed stage).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the pipeline is closed")]
pub struct Closed;

/// Where an input hands its records. `submit` returns once the record is
/// accepted (decoded and queued — it waits while the pipeline is full, which
/// is how backpressure reaches the source); completion is reported later
/// through the record's [`Ack`]. A sink may hold accepted records back to
/// batch them: an input calls `flush` before it waits for more records (and
/// before it waits for acknowledgements), so nothing it submitted stays held.
pub trait RecordSink: Send {
    fn submit(
        &mut self,
        payload: &[u8],
        meta: &RecordMeta<'_>,
        ack: Ack,
    ) -> impl Future<Output = Result<(), Closed>> + Send;

    /// Passes on every record held back for batching.
    fn flush(&mut self) -> impl Future<Output = Result<(), Closed>> + Send {
        std::future::ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn runs_once_when_the_last_clone_drops() {
        let n = Arc::new(AtomicUsize::new(0));
        let a = {
            let n = n.clone();
            Ack::new(move || {
                n.fetch_add(1, Ordering::SeqCst);
            })
        };
        let b = a.clone();
        let c = b.clone();
        drop(a);
        drop(c);
        assert_eq!(n.load(Ordering::SeqCst), 0);
        let t = std::thread::spawn(move || drop(b));
        t.join().unwrap();
        assert_eq!(n.load(Ordering::SeqCst), 1);
    }
}
