//! A RabbitMQ connection that heals itself. RabbitMQ restarts (upgrades, node failover, a
//! memory alarm that ends in a crash) must cost clients a few 503s, never a process restart:
//! [`BrokerLink`] owns the connection, notices when it dies, and reconnects with jittered
//! backoff, redeclaring the topology each time (a broker rebuilt from nothing has none).
//! Publishers ask it for the current session per publish; consumers wait for a session, consume
//! until it dies, and come back for the next one.

use crate::{connect, declare_topology, BrokerError, ConfirmedPublisher};
use futures_util::StreamExt;
use lapin::{Connection, ConnectionProperties, Event};
use rce_protocol::topology::Topology;
use rce_service::backoff::Backoff;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// Longest a publish may wait for the broker's confirm. A broker under a memory or disk alarm
/// blocks publishers without closing the connection; past this the caller gets
/// [`BrokerError::Timeout`] (a 503 for clients) instead of hanging.
pub const PUBLISH_TIMEOUT: Duration = Duration::from_secs(10);

/// How long one reconnect attempt (TCP, AMQP handshake, topology) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How often the supervisor looks at the connection's state, besides listening for its errors.
const CHECK_EVERY: Duration = Duration::from_secs(1);

/// One live connection and its confirm-mode publishing channel.
pub struct Session {
    pub connection: Connection,
    pub publisher: ConfirmedPublisher,
}

impl Session {
    /// Both the connection and its publishing channel must be up: a channel-level error (a
    /// deleted exchange, an oversized message) closes the channel but not the connection, and
    /// would otherwise fail every later publish while the link looked healthy.
    fn alive(&self) -> bool {
        self.connection.status().connected() && self.publisher.channel().status().connected()
    }
}

/// The process's link to RabbitMQ; cheap to clone, every clone sees the same connection.
#[derive(Clone)]
pub struct BrokerLink {
    current: watch::Receiver<Option<Arc<Session>>>,
}

impl BrokerLink {
    /// Connects (waiting up to `patience` for the first connection, so a wrong URL still fails
    /// the start loudly), declares the topology, then keeps the link up until `stop`.
    pub async fn start(
        url: &str,
        name: &str,
        topology: Arc<Topology>,
        patience: Duration,
        stop: CancellationToken,
    ) -> Result<Self, BrokerError> {
        let connection = connect(url, name, patience).await?;
        let first = open_session(connection, &topology).await?;
        let (tx, rx) = watch::channel(Some(Arc::new(first)));
        let (url, name) = (url.to_string(), name.to_string());
        tokio::spawn(async move { supervise(tx, &url, &name, &topology, stop).await });
        Ok(Self { current: rx })
    }

    /// Whether a connection is up right now.
    pub fn connected(&self) -> bool {
        self.session().is_some()
    }

    /// The current session, if its connection is up.
    pub fn session(&self) -> Option<Arc<Session>> {
        self.current.borrow().clone().filter(|s| s.alive())
    }

    /// Waits for a live session; `None` once `stop` fires.
    pub async fn next_session(&self, stop: &CancellationToken) -> Option<Arc<Session>> {
        let mut rx = self.current.clone();
        loop {
            if let Some(s) = rx.borrow_and_update().clone().filter(|s| s.alive()) {
                return Some(s);
            }
            tokio::select! {
                _ = stop.cancelled() => return None,
                changed = rx.changed() => if changed.is_err() { return None },
                // The supervisor may not have noticed the death yet.
                _ = tokio::time::sleep(CHECK_EVERY) => {}
            }
        }
    }

    /// Publishes a persistent message on the current session and waits for its confirm (see
    /// [`ConfirmedPublisher::publish_json`]); [`BrokerError::Unavailable`] when disconnected.
    pub async fn publish_json(
        &self,
        exchange: &str,
        routing_key: &str,
        message_id: &str,
        payload: &[u8],
    ) -> Result<(), BrokerError> {
        let session = self.session().ok_or(BrokerError::Unavailable)?;
        let publish = session
            .publisher
            .publish_json(exchange, routing_key, message_id, payload);
        tokio::time::timeout(PUBLISH_TIMEOUT, publish)
            .await
            .map_err(|_| BrokerError::Timeout)?
    }

    /// Closes the current connection cleanly (unacked deliveries return to their queues at
    /// once, instead of when the broker notices a dead socket).
    pub async fn close(&self) {
        if let Some(s) = self.session() {
            s.connection.close(200, "bye".into()).await.ok();
        }
    }
}

async fn open_session(connection: Connection, topology: &Topology) -> Result<Session, BrokerError> {
    let setup = connection.create_channel().await?;
    declare_topology(&setup, topology).await?;
    setup.close(200, "declared".into()).await.ok();
    let publisher = ConfirmedPublisher::new(&connection).await?;
    Ok(Session {
        connection,
        publisher,
    })
}

async fn reconnect_once(
    url: &str,
    name: &str,
    topology: &Topology,
) -> Result<Session, BrokerError> {
    let attempt = async {
        let props = ConnectionProperties::default().with_connection_name(name.into());
        let connection = Connection::connect(url, props).await?;
        open_session(connection, topology).await
    };
    tokio::time::timeout(CONNECT_TIMEOUT, attempt)
        .await
        .map_err(|_| BrokerError::Timeout)?
}

/// Watches the current session; when it dies, withdraws it and reconnects with backoff.
async fn supervise(
    tx: watch::Sender<Option<Arc<Session>>>,
    url: &str,
    name: &str,
    topology: &Topology,
    stop: CancellationToken,
) {
    let mut backoff = Backoff::reconnect();
    loop {
        let current = tx.borrow().clone();
        if let Some(session) = current {
            let mut events = session.connection.events_listener();
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(CHECK_EVERY) => if !session.alive() { break },
                    event = events.next() => match event {
                        Some(Event::Error(e)) => {
                            tracing::warn!(error = %e, "rabbitmq connection error");
                            if !session.alive() { break }
                        }
                        Some(Event::ConnectionBlocked(reason)) => {
                            tracing::warn!(%reason, "rabbitmq blocked publishing (resource alarm)");
                        }
                        Some(Event::ConnectionUnblocked) => tracing::info!("rabbitmq unblocked publishing"),
                        Some(_) => {}
                        None => break,
                    },
                }
            }
            tracing::warn!("rabbitmq connection lost; reconnecting");
            tx.send_replace(None);
            // Its publisher may have died alone: do not leave the connection behind.
            session.connection.close(200, "replaced".into()).await.ok();
        }
        loop {
            if backoff.wait(&stop).await {
                return;
            }
            let attempt = tokio::select! {
                _ = stop.cancelled() => return,
                attempt = reconnect_once(url, name, topology) => attempt,
            };
            match attempt {
                Ok(session) if stop.is_cancelled() => {
                    session.connection.close(200, "bye".into()).await.ok();
                    return;
                }
                Ok(session) => {
                    tracing::info!("rabbitmq connection re-established");
                    tx.send_replace(Some(Arc::new(session)));
                    backoff.reset();
                    break;
                }
                Err(e) => tracing::warn!(error = %e, "rabbitmq still unreachable"),
            }
        }
    }
}
