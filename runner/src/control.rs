//! Requests for jobs this runner holds: cancellation (announced on `redis_keys::CONTROL_CHANNEL`
//! to every runner; the one holding the job acts) and an interactive job's input (read from the
//! job's own stdin stream from the start, so input sent before the job started is not lost).

use rce_protocol::bytes::Base64Bytes;
use rce_protocol::events::{ControlAction, ControlMessage, STDIN_EOF};
use rce_protocol::redis_keys;
use rce_protocol::shim::ShimControl;
use rce_service::backoff::Backoff;
use redis::streams::{StreamReadOptions, StreamReadReply};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

type Senders = Arc<Mutex<HashMap<String, mpsc::UnboundedSender<ShimControl>>>>;

/// Routes control requests to the jobs this runner is running.
#[derive(Clone, Default)]
pub struct ControlHub {
    jobs: Senders,
}

/// A job's registration; dropping it unregisters the job.
pub struct Registration {
    jobs: Senders,
    id: String,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.jobs.lock().expect("control lock").remove(&self.id);
    }
}

impl ControlHub {
    /// Registers job `id` before it is marked running, so a cancel announced once it is running
    /// always finds it; returns the registration and the job's control channel (the sender is
    /// for the job's own input forwarder). `None` if this runner already runs the job: a
    /// redelivery that reached the runner still running the first delivery (after a broker
    /// reconnection) must wait for it, not run beside it.
    pub fn try_register(
        &self,
        id: &str,
    ) -> Option<(
        Registration,
        mpsc::UnboundedSender<ShimControl>,
        mpsc::UnboundedReceiver<ShimControl>,
    )> {
        let mut jobs = self.jobs.lock().expect("control lock");
        if jobs.contains_key(id) {
            return None;
        }
        let (tx, rx) = mpsc::unbounded_channel();
        jobs.insert(id.to_string(), tx.clone());
        let registration = Registration {
            jobs: Arc::clone(&self.jobs),
            id: id.to_string(),
        };
        Some((registration, tx, rx))
    }

    /// A sender for job `id`'s control channel, if this runner holds it.
    fn sender(&self, id: &str) -> Option<mpsc::UnboundedSender<ShimControl>> {
        self.jobs.lock().expect("control lock").get(id).cloned()
    }

    fn dispatch(&self, message: ControlMessage) {
        let Some(tx) = self.sender(&message.job_id) else {
            return;
        };
        match message.action {
            ControlAction::Cancel => {
                tracing::info!(job_id = %message.job_id, "cancel requested");
                let _ = tx.send(ShimControl::Cancel);
            }
        }
    }

    /// Follows the control channel until `stop`, resubscribing with backoff after Redis faults.
    pub async fn follow(self, client: redis::Client, stop: CancellationToken) {
        let channel = redis_keys::CONTROL_CHANNEL;
        rce_service::pubsub::follow(
            client,
            channel,
            stop,
            |payload| match serde_json::from_slice::<ControlMessage>(&payload) {
                Ok(m) => self.dispatch(m),
                Err(e) => tracing::warn!(error = %e, "malformed control message"),
            },
        )
        .await
    }
}

/// How long one read of a job's input waits in Redis; the task is dropped when the job ends, so
/// this only bounds how long a dead connection goes unnoticed.
const STDIN_BLOCK: Duration = Duration::from_secs(2);

/// Forwards job `id`'s interactive input to `tx` until end-of-input or until the task is
/// dropped (the job ended). Uses its own connection: XREAD BLOCK holds it.
pub async fn forward_stdin(
    client: redis::Client,
    id: String,
    tx: mpsc::UnboundedSender<ShimControl>,
) {
    let key = redis_keys::stdin(&id);
    let mut last = "0".to_string();
    let mut conn = None;
    let mut backoff = Backoff::reconnect();
    loop {
        if conn.is_none() {
            let name = rce_service::redis_conn::stdin_reader_name(&id);
            match rce_service::redis_conn::blocking_reader(&client, STDIN_BLOCK, &name).await {
                Ok(c) => conn = Some(c),
                Err(e) => {
                    tracing::warn!(error = %e, "stdin stream: redis unreachable");
                    tokio::time::sleep(backoff.next_delay()).await;
                    continue;
                }
            }
        }
        let c = conn.as_mut().expect("connected above");
        let options = StreamReadOptions::default()
            .block(STDIN_BLOCK.as_millis() as usize)
            .count(256);
        let reply: redis::RedisResult<Option<StreamReadReply>> =
            redis::AsyncCommands::xread_options(c, &[&key], &[&last], &options).await;
        let reply = match reply {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, "stdin stream read failed");
                conn = None;
                tokio::time::sleep(backoff.next_delay()).await;
                continue;
            }
        };
        backoff.reset();
        for entry in reply.into_iter().flat_map(|r| r.keys).flat_map(|k| k.ids) {
            last = entry.id.clone();
            let kind: Option<String> = entry.get("kind");
            if kind.as_deref() == Some(STDIN_EOF) {
                let _ = tx.send(ShimControl::StdinEof);
                return;
            }
            let data: Vec<u8> = entry.get("data").unwrap_or_default();
            if tx
                .send(ShimControl::Stdin {
                    data: Base64Bytes(data),
                })
                .is_err()
            {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cancel_reaches_only_the_registered_job() {
        let hub = ControlHub::default();
        let (registration, _tx, mut rx) = hub.try_register("a").unwrap();
        assert!(
            hub.try_register("a").is_none(),
            "a job runs once per runner"
        );
        hub.dispatch(ControlMessage {
            job_id: "b".into(),
            action: ControlAction::Cancel,
        });
        assert!(rx.try_recv().is_err());
        hub.dispatch(ControlMessage {
            job_id: "a".into(),
            action: ControlAction::Cancel,
        });
        assert_eq!(rx.try_recv().unwrap(), ShimControl::Cancel);
        drop(registration);
        assert!(hub.sender("a").is_none(), "unregistered on drop");
    }
}
