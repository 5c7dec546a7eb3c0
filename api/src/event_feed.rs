//! Reading a job's event stream for a subscriber: everything after the event id it last saw
//! (`0` for the whole history), then new events as they are appended, until the `done` event,
//! the job's record expiring, or the api closing. Each subscriber has its own connection,
//! because a blocking XREAD holds it.

use futures_util::Stream;
use rce_protocol::events::{EventKind, FIELD_DATA, FIELD_KIND};
use rce_protocol::redis_keys;
use rce_service::backoff::Backoff;
use redis::aio::MultiplexedConnection;
use redis::streams::{StreamReadOptions, StreamReadReply};
use std::collections::VecDeque;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// One event as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredEvent {
    /// The Redis stream id: what a client resumes from (`Last-Event-ID`).
    pub id: String,
    pub kind: EventKind,
    pub data: String,
}

/// How long one blocking read waits before checking the job still exists.
const BLOCK: Duration = Duration::from_secs(5);
const BATCH: usize = 512;

/// A stream id (`<ms>-<seq>`, each a u64 as Redis has them), the only thing `Last-Event-ID`
/// may be; `None` for anything else, out-of-range numbers included (Redis would refuse them on
/// every read, and the subscriber would retry forever).
pub fn parse_event_id(id: &str) -> Option<(u64, u64)> {
    let (ms, seq) = id.split_once('-')?;
    let number = |s: &str| {
        (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse::<u64>().ok())
            .flatten()
    };
    Some((number(ms)?, number(seq)?))
}

/// Whether `id` is a stream id: see [`parse_event_id`].
pub fn is_event_id(id: &str) -> bool {
    parse_event_id(id).is_some()
}

/// Whether job `job_id`'s stream ended (its last event is `done`) at or before event `from`:
/// then a subscriber resuming from there has nothing more to get, ever. A browser's
/// `EventSource` resumes from the `done` event's id when the stream closes, and must be told so
/// rather than kept waiting.
pub async fn ended_by(
    client: &redis::Client,
    job_id: &str,
    from: &str,
) -> redis::RedisResult<bool> {
    let Some(from) = parse_event_id(from) else {
        return Ok(false);
    };
    let mut conn = client.get_multiplexed_async_connection().await?;
    let last: redis::streams::StreamRangeReply = redis::cmd("XREVRANGE")
        .arg(redis_keys::events(job_id))
        .arg("+")
        .arg("-")
        .arg("COUNT")
        .arg(1)
        .query_async(&mut conn)
        .await?;
    Ok(last.ids.first().is_some_and(|entry| {
        let kind: Option<String> = entry.get(FIELD_KIND);
        kind.as_deref().and_then(EventKind::parse) == Some(EventKind::Done)
            && parse_event_id(&entry.id).is_some_and(|done| done <= from)
    }))
}

struct Feed {
    client: redis::Client,
    conn: Option<MultiplexedConnection>,
    job_id: String,
    last: String,
    buffered: VecDeque<StoredEvent>,
    finished: bool,
    /// Whether the first read checked that the subscriber is not resuming after `done`.
    started: bool,
    stop: CancellationToken,
    /// Between reconnects while Redis is unreachable: the stream stays open and resumes from
    /// `last` once Redis answers again.
    backoff: Backoff,
}

/// The events of job `job_id` after `from`, live, ending after `done`.
pub fn follow(
    client: redis::Client,
    job_id: String,
    from: String,
    stop: CancellationToken,
) -> impl Stream<Item = StoredEvent> + Send {
    let feed = Feed {
        client,
        conn: None,
        job_id,
        last: from,
        buffered: VecDeque::new(),
        finished: false,
        started: false,
        stop,
        backoff: Backoff::reconnect(),
    };
    futures_util::stream::unfold(feed, |mut feed| async move {
        let event = feed.next().await?;
        Some((event, feed))
    })
}

impl Feed {
    async fn next(&mut self) -> Option<StoredEvent> {
        if !self.started {
            self.started = true;
            if self.last != "0"
                && ended_by(&self.client, &self.job_id, &self.last).await == Ok(true)
            {
                self.finished = true;
            }
        }
        loop {
            if let Some(event) = self.buffered.pop_front() {
                if event.kind == EventKind::Done {
                    self.finished = true;
                    self.buffered.clear();
                }
                return Some(event);
            }
            if self.finished || self.stop.is_cancelled() {
                return None;
            }
            let stop = self.stop.clone();
            tokio::select! {
                _ = stop.cancelled() => return None,
                read = self.read() => match read {
                    Ok(true) => self.backoff.reset(),
                    // Nothing new: the job may have expired, in which case nothing ever comes.
                    Ok(false) => {
                        self.backoff.reset();
                        if !self.job_exists().await {
                            return None;
                        }
                    }
                    Err(e) => {
                        tracing::warn!(job_id = %self.job_id, error = %e, "event stream read failed");
                        self.conn = None;
                        tokio::time::sleep(self.backoff.next_delay()).await;
                    }
                },
            }
        }
    }

    async fn connection(&mut self) -> redis::RedisResult<&mut MultiplexedConnection> {
        if self.conn.is_none() {
            let name = rce_service::redis_conn::events_reader_name(&self.job_id);
            let conn = rce_service::redis_conn::blocking_reader(&self.client, BLOCK, &name).await?;
            self.conn = Some(conn);
        }
        Ok(self.conn.as_mut().expect("connected above"))
    }

    /// One blocking read; true if it buffered events.
    async fn read(&mut self) -> redis::RedisResult<bool> {
        let key = redis_keys::events(&self.job_id);
        let last = self.last.clone();
        let options = StreamReadOptions::default()
            .block(BLOCK.as_millis() as usize)
            .count(BATCH);
        let conn = self.connection().await?;
        let reply: Option<StreamReadReply> =
            redis::AsyncCommands::xread_options(conn, &[&key], &[&last], &options).await?;
        let mut any = false;
        for entry in reply.into_iter().flat_map(|r| r.keys).flat_map(|k| k.ids) {
            self.last = entry.id.clone();
            let kind: Option<String> = entry.get(FIELD_KIND);
            let Some(kind) = kind.as_deref().and_then(EventKind::parse) else {
                continue;
            };
            let data: String = entry.get(FIELD_DATA).unwrap_or_default();
            self.buffered.push_back(StoredEvent {
                id: entry.id,
                kind,
                data,
            });
            any = true;
        }
        Ok(any)
    }

    async fn job_exists(&mut self) -> bool {
        let key = redis_keys::job(&self.job_id);
        match self.connection().await {
            Ok(conn) => redis::cmd("EXISTS")
                .arg(key)
                .query_async::<i32>(conn)
                .await
                .map_or(true, |n| n == 1),
            Err(_) => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_ids() {
        assert!(is_event_id("1700000000000-0"));
        assert!(is_event_id("0-0"));
        assert_eq!(
            parse_event_id("18446744073709551615-7"),
            Some((u64::MAX, 7))
        );
        for bad in [
            "",
            "0",
            "-1",
            "1-",
            "a-1",
            "1-2-3",
            "1 -2",
            "99999999999999999999999-0",
            "+1-0",
        ] {
            assert!(!is_event_id(bad), "{bad:?}");
        }
    }
}
