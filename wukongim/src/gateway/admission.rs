//! The client connection cap (`conn.maxConnections`, TCP and WebSocket together): a connection
//! holds a [`Slot`] for its whole life; past the cap a new TCP connection is closed at once and a
//! WebSocket upgrade is answered 503, each counted in `wukongim_client_connections_refused`.

use prometheus_client::metrics::counter::Counter;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// Open client connections and refusals.
#[derive(Debug, Default)]
pub struct Admission {
    open: Arc<AtomicUsize>,
    pub refused: Counter,
}

/// One admitted connection; dropping it frees its place.
#[derive(Debug)]
pub struct Slot(Arc<AtomicUsize>);

impl Admission {
    /// A slot when fewer than `max` connections are open; else `None` (and counted).
    pub fn try_admit(&self, max: usize) -> Option<Slot> {
        let admitted = self
            .open
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .is_ok();
        if admitted {
            Some(Slot(self.open.clone()))
        } else {
            self.refused.inc();
            None
        }
    }

    /// Connections holding a slot now.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Acquire)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_holds_and_frees_on_drop() {
        let a = Admission::default();
        let s1 = a.try_admit(2).unwrap();
        let _s2 = a.try_admit(2).unwrap();
        assert!(a.try_admit(2).is_none());
        assert_eq!(a.refused.get(), 1);
        drop(s1);
        assert_eq!(a.open(), 1);
        assert!(a.try_admit(2).is_some());
    }
}
