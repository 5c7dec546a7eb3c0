//! What a Judge0 client sent with each submission ([`Echo`]), kept beside the job's record for as
//! long as it (`RCE_JOB_TTL_SECS`), and the index `GET /submissions` pages through.

use super::request::Echo;
use redis::aio::ConnectionManager;
use redis::AsyncCommands;
use std::time::Duration;

fn key(token: &str) -> String {
    format!("rce:judge0:{token}")
}

/// Tokens by creation time (milliseconds), newest last.
const INDEX: &str = "rce:judge0:index";

#[derive(Clone)]
pub struct Judge0Store {
    conn: ConnectionManager,
    ttl: Duration,
}

impl Judge0Store {
    pub fn new(conn: ConnectionManager, ttl: Duration) -> Self {
        Self { conn, ttl }
    }

    /// Stores `echo` for `token`, indexes it, and drops index entries past their lifetime.
    pub async fn put(&self, token: &str, echo: &Echo, created_ms: i64) -> redis::RedisResult<()> {
        let json = serde_json::to_string(echo).expect("an echo serializes");
        let oldest = created_ms - self.ttl.as_millis() as i64;
        redis::pipe()
            .set_ex(key(token), json, self.ttl.as_secs())
            .ignore()
            .zadd(INDEX, token, created_ms)
            .ignore()
            .zrembyscore(INDEX, "-inf", format!("({oldest}"))
            .ignore()
            .query_async::<()>(&mut self.conn.clone())
            .await
    }

    pub async fn get(&self, token: &str) -> redis::RedisResult<Option<Echo>> {
        let json: Option<String> = self.conn.clone().get(key(token)).await?;
        Ok(json.and_then(|j| serde_json::from_str(&j).ok()))
    }

    pub async fn delete(&self, token: &str) -> redis::RedisResult<()> {
        redis::pipe()
            .del(key(token))
            .ignore()
            .zrem(INDEX, token)
            .ignore()
            .query_async::<()>(&mut self.conn.clone())
            .await
    }

    /// Page `page` (1-based) of `per_page` tokens, newest first, and how many there are.
    pub async fn page(&self, page: u64, per_page: u64) -> redis::RedisResult<(Vec<String>, u64)> {
        let mut conn = self.conn.clone();
        let total: u64 = conn.zcard(INDEX).await?;
        if per_page == 0 {
            return Ok((Vec::new(), total));
        }
        let start = (page - 1).saturating_mul(per_page);
        let stop = start.saturating_add(per_page) - 1;
        let tokens: Vec<String> = conn
            .zrevrange(INDEX, start as isize, stop.min(isize::MAX as u64) as isize)
            .await?;
        Ok((tokens, total))
    }
}
