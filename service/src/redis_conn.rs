//! The one way every binary opens its shared Redis connection: lazily (a process may start while
//! Redis is down, and come up as soon as it is back) and self-healing, with jittered
//! exponential reconnects and timeouts, so a dead or hung Redis turns into quick errors (503s
//! for clients) rather than requests that hang.

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use std::time::Duration;

/// A request slower than this fails: Redis answers in microseconds when healthy.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(5);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// A connection manager that connects on first use and reconnects after every failure.
pub fn manager(client: &redis::Client) -> redis::RedisResult<ConnectionManager> {
    let config = ConnectionManagerConfig::new()
        .set_min_delay(Duration::from_millis(100))
        .set_max_delay(Duration::from_secs(5))
        // Every request waits on a reconnect in progress: retrying long inside one would turn
        // an outage into slow requests. One quick retry; the next request tries again.
        .set_number_of_retries(1)
        .set_response_timeout(Some(RESPONSE_TIMEOUT))
        .set_connection_timeout(Some(CONNECT_TIMEOUT));
    ConnectionManager::new_lazy_with_config(client.clone(), config)
}

/// How much longer than its `BLOCK` a blocking read may take before it counts as failed: the
/// reply to an `XREAD BLOCK` arrives when the block ends, plus a round trip.
const BLOCKING_GRACE: Duration = Duration::from_secs(5);

/// A connection of its own for a reader that blocks in Redis (`XREAD BLOCK`) for up to `block`,
/// named `name` in Redis' `CLIENT LIST` (what an operator sees, and how the tests prove that one
/// connection lasts through a long silence).
///
/// The shared manager's response timeout (and redis' 500 ms default on a plain connection) is
/// shorter than a block: every idle read would time out, reconnect and back off, so output
/// printed after a silence would arrive seconds late. A blocking read holds its connection for
/// the whole block, so it cannot share the manager's multiplexed one either.
pub async fn blocking_reader(
    client: &redis::Client,
    block: Duration,
    name: &str,
) -> redis::RedisResult<redis::aio::MultiplexedConnection> {
    let config = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(CONNECT_TIMEOUT))
        .set_response_timeout(Some(block + BLOCKING_GRACE));
    let mut conn = client
        .get_multiplexed_async_connection_with_config(&config)
        .await?;
    redis::cmd("CLIENT")
        .arg("SETNAME")
        .arg(name)
        .query_async::<()>(&mut conn)
        .await?;
    Ok(conn)
}

/// The `CLIENT LIST` name of the api's reader of job `id`'s events.
pub fn events_reader_name(id: &str) -> String {
    format!("rce-api:events:{id}")
}

/// The `CLIENT LIST` name of the runner's reader of job `id`'s interactive input.
pub fn stdin_reader_name(id: &str) -> String {
    format!("rce-runner:stdin:{id}")
}
