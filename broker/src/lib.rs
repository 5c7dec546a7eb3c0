//! The RabbitMQ side of the service, shared by api and runner so both declare the same topology
//! (whichever starts first creates it) and publish the same way: persistent messages, each one
//! confirmed by the broker before the caller moves on.

use lapin::options::{
    BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions, QueueBindOptions,
    QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{
    BasicProperties, Channel, Confirmation, Connection, ConnectionProperties, ExchangeKind,
};
use rce_protocol::topology::{Messaging, Topology};
use std::time::Duration;

mod link;
pub use link::{BrokerLink, Session, PUBLISH_TIMEOUT};

/// AMQP delivery mode 2: the broker writes the message to disk before confirming it.
const PERSISTENT: u8 = 2;

#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("rabbitmq: {0}")]
    Amqp(#[from] lapin::Error),
    /// The broker refused the message: for a job queue with `x-overflow: reject-publish`, the
    /// queue is full.
    #[error("the broker refused the message (queue full)")]
    Refused,
    #[error("the message could not be routed to any queue")]
    Unroutable,
    #[error("not connected to rabbitmq")]
    Unavailable,
    #[error("rabbitmq did not answer in time")]
    Timeout,
    /// The queue exists with other arguments than topology.yaml gives it (RabbitMQ refuses to
    /// change a queue's arguments in place).
    #[error("queue {queue} exists with arguments other than topology.yaml's ({source}); delete it (rabbitmqctl delete_queue {queue}) or restore the old values")]
    QueueMismatch { queue: String, source: lapin::Error },
}

/// Connects, retrying with backoff until `patience` runs out, so a service started just before
/// RabbitMQ finishes booting does not die.
pub async fn connect(url: &str, name: &str, patience: Duration) -> Result<Connection, BrokerError> {
    let started = tokio::time::Instant::now();
    let mut backoff = rce_service::backoff::Backoff::reconnect();
    loop {
        let props = ConnectionProperties::default().with_connection_name(name.into());
        let delay = backoff.next_delay();
        match Connection::connect(url, props).await {
            Ok(conn) => return Ok(conn),
            Err(e) if started.elapsed() + delay < patience => {
                tracing::warn!(error = %e, retry_in_ms = delay.as_millis() as u64, "rabbitmq not reachable yet");
                tokio::time::sleep(delay).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
}

fn text(s: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(s))
}

fn durable_queue() -> QueueDeclareOptions {
    QueueDeclareOptions {
        durable: true,
        ..Default::default()
    }
}

/// Declares every exchange and queue of the topology, idempotently.
pub async fn declare_topology(channel: &Channel, topology: &Topology) -> Result<(), BrokerError> {
    let m = &topology.messaging;
    let durable = ExchangeDeclareOptions {
        durable: true,
        ..Default::default()
    };
    for (name, kind) in [
        (&m.jobs_exchange, ExchangeKind::Topic),
        (&m.results_exchange, ExchangeKind::Topic),
        (&m.dead_letter_exchange, ExchangeKind::Fanout),
    ] {
        channel
            .exchange_declare(name.as_str().into(), kind, durable, FieldTable::default())
            .await?;
    }
    let mut quorum = FieldTable::default();
    quorum.insert("x-queue-type".into(), text("quorum"));
    declare_bound(
        channel,
        &m.dead_letter_queue,
        quorum.clone(),
        &m.dead_letter_exchange,
        "",
    )
    .await?;
    declare_bound(
        channel,
        &m.recorder_queue,
        quorum.clone(),
        &m.results_exchange,
        "result.#",
    )
    .await?;
    for language in topology.all_languages() {
        declare_bound(
            channel,
            &m.job_queue(&language.id),
            job_queue_arguments(m, language.queue_max_length),
            &m.jobs_exchange,
            &Messaging::job_routing_key(&language.id),
        )
        .await?;
    }
    Ok(())
}

/// Arguments of a per-language job queue (design.md, "Messaging"): at most `max_length` ready
/// jobs; past that the broker nacks the publish (`reject-publish`), which the api turns into a
/// 503, rather than dropping a job it already accepted (`drop-head`).
pub fn job_queue_arguments(m: &Messaging, max_length: u32) -> FieldTable {
    let mut args = FieldTable::default();
    args.insert("x-queue-type".into(), text("quorum"));
    args.insert(
        "x-delivery-limit".into(),
        AMQPValue::LongInt(m.delivery_limit as i32),
    );
    args.insert(
        "x-dead-letter-exchange".into(),
        text(&m.dead_letter_exchange),
    );
    args.insert("x-max-length".into(), AMQPValue::LongInt(max_length as i32));
    args.insert("x-overflow".into(), text("reject-publish"));
    args
}

async fn declare_bound(
    channel: &Channel,
    queue: &str,
    args: FieldTable,
    exchange: &str,
    routing_key: &str,
) -> Result<(), BrokerError> {
    channel
        .queue_declare(queue.into(), durable_queue(), args)
        .await
        .map_err(|source| {
            if is_precondition_failed(&source) {
                BrokerError::QueueMismatch {
                    queue: queue.to_string(),
                    source,
                }
            } else {
                source.into()
            }
        })?;
    channel
        .queue_bind(
            queue.into(),
            exchange.into(),
            routing_key.into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
    Ok(())
}

/// RabbitMQ's answer to redeclaring a queue with other arguments (AMQP reply code 406).
fn is_precondition_failed(e: &lapin::Error) -> bool {
    matches!(e.kind(), lapin::ErrorKind::ProtocolError(amqp) if amqp.get_id() == 406)
}

/// A channel in confirm mode: every publish waits for the broker's ack.
#[derive(Clone)]
pub struct ConfirmedPublisher {
    channel: Channel,
}

impl ConfirmedPublisher {
    pub async fn new(connection: &Connection) -> Result<Self, BrokerError> {
        let channel = connection.create_channel().await?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        Ok(Self { channel })
    }

    pub fn channel(&self) -> &Channel {
        &self.channel
    }

    /// Publishes a persistent JSON message tagged with `message_id` (the job id) and returns once
    /// the broker has taken responsibility for it.
    pub async fn publish_json(
        &self,
        exchange: &str,
        routing_key: &str,
        message_id: &str,
        payload: &[u8],
    ) -> Result<(), BrokerError> {
        let properties = BasicProperties::default()
            .with_delivery_mode(PERSISTENT)
            .with_content_type(ShortString::from("application/json"))
            .with_message_id(ShortString::from(message_id));
        let confirm = self
            .channel
            .basic_publish(
                exchange.into(),
                routing_key.into(),
                BasicPublishOptions {
                    mandatory: true,
                    ..Default::default()
                },
                payload,
                properties,
            )
            .await?
            .await?;
        match confirm {
            Confirmation::Ack(None) | Confirmation::NotRequested => Ok(()),
            Confirmation::Ack(Some(_)) => Err(BrokerError::Unroutable),
            Confirmation::Nack(_) => Err(BrokerError::Refused),
        }
    }
}
