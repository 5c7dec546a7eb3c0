//! Waking `wait=true` requests when their job ends, on whichever api instance they wait.
//!
//! The recorder PUBLISHes each finished job id on `rce:done`; every api instance subscribes and
//! wakes its local waiters. A waiter registers before its job is published, so it cannot miss the
//! announcement; if the subscription is down, waiters fall back to reading the record when their
//! wait runs out.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

#[derive(Clone, Default)]
pub struct Completions {
    waiters: Arc<Mutex<HashMap<String, Vec<oneshot::Sender<()>>>>>,
}

impl Completions {
    /// A receiver that resolves when `id` is announced.
    pub fn register(&self, id: &str) -> oneshot::Receiver<()> {
        let (tx, rx) = oneshot::channel();
        self.waiters
            .lock()
            .expect("waiters lock")
            .entry(id.to_string())
            .or_default()
            .push(tx);
        rx
    }

    /// Drops the registration of a waiter that gave up.
    pub fn forget(&self, id: &str) {
        self.waiters.lock().expect("waiters lock").remove(id);
    }

    pub fn notify(&self, id: &str) {
        let senders = self.waiters.lock().expect("waiters lock").remove(id);
        for tx in senders.into_iter().flatten() {
            let _ = tx.send(());
        }
    }

    /// Follows the done channel until `stop`, resubscribing with backoff after Redis faults.
    pub async fn follow(self, client: redis::Client, stop: CancellationToken) {
        let channel = rce_protocol::redis_keys::DONE_CHANNEL;
        rce_service::pubsub::follow(client, channel, stop, |payload| {
            if let Ok(id) = String::from_utf8(payload) {
                self.notify(&id);
            }
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn notify_wakes_every_waiter_of_that_id_only() {
        let c = Completions::default();
        let a1 = c.register("a");
        let a2 = c.register("a");
        let mut b = c.register("b");
        c.notify("a");
        a1.await.unwrap();
        a2.await.unwrap();
        assert!(b.try_recv().is_err(), "b was not announced");
    }
}
