//! Caps on open event streams: a user may hold so many `/events` streams and a device so
//! many device streams at once. Each open stream holds a [`StreamSlot`]; dropping the
//! stream (the client went away, the server shuts down) gives the slot back. Counted in
//! memory per web process, like the API rate limit: with several replicas each process
//! admits its own share.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use ender_core::account::UserId;
use ender_core::device::DeviceId;

/// Whose streams are counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StreamOwner {
    User(UserId),
    Device(DeviceId),
}

/// The open streams of every owner in this process.
#[derive(Debug, Default)]
pub struct StreamSlots {
    open: Mutex<HashMap<StreamOwner, usize>>,
}

/// One open stream of an owner; the count goes down when it is dropped.
#[derive(Debug)]
pub struct StreamSlot {
    slots: Arc<StreamSlots>,
    owner: StreamOwner,
}

/// The owner already holds its maximum of open streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooManyStreams {
    pub max: usize,
}

impl StreamSlots {
    /// Takes a slot for `owner` unless it already holds `max` open streams.
    pub fn take(self: &Arc<Self>, owner: StreamOwner, max: usize) -> Result<StreamSlot, TooManyStreams> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let count = open.entry(owner).or_insert(0);
        if *count >= max {
            if *count == 0 {
                open.remove(&owner);
            }
            return Err(TooManyStreams { max });
        }
        *count += 1;
        Ok(StreamSlot {
            slots: Arc::clone(self),
            owner,
        })
    }

    /// The streams `owner` holds open now.
    pub fn open(&self, owner: StreamOwner) -> usize {
        let open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        open.get(&owner).copied().unwrap_or(0)
    }
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        let mut open = self.slots.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(count) = open.get_mut(&self.owner) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.remove(&self.owner);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dropped_slot_lets_the_next_stream_in() {
        let slots = Arc::new(StreamSlots::default());
        let alice = StreamOwner::User(UserId(uuid::Uuid::new_v4()));
        let bob = StreamOwner::User(UserId(uuid::Uuid::new_v4()));
        let first = slots.take(alice, 2).unwrap();
        let _second = slots.take(alice, 2).unwrap();
        assert_eq!(slots.take(alice, 2).unwrap_err(), TooManyStreams { max: 2 });
        assert!(slots.take(bob, 2).is_ok(), "each owner has its own count");
        drop(first);
        assert_eq!(slots.open(alice), 1);
        assert!(slots.take(alice, 2).is_ok());
        assert_eq!(slots.take(bob, 0).unwrap_err(), TooManyStreams { max: 0 });
        assert!(slots.open.lock().unwrap().get(&bob).is_none());
    }
}
