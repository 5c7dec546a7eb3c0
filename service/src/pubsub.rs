//! Following one Redis pub/sub channel for the life of the process: api instances follow the
//! done channel, runners the control channel. A subscription that drops (Redis restarted, network
//! fault) is re-established with backoff; messages published meanwhile are lost, which is why
//! neither channel carries anything that is not also recorded elsewhere.

use crate::backoff::Backoff;
use futures_util::StreamExt;
use tokio_util::sync::CancellationToken;

/// Calls `on_message` with the payload of every message on `channel` until `stop`.
pub async fn follow(
    client: redis::Client,
    channel: &str,
    stop: CancellationToken,
    mut on_message: impl FnMut(Vec<u8>),
) {
    let mut backoff = Backoff::reconnect();
    while !stop.is_cancelled() {
        match client.get_async_pubsub().await {
            Ok(mut pubsub) => match pubsub.subscribe(channel).await {
                Ok(()) => {
                    backoff.reset();
                    let mut messages = pubsub.on_message();
                    loop {
                        tokio::select! {
                            _ = stop.cancelled() => return,
                            msg = messages.next() => match msg {
                                Some(msg) => on_message(msg.get_payload().unwrap_or_default()),
                                None => break,
                            },
                        }
                    }
                    tracing::warn!(%channel, "subscription ended; resubscribing");
                }
                Err(e) => tracing::warn!(%channel, error = %e, "cannot subscribe"),
            },
            Err(e) => tracing::warn!(error = %e, "redis pub/sub unreachable"),
        }
        if backoff.wait(&stop).await {
            return;
        }
    }
}
