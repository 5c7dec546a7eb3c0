//! The job record, `rce:job:<id>` ([`crate::redis_keys::job`]): the one place that says which
//! fields the Redis hash has, which states its `status` goes through, who moves it from one state
//! to the next, and every Lua script that touches it. The api and the runner both write the
//! record (in Rust and in Lua), so its names live here and nowhere else; the tests below fail if
//! a script uses a field name or a state this module does not declare.
//!
//! # States
//!
//! `status` holds a [`JobStatus`] wire string (the same strings clients see): `queued`,
//! `running`, then one of the terminal `completed`, `failed`, `cancelled`. A record is terminal
//! exactly when its `result` field is set; every script checks `result` first, so nothing moves
//! a terminal record again (the first result wins), and the record only expires (its TTL is
//! counted again from the end).
//!
//! ```text
//!               (1)              (3)
//!   (none) ---------> queued ----------> running ---+
//!                      | | ^              | |  ^    | (4) (5) (8)
//!                      | | |     (6)      | |  +----+
//!                      | | +--------------+ |
//!                      | |                  | (7) (9)
//!                 (11) | | (2) (10)         v
//!                      | +-----------> completed | failed | cancelled
//!                      v
//!                   (gone)
//! ```
//!
//! | # | from | to | who | how |
//! |---|---|---|---|---|
//! | 1 | none | `queued` | api submit | `JobStore::create` (a MULTI pipeline, no script: HSET, EXPIRE, the `status queued` event) |
//! | 2 | `queued` | `cancelled` | api cancel | [`CANCEL_LUA`] (writes the cancelled `result` itself) |
//! | 3 | `queued` | `running` | runner claim | [`MARK_RUNNING_LUA`] (sets `owner`, `lease`, `attempt`, `started_at`) |
//! | 4 | `running` | `running` | runner lease, every third of it | [`RENEW_LEASE_LUA`] (only the `owner`) |
//! | 5 | `running` | `running` | runner claim of a redelivery whose lease lapsed (its runner died) | [`MARK_RUNNING_LUA`] (a new `owner`) |
//! | 6 | `running` | `queued` | runner requeue (the platform failed under the job) | [`MARK_REQUEUED_LUA`] (only the `owner`; drops `owner` and `lease`) |
//! | 7 | `running` | `completed`, `failed`, `cancelled` | recorder (a runner's result; first one wins) | [`RECORD_RESULT_LUA`] |
//! | 8 | `running` | `running`, flagged `cancel_requested` | api cancel | [`CANCEL_LUA`] (and the cancel on `rce:control`, in the same script); the runner's cancelled result then takes 7 |
//! | 9 | `running` | `failed` | stuck-job sweeper (past the deadline plus the margin) | [`RECORD_RESULT_LUA`] |
//! | 10 | `queued` | `failed` (or any result) | recorder (a dead letter, or a result whose claim could not be written), api submit (the broker's confirm was lost) | [`RECORD_RESULT_LUA`] |
//! | 11 | `queued` | gone | api submit (the broker surely lacks the job) | `JobStore::delete` (DEL) |
//!
//! A claim does not run a job whose record is terminal ([`claim_outcome::FINISHED`]), cancelled
//! or flagged `cancel_requested` ([`claim_outcome::CANCELLED`]), or held by another live run
//! ([`claim_outcome::BUSY`]). [`APPEND_EVENTS_LUA`] does not change the record; it only reads its
//! remaining lifetime for the event stream.
//!
//! Lua cannot see Rust constants, so the scripts spell the names out; the tests scan them.

pub use crate::result::JobStatus;

/// Field names of the `rce:job:<id>` hash.
pub mod field {
    /// The job id.
    pub const ID: &str = "id";
    /// The job's language.
    pub const LANGUAGE: &str = "language";
    /// When the job was submitted (RFC 3339, milliseconds).
    pub const CREATED_AT: &str = "created_at";
    /// A [`super::JobStatus`] wire string.
    pub const STATUS: &str = "status";
    /// When the latest run picked the job up (RFC 3339, milliseconds).
    pub const STARTED_AT: &str = "started_at";
    /// The attempt number of the latest run (the queue's delivery count).
    pub const ATTEMPT: &str = "attempt";
    /// The run (a token unique to one execution) that holds the job while it is `running`.
    pub const OWNER: &str = "owner";
    /// Until when [`OWNER`] holds the job: Unix ms in Redis's clock.
    pub const LEASE: &str = "lease";
    /// [`super::FLAG_SET`] when the job was submitted interactive.
    pub const INTERACTIVE: &str = "interactive";
    /// [`super::FLAG_SET`] once a cancel was requested while the job was running.
    pub const CANCEL_REQUESTED: &str = "cancel_requested";
    /// The first `ResultMessage` recorded for the job, as JSON; set means terminal.
    pub const RESULT: &str = "result";
    /// Where the job is sent when it ends (the api's webhook `Callback`, JSON); absent without
    /// one. Its presence makes the terminal scripts put the job on the webhook queue.
    pub const CALLBACK: &str = "callback";

    /// Every field.
    pub const ALL: [&str; 12] = [
        ID,
        LANGUAGE,
        CREATED_AT,
        STATUS,
        STARTED_AT,
        ATTEMPT,
        OWNER,
        LEASE,
        INTERACTIVE,
        CANCEL_REQUESTED,
        RESULT,
        CALLBACK,
    ];

    /// The fields that are flags: present ([`super::FLAG_SET`]) or absent.
    pub const FLAGS: [&str; 2] = [INTERACTIVE, CANCEL_REQUESTED];
}

/// The value of a flag field that is set.
pub const FLAG_SET: &str = "1";

/// Every state `status` can hold, in the order a job goes through them.
pub const STATES: [JobStatus; 5] = [
    JobStatus::Queued,
    JobStatus::Running,
    JobStatus::Completed,
    JobStatus::Failed,
    JobStatus::Cancelled,
];

/// The state a stored `status` names, if it names one.
pub fn parse_state(wire: &str) -> Option<JobStatus> {
    STATES.into_iter().find(|s| s.as_str() == wire)
}

/// What [`MARK_RUNNING_LUA`] answers.
pub mod claim_outcome {
    /// No record (expired, or never admitted): run it anyway, running is the safe side.
    pub const MISSING: i32 = 0;
    /// The job is now `running` under this run.
    pub const CLAIMED: i32 = 1;
    /// Cancelled while queued, or its cancel was requested: do not run it.
    pub const CANCELLED: i32 = 2;
    /// Its result is recorded: this delivery is a duplicate.
    pub const FINISHED: i32 = 3;
    /// Another run holds a live lease on it.
    pub const BUSY: i32 = 4;

    pub const ALL: [i32; 5] = [MISSING, CLAIMED, CANCELLED, FINISHED, BUSY];
}

/// What [`CANCEL_LUA`] answers.
pub mod cancel_outcome {
    /// No record.
    pub const MISSING: &str = "missing";
    /// Its result was already recorded; nothing changed.
    pub const FINISHED: &str = "finished";
    /// It was queued and now is `cancelled`.
    pub const CANCELLED: &str = "cancelled";
    /// It is running: flagged `cancel_requested`, and the runners were told.
    pub const REQUESTED: &str = "requested";

    pub const ALL: [&str; 4] = [MISSING, FINISHED, CANCELLED, REQUESTED];
}

/// Recorder and stuck-job sweeper (and the api when a publish's confirm was lost): stores the
/// result `ARGV[1]` in record `KEYS[1]` only if none is stored yet, with status `ARGV[2]`, identity
/// `ARGV[4]` (id), `ARGV[5]` (language), `ARGV[6]` (created_at) and TTL `ARGV[3]` s; appends the
/// `done` event (`ARGV[7]`, the job JSON) to the event stream `KEYS[3]` (trimmed to ~`ARGV[8]`),
/// then announces the job on the done channel `KEYS[2]`; a job with a `callback` joins the
/// webhook queue `KEYS[5]` (due now, by Redis's clock: first come, first served), in the same
/// step, so no terminal job with a callback is ever left unsent. Either way the job leaves the stuck-job sweeper's set `KEYS[4]`. Answers
/// 1 when this result was kept, 0 when one was already there.
pub const RECORD_RESULT_LUA: &str = r#"
redis.call('ZREM', KEYS[4], ARGV[4])
if redis.call('HSETNX', KEYS[1], 'result', ARGV[1]) == 1 then
  redis.call('HSET', KEYS[1], 'status', ARGV[2], 'id', ARGV[4], 'language', ARGV[5], 'created_at', ARGV[6])
  redis.call('EXPIRE', KEYS[1], ARGV[3])
  redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[8], '*', 'kind', 'done', 'data', ARGV[7])
  redis.call('EXPIRE', KEYS[3], ARGV[3])
  if redis.call('HEXISTS', KEYS[1], 'callback') == 1 then
    local t = redis.call('TIME')
    redis.call('ZADD', KEYS[5], 'NX', t[1] * 1000 + math.floor(t[2] / 1000), ARGV[4])
  end
  redis.call('PUBLISH', KEYS[2], ARGV[4])
  return 1
end
return 0
"#;

/// Api cancel of record `KEYS[1]`: a queued job ends here (`ARGV[1]` is its cancelled result,
/// `ARGV[2]` its `done` event, recorded as [`RECORD_RESULT_LUA`] would, on stream `KEYS[3]` trimmed
/// to ~`ARGV[4]`, announced as `ARGV[3]` on the done channel `KEYS[2]`); a running one is flagged
/// `cancel_requested` and the cancel (`ARGV[5]`) is announced on the control channel `KEYS[4]`, in
/// the same step, so no caller can flag a job and forget to tell its runner. A queued job with a
/// `callback` joins the webhook queue `KEYS[5]` as it ends. Answers a [`cancel_outcome`].
pub const CANCEL_LUA: &str = r#"
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return 'missing' end
if redis.call('HEXISTS', KEYS[1], 'result') == 1 then return 'finished' end
if status == 'queued' then
  redis.call('HSET', KEYS[1], 'result', ARGV[1], 'status', 'cancelled')
  redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[4], '*', 'kind', 'done', 'data', ARGV[2])
  local ttl = redis.call('PTTL', KEYS[1])
  if ttl > 0 then redis.call('PEXPIRE', KEYS[3], ttl) end
  if redis.call('HEXISTS', KEYS[1], 'callback') == 1 then
    local t = redis.call('TIME')
    redis.call('ZADD', KEYS[5], 'NX', t[1] * 1000 + math.floor(t[2] / 1000), ARGV[3])
  end
  redis.call('PUBLISH', KEYS[2], ARGV[3])
  return 'cancelled'
end
redis.call('HSET', KEYS[1], 'cancel_requested', '1')
redis.call('PUBLISH', KEYS[4], ARGV[5])
return 'requested'
"#;

/// Runner claim: picks record `KEYS[1]` up for attempt `ARGV[3]`, as run `ARGV[6]` (a token unique
/// to this execution), at `ARGV[1]`. A job whose result is recorded answers
/// [`claim_outcome::FINISHED`]: this delivery is a duplicate (redelivered after its runner
/// vanished, or published by an api that never got the broker's confirm) and must not run again. A
/// job cancelled while queued, or whose cancel was requested before a runner died with it, answers
/// [`claim_outcome::CANCELLED`]. A job another run holds a live lease on answers
/// [`claim_outcome::BUSY`]: the broker redelivered it (a connection died) while that run goes on.
/// Otherwise the job is `running` under this run's token with a lease of `ARGV[7]` ms (Redis's
/// clock, so runners' clocks do not matter), its event stream `KEYS[2]` (trimmed to ~`ARGV[2]`)
/// says which attempt this is, and its deadline `ARGV[4]` goes into the sweeper's set `KEYS[3]` as
/// member `ARGV[5]` (the job id).
pub const MARK_RUNNING_LUA: &str = r#"
if redis.call('HEXISTS', KEYS[1], 'result') == 1 then return 3 end
local status = redis.call('HGET', KEYS[1], 'status')
if status == 'cancelled' or redis.call('HEXISTS', KEYS[1], 'cancel_requested') == 1 then
  return 2
end
if not status then return 0 end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if status == 'running' then
  local owner = redis.call('HGET', KEYS[1], 'owner')
  local lease = tonumber(redis.call('HGET', KEYS[1], 'lease') or '0')
  if owner and owner ~= ARGV[6] and lease > now then return 4 end
end
redis.call('HSET', KEYS[1], 'status', 'running', 'started_at', ARGV[1], 'attempt', ARGV[3],
  'owner', ARGV[6], 'lease', now + tonumber(ARGV[7]))
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], '*', 'kind', 'status', 'data',
  '{"status":"running","attempt":' .. ARGV[3] .. '}')
local ttl = redis.call('PTTL', KEYS[1])
if ttl > 0 then redis.call('PEXPIRE', KEYS[2], ttl) end
redis.call('ZADD', KEYS[3], ARGV[4], ARGV[5])
return 1
"#;

/// Runner lease: extends run `ARGV[1]`'s lease on record `KEYS[1]` to `ARGV[2]` ms from now, while
/// it still holds it and no result is recorded. Answers 1 when renewed.
pub const RENEW_LEASE_LUA: &str = r#"
if redis.call('HGET', KEYS[1], 'owner') ~= ARGV[1] then return 0 end
if redis.call('HEXISTS', KEYS[1], 'result') == 1 then return 0 end
local t = redis.call('TIME')
redis.call('HSET', KEYS[1], 'lease', tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) + tonumber(ARGV[2]))
return 1
"#;

/// Runner requeue: hands record `KEYS[1]` back, `queued` again (a `status queued` event on stream
/// `KEYS[2]`, trimmed to ~`ARGV[1]`) and out of the sweeper's set `KEYS[3]` (member `ARGV[2]`),
/// only if run `ARGV[3]` still holds it (a newer pickup elsewhere must not be undone by a stale
/// hand-back). Answers 1 when handed back.
pub const MARK_REQUEUED_LUA: &str = r#"
if redis.call('HEXISTS', KEYS[1], 'result') == 1 then return 0 end
if redis.call('HGET', KEYS[1], 'owner') ~= ARGV[3] then return 0 end
redis.call('HSET', KEYS[1], 'status', 'queued')
redis.call('HDEL', KEYS[1], 'owner', 'lease')
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[1], '*', 'kind', 'status', 'data', '{"status":"queued"}')
redis.call('ZREM', KEYS[3], ARGV[2])
return 1
"#;

/// Runner live events: appends (kind, data) pairs from `ARGV[2..]` to the event stream `KEYS[1]`
/// (approximately trimmed to `ARGV[1]` entries), and gives it the remaining lifetime of the record
/// `KEYS[2]` (read only: the record itself is not changed).
pub const APPEND_EVENTS_LUA: &str = r#"
for i = 2, #ARGV, 2 do
  redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', 'kind', ARGV[i], 'data', ARGV[i + 1])
end
local ttl = redis.call('PTTL', KEYS[2])
if ttl > 0 then redis.call('PEXPIRE', KEYS[1], ttl) end
return 1
"#;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{EventKind, FIELD_DATA, FIELD_KIND};

    /// Every script above; a new one goes here too (the doc test below checks the names).
    const SCRIPTS: [(&str, &str); 6] = [
        ("RECORD_RESULT_LUA", RECORD_RESULT_LUA),
        ("CANCEL_LUA", CANCEL_LUA),
        ("MARK_RUNNING_LUA", MARK_RUNNING_LUA),
        ("RENEW_LEASE_LUA", RENEW_LEASE_LUA),
        ("MARK_REQUEUED_LUA", MARK_REQUEUED_LUA),
        ("APPEND_EVENTS_LUA", APPEND_EVENTS_LUA),
    ];

    /// Hash commands: they may only address the record, as `KEYS[1]`.
    const HASH_COMMANDS: [&str; 6] = ["HSET", "HSETNX", "HGET", "HMGET", "HEXISTS", "HDEL"];

    /// Words the scripts may quote that are not the record's: stream entry syntax.
    const STREAM_WORDS: [&str; 3] = ["MAXLEN", "~", "*"];

    /// One argument of a `redis.call`: a lone single-quoted literal, or any other expression.
    #[derive(Debug, Clone, PartialEq)]
    enum Arg {
        Quoted(String),
        Expr(String),
    }

    impl Arg {
        fn quoted(&self) -> Option<&str> {
            match self {
                Arg::Quoted(s) => Some(s),
                Arg::Expr(_) => None,
            }
        }
    }

    /// The end (exclusive) of the Lua string opened by the quote at byte `start`.
    fn string_end(lua: &str, start: usize) -> usize {
        let bytes = lua.as_bytes();
        let quote = bytes[start];
        let mut i = start + 1;
        while i < bytes.len() {
            match bytes[i] {
                b'\\' => i += 2,
                b if b == quote => return i + 1,
                _ => i += 1,
            }
        }
        panic!("unterminated string in script: {}", &lua[start..]);
    }

    /// Every single-quoted literal in `lua`, with its byte offset, contents unquoted.
    fn literals(lua: &str) -> Vec<(usize, String)> {
        let mut out = Vec::new();
        let mut i = 0;
        while i < lua.len() {
            match lua.as_bytes()[i] {
                b'\'' | b'"' => {
                    let end = string_end(lua, i);
                    if lua.as_bytes()[i] == b'\'' {
                        out.push((i, lua[i + 1..end - 1].to_string()));
                    }
                    i = end;
                }
                _ => i += 1,
            }
        }
        out
    }

    fn classify(text: &str) -> Arg {
        let t = text.trim();
        let lone =
            t.len() >= 2 && t.starts_with('\'') && string_end(t, 0) == t.len() && t.ends_with('\'');
        if lone {
            Arg::Quoted(t[1..t.len() - 1].to_string())
        } else {
            Arg::Expr(t.to_string())
        }
    }

    /// Every `redis.call(...)` in `lua`, as its arguments (the command first).
    fn calls(lua: &str) -> Vec<Vec<Arg>> {
        const OPEN: &str = "redis.call(";
        let mut out = Vec::new();
        let mut from = 0;
        while let Some(at) = lua[from..].find(OPEN) {
            let start = from + at + OPEN.len();
            let (mut args, mut current, mut depth, mut i) = (Vec::new(), String::new(), 0, start);
            loop {
                let c = lua.as_bytes()[i];
                match c {
                    b'\'' | b'"' => {
                        let end = string_end(lua, i);
                        current.push_str(&lua[i..end]);
                        i = end;
                        continue;
                    }
                    b'(' | b'[' | b'{' => depth += 1,
                    b')' if depth == 0 => {
                        args.push(classify(&current));
                        break;
                    }
                    b')' | b']' | b'}' => depth -= 1,
                    b',' if depth == 0 => {
                        args.push(classify(&current));
                        current.clear();
                        i += 1;
                        continue;
                    }
                    _ => {}
                }
                current.push(c as char);
                i += 1;
            }
            out.push(args);
            from = i;
        }
        out
    }

    fn is_state(s: &str) -> bool {
        parse_state(s).is_some()
    }

    /// The `"status":"<state>"` values inside event JSON a script writes.
    fn event_states(lua: &str) -> Vec<String> {
        const KEY: &str = r#""status":""#;
        lua.match_indices(KEY)
            .map(|(at, _)| {
                let rest = &lua[at + KEY.len()..];
                rest[..rest.find('"').expect("a closed JSON string")].to_string()
            })
            .collect()
    }

    #[test]
    fn the_scanner_reads_calls_as_lua_does() {
        let calls = calls(
            "local x = tonumber(redis.call('HGET', KEYS[1], 'lease') or '0')\n\
             redis.call('XADD', KEYS[2], '*', 'data', '{\"a\":' .. ARGV[1] .. '}', f(1, 2))",
        );
        assert_eq!(
            calls,
            vec![
                vec![
                    Arg::Quoted("HGET".into()),
                    Arg::Expr("KEYS[1]".into()),
                    Arg::Quoted("lease".into()),
                ],
                vec![
                    Arg::Quoted("XADD".into()),
                    Arg::Expr("KEYS[2]".into()),
                    Arg::Quoted("*".into()),
                    Arg::Quoted("data".into()),
                    Arg::Expr("'{\"a\":' .. ARGV[1] .. '}'".into()),
                    Arg::Expr("f(1, 2)".into()),
                ],
            ]
        );
        assert_eq!(
            event_states(r#"'{"status":"queued"}' '{"status":"running","attempt":'"#),
            ["queued", "running"]
        );
    }

    /// Field arguments of hash commands are declared fields, quoted (a field name computed at
    /// run time would escape this check); `status` is only ever set to a declared state and a
    /// flag only to [`FLAG_SET`].
    #[test]
    fn scripts_use_only_declared_fields_and_states_in_hash_commands() {
        let mut fields_used = Vec::new();
        for (name, lua) in SCRIPTS {
            for call in calls(lua) {
                let command = call[0]
                    .quoted()
                    .unwrap_or_else(|| panic!("{name}: a command that is not a literal"));
                if !HASH_COMMANDS.contains(&command) {
                    continue;
                }
                assert_eq!(
                    call.get(1),
                    Some(&Arg::Expr("KEYS[1]".into())),
                    "{name}: {command} must address the record as KEYS[1]"
                );
                let rest = &call[2..];
                let pairs = matches!(command, "HSET" | "HSETNX");
                let fields: Vec<&Arg> = if pairs {
                    assert!(
                        rest.len() % 2 == 0,
                        "{name}: {command} takes field/value pairs"
                    );
                    rest.iter().step_by(2).collect()
                } else {
                    rest.iter().collect()
                };
                for (i, arg) in fields.into_iter().enumerate() {
                    let field = arg.quoted().unwrap_or_else(|| {
                        panic!("{name}: {command} field {arg:?} must be a quoted literal")
                    });
                    assert!(
                        field::ALL.contains(&field),
                        "{name}: {command} uses field '{field}', which job_record::field does not declare"
                    );
                    fields_used.push(field.to_string());
                    if !pairs {
                        continue;
                    }
                    if let Some(value) = rest[2 * i + 1].quoted() {
                        if field == field::STATUS {
                            assert!(
                                is_state(value),
                                "{name}: status set to '{value}', which is not a declared state"
                            );
                        } else if field::FLAGS.contains(&field) {
                            assert_eq!(value, FLAG_SET, "{name}: flag '{field}' set to '{value}'");
                        } else {
                            panic!("{name}: '{field}' set to the literal '{value}'");
                        }
                    }
                }
            }
        }
        // The scanner did see the scripts' fields (a broken scanner passes nothing).
        for f in [
            field::RESULT,
            field::STATUS,
            field::OWNER,
            field::LEASE,
            field::CANCEL_REQUESTED,
        ] {
            assert!(fields_used.iter().any(|u| u == f), "no script uses '{f}'?");
        }
    }

    /// Every quoted comparison (`status == 'queued'`) is against a declared state, and every
    /// `"status":"..."` in the event JSON a script writes is one too.
    #[test]
    fn scripts_compare_with_and_announce_only_declared_states() {
        let mut compared = 0;
        for (name, lua) in SCRIPTS {
            for (at, word) in literals(lua) {
                let before = lua[..at].trim_end();
                if before.ends_with("==") || before.ends_with("~=") {
                    assert!(
                        is_state(&word),
                        "{name}: compares with '{word}', which is not a declared state"
                    );
                    compared += 1;
                }
            }
            for state in event_states(lua) {
                assert!(
                    is_state(&state),
                    "{name}: announces status '{state}', which is not a declared state"
                );
            }
        }
        assert!(
            compared >= 3,
            "the scanner found only {compared} comparisons"
        );
    }

    /// No quoted word in any script is something this module (or the event stream's
    /// vocabulary) does not know: a typo'd field or state anywhere fails here.
    #[test]
    fn every_quoted_word_in_the_scripts_is_declared() {
        for (name, lua) in SCRIPTS {
            for (_, word) in literals(lua) {
                let known = field::ALL.contains(&word.as_str())
                    || is_state(&word)
                    || word == FLAG_SET
                    || cancel_outcome::ALL.contains(&word.as_str())
                    || STREAM_WORDS.contains(&word.as_str())
                    || word == FIELD_KIND
                    || word == FIELD_DATA
                    || EventKind::parse(&word).is_some()
                    || word.parse::<i64>().is_ok()
                    || word.starts_with('{')
                    || word.starts_with('}')
                    || (!word.is_empty() && word.bytes().all(|b| b.is_ascii_uppercase()));
                assert!(known, "{name}: quotes '{word}', which nothing declares");
            }
            for call in calls(lua) {
                if call[0].quoted() != Some("XADD") {
                    continue;
                }
                // Entry fields are `kind` and `data`, and a literal kind is a known one.
                let at = call
                    .iter()
                    .position(|a| a.quoted() == Some(FIELD_KIND))
                    .unwrap_or_else(|| panic!("{name}: an XADD without 'kind'"));
                if let Some(kind) = call[at + 1].quoted() {
                    assert!(EventKind::parse(kind).is_some(), "{name}: kind '{kind}'");
                }
                assert_eq!(call[at + 2].quoted(), Some(FIELD_DATA), "{name}");
            }
        }
    }

    /// The answers the Rust callers match on are the ones the scripts give.
    #[test]
    fn script_answers_are_declared() {
        let returns = |lua: &str| -> Vec<String> {
            lua.match_indices("return ")
                .map(|(at, m)| {
                    let rest = &lua[at + m.len()..];
                    let end = rest.find(|c: char| c.is_whitespace()).unwrap_or(rest.len());
                    rest[..end].to_string()
                })
                .collect()
        };
        let cancel: Vec<String> = returns(CANCEL_LUA);
        for r in &cancel {
            let word = r.trim_matches('\'');
            assert!(
                cancel_outcome::ALL.contains(&word),
                "CANCEL_LUA answers {r}"
            );
        }
        for outcome in cancel_outcome::ALL {
            assert!(
                cancel.contains(&format!("'{outcome}'")),
                "CANCEL_LUA never answers {outcome}"
            );
        }
        let claim: Vec<i32> = returns(MARK_RUNNING_LUA)
            .iter()
            .map(|r| r.parse().expect("MARK_RUNNING_LUA answers numbers"))
            .collect();
        for r in &claim {
            assert!(
                claim_outcome::ALL.contains(r),
                "MARK_RUNNING_LUA answers {r}"
            );
        }
        for outcome in claim_outcome::ALL {
            assert!(
                claim.contains(&outcome),
                "MARK_RUNNING_LUA never answers {outcome}"
            );
        }
    }

    #[test]
    fn every_state_round_trips_through_serde_and_parse() {
        for state in STATES {
            let wire = state.as_str();
            assert_eq!(serde_json::to_value(state).unwrap(), wire);
            let back: JobStatus = serde_json::from_value(serde_json::json!(wire)).unwrap();
            assert_eq!(back, state);
            assert_eq!(parse_state(wire), Some(state));
        }
        assert_eq!(parse_state("Running"), None);
        assert_eq!(parse_state(""), None);
    }

    #[test]
    fn the_states_are_all_listed_with_today_s_strings() {
        // An exhaustive match: a new state does not compile here until it is listed.
        let wire = STATES.map(|s| match s {
            JobStatus::Queued => "queued",
            JobStatus::Running => "running",
            JobStatus::Completed => "completed",
            JobStatus::Failed => "failed",
            JobStatus::Cancelled => "cancelled",
        });
        assert_eq!(wire, STATES.map(JobStatus::as_str));
        let terminal: Vec<_> = STATES.into_iter().filter(|s| s.is_terminal()).collect();
        assert_eq!(
            terminal,
            [
                JobStatus::Completed,
                JobStatus::Failed,
                JobStatus::Cancelled
            ]
        );
    }

    #[test]
    fn field_names_are_todays_and_distinct() {
        assert_eq!(
            field::ALL,
            [
                "id",
                "language",
                "created_at",
                "status",
                "started_at",
                "attempt",
                "owner",
                "lease",
                "interactive",
                "cancel_requested",
                "result",
                "callback",
            ]
        );
        let mut sorted = field::ALL.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), field::ALL.len());
    }

    /// The diagram names every script and every state.
    #[test]
    fn the_module_doc_covers_every_script_and_state() {
        let source = include_str!("job_record.rs");
        let doc: String = source
            .lines()
            .take_while(|l| l.starts_with("//!"))
            .collect::<Vec<_>>()
            .join("\n");
        for (name, _) in SCRIPTS {
            assert!(doc.contains(name), "the module doc does not mention {name}");
        }
        for state in STATES {
            assert!(
                doc.contains(state.as_str()),
                "the module doc does not mention {}",
                state.as_str()
            );
        }
    }
}
