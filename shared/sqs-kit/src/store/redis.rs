//! The Redis (or Valkey) store: one hash per record, under `<prefix><record id>`.
//!
//! Each operation is one round trip: the conditional ones are Lua scripts, which Redis runs
//! atomically, so the claim condition, the owner check and the write cannot be interleaved with
//! another client's. A failed claim returns the record that blocked it from the same script, as
//! DynamoDB's `ReturnValuesOnConditionCheckFailure` does. The scripts go by their SHA-1
//! (`EVALSHA`); a server that does not know one yet is sent it once, on the first call.
//!
//! Whether a record is live is judged by the caller's `now`, like every store; Redis's own
//! expiry (`PEXPIREAT`, set to the end of the record's `expiration` second) only removes a record
//! once no claim could be blocked by it, so the server keeps no history nobody can use.
//!
//! There are no transactions with business data here (it lives in another database), so
//! [`IdempotencyStore::supports_transactions`] is false and transactional idempotency is refused
//! when it is set up.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{RedisError, Script};

use super::{BusinessWrite, Claim, ClaimWriteFailure, CommitFailure, IdempotencyStore, StoreError};
use super::{IdempotencyRecord, Now, Status};

/// Takes the key when no live record holds it, or returns the record that does.
///
/// KEYS[1]: the record. ARGV: now (s), now (ms), expiry (epoch ms), then the record's fields
/// and values. Returns an empty array when the claim was written, else the stored hash.
const CLAIM: &str = r"
local found = redis.call('HGETALL', KEYS[1])
if #found > 0 then
  local record = {}
  for i = 1, #found, 2 do record[found[i]] = found[i + 1] end
  local expiration = tonumber(record['expiration'])
  local until_ms = tonumber(record['in_progress_expiration'])
  local expired = expiration ~= nil and expiration < tonumber(ARGV[1])
  local lapsed = record['status'] == 'IN_PROGRESS' and until_ms ~= nil and until_ms < tonumber(ARGV[2])
  if not expired and not lapsed then return found end
  redis.call('DEL', KEYS[1])
end
redis.call('HSET', KEYS[1], unpack(ARGV, 4))
redis.call('PEXPIREAT', KEYS[1], ARGV[3])
return {}
";

/// Replaces the record when it still carries the caller's claim token.
///
/// KEYS[1]: the record. ARGV: `1` and the token, or `0` and `` for a claim without one (which
/// matches only a record without one); expiry (epoch ms); the new fields and values. Returns 1
/// when written, 0 when the claim is no longer the caller's.
const COMPLETE: &str = r"
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local token = redis.call('HGET', KEYS[1], 'claim_token')
if ARGV[1] == '1' then
  if token ~= ARGV[2] then return 0 end
elseif token then
  return 0
end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], unpack(ARGV, 4))
redis.call('PEXPIREAT', KEYS[1], ARGV[3])
return 1
";

/// Deletes the record when it is `IN_PROGRESS` and carries the caller's claim token (ARGV as
/// for [`COMPLETE`]). Returns 1 when deleted, 0 otherwise.
const RELEASE: &str = r"
local fields = redis.call('HMGET', KEYS[1], 'status', 'claim_token')
if fields[1] ~= 'IN_PROGRESS' then return 0 end
if ARGV[1] == '1' then
  if fields[2] ~= ARGV[2] then return 0 end
elseif fields[2] then
  return 0
end
redis.call('DEL', KEYS[1])
return 1
";

/// How the Redis store connects: where, through how many connections, how long it waits.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct RedisConfig {
    /// `redis://[user:password@]host[:port][/db]`, or `rediss://` for TLS (ElastiCache and
    /// MemoryDB with in-transit encryption). TLS trusts the system's root certificates, or the
    /// ones in the file `SSL_CERT_FILE` names.
    pub url: String,
    /// Connections kept open, each multiplexed (requests from many records share it, pipelined);
    /// requests go to them in turn. Default 2.
    pub connections: usize,
    /// How long opening a connection may take before the request fails. Default 1 s.
    pub connect_timeout: Duration,
    /// How long a request waits for its answer before it fails (transiently: the record is
    /// retried). Default 1 s.
    pub response_timeout: Duration,
    /// Prefix of every record's key. Default `idempotency:`.
    pub key_prefix: String,
}

impl RedisConfig {
    /// The defaults, on the server at `url`.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            connections: 2,
            connect_timeout: Duration::from_secs(1),
            response_timeout: Duration::from_secs(1),
            key_prefix: "idempotency:".to_owned(),
        }
    }

    /// The configuration from the environment: `REDIS_URL` (required), and
    /// `SQS_KIT_REDIS_CONNECTIONS` (1 to 64) and `SQS_KIT_REDIS_TIMEOUT_MS` (1 to 60000, both
    /// timeouts) when set.
    pub fn from_env() -> Result<Self, InvalidRedisSetting> {
        let url = crate::env::var(crate::env::REDIS_URL).ok_or(InvalidRedisSetting::MissingUrl)?;
        let mut config = Self::new(url);
        if let Some(text) = crate::env::var(crate::env::REDIS_CONNECTIONS) {
            config.connections = parse_in(&text, 1..=64, crate::env::REDIS_CONNECTIONS)? as usize;
        }
        if let Some(text) = crate::env::var(crate::env::REDIS_TIMEOUT_MS) {
            let timeout = Duration::from_millis(parse_in(&text, 1..=60_000, crate::env::REDIS_TIMEOUT_MS)?);
            (config.connect_timeout, config.response_timeout) = (timeout, timeout);
        }
        Ok(config)
    }

    /// This configuration with `connections` connections (at least 1).
    pub fn with_connections(self, connections: usize) -> Self {
        Self { connections: connections.max(1), ..self }
    }

    /// This configuration with both timeouts set to `timeout`.
    pub fn with_timeout(self, timeout: Duration) -> Self {
        Self { connect_timeout: timeout, response_timeout: timeout, ..self }
    }

    /// This configuration with every key under `prefix`.
    pub fn with_key_prefix(self, prefix: impl Into<String>) -> Self {
        Self { key_prefix: prefix.into(), ..self }
    }
}

fn parse_in(text: &str, range: std::ops::RangeInclusive<u64>, variable: &'static str) -> Result<u64, InvalidRedisSetting> {
    match text.parse::<u64>() {
        Ok(value) if range.contains(&value) => Ok(value),
        _ => Err(InvalidRedisSetting::OutOfRange {
            variable,
            range: format!("{} to {}", range.start(), range.end()),
            value: text.to_owned(),
        }),
    }
}

/// The Redis store's settings are missing or wrong.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidRedisSetting {
    /// `REDIS_URL` is not set.
    #[error("the Redis store needs REDIS_URL set, e.g. redis://127.0.0.1:6379 or rediss://user:password@host:6379")]
    MissingUrl,
    /// The URL is not one the client can use.
    #[error("REDIS_URL is not a usable Redis URL ({cause}); expected redis://[user:password@]host[:port][/db] or rediss://...")]
    BadUrl {
        /// What the client said.
        cause: String,
    },
    /// A number outside its range.
    #[error("{variable} must be a whole number from {range}, not {value:?}")]
    OutOfRange {
        /// The variable.
        variable: &'static str,
        /// Its range, in words.
        range: String,
        /// What it was set to.
        value: String,
    },
}

/// The idempotency store on a Redis or Valkey server (standalone, or the primary endpoint of a
/// replicated one). A claim, a completion, a release, a read and an eviction cost one round trip
/// each; a duplicate is found with its claim, without a read. Connections open on first use,
/// so a server that is down fails the records (transiently), not the start; clones share them.
#[derive(Clone)]
pub struct RedisStore {
    client: redis::Client,
    manager_config: ConnectionManagerConfig,
    // Made on first use, inside the runtime that will drive them (a manager spawns its task when
    // it is made), so that a store can be built anywhere.
    connections: Arc<[OnceLock<ConnectionManager>]>,
    next: Arc<AtomicUsize>,
    prefix: String,
    server: String,
    scripts: Arc<Scripts>,
}

struct Scripts {
    claim: Script,
    complete: Script,
    release: Script,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore").field("server", &self.server).field("prefix", &self.prefix).finish_non_exhaustive()
    }
}

impl RedisStore {
    /// A store with the configuration from the environment ([`RedisConfig::from_env`]).
    pub fn from_env() -> Result<Self, InvalidRedisSetting> {
        Self::new(RedisConfig::from_env()?)
    }

    /// A store with `config`; the URL is checked here. Nothing is sent to the server until the
    /// first request, and the store can be built outside a Tokio runtime (its requests run in one).
    pub fn new(config: RedisConfig) -> Result<Self, InvalidRedisSetting> {
        let client = redis::Client::open(config.url.as_str()).map_err(|e| InvalidRedisSetting::BadUrl { cause: e.to_string() })?;
        let server = describe_server(client.get_connection_info());
        let manager_config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(config.connect_timeout))
            .set_response_timeout(Some(config.response_timeout))
            // A request waits for at most one reconnection: a server that is down fails the
            // record within about two timeouts, and SQS delivers it again later.
            .set_number_of_retries(1)
            .set_max_delay(config.connect_timeout);
        Ok(Self {
            client,
            manager_config,
            connections: (0..config.connections.max(1)).map(|_| OnceLock::new()).collect(),
            next: Arc::new(AtomicUsize::new(0)),
            prefix: config.key_prefix,
            server,
            scripts: Arc::new(Scripts { claim: Script::new(CLAIM), complete: Script::new(COMPLETE), release: Script::new(RELEASE) }),
        })
    }

    /// The server's address, as `host:port` (no credentials).
    pub fn server(&self) -> &str {
        &self.server
    }

    /// The key a record id is kept under.
    pub fn key(&self, id: &str) -> String {
        format!("{}{id}", self.prefix)
    }

    fn connection(&self, operation: &'static str) -> Result<ConnectionManager, StoreError> {
        let turn = self.next.fetch_add(1, Ordering::Relaxed);
        let slot = &self.connections[turn % self.connections.len()];
        if let Some(connection) = slot.get() {
            return Ok(connection.clone());
        }
        let made = ConnectionManager::new_lazy_with_config(self.client.clone(), self.manager_config.clone())
            .map_err(|e| self.error(operation, e))?;
        // Two requests may make one at once; the one kept is the first stored, the other is dropped
        // before it connected (connections are lazy).
        Ok(slot.get_or_init(|| made).clone())
    }

    fn error(&self, operation: &'static str, error: RedisError) -> StoreError {
        StoreError { store: self.describe(), operation, cause: error.to_string() }
    }
}

/// `host:port` of the server, or the socket path; never the credentials in the URL.
fn describe_server(info: &redis::ConnectionInfo) -> String {
    match info.addr() {
        redis::ConnectionAddr::Tcp(host, port) => format!("{host}:{port}"),
        redis::ConnectionAddr::TcpTls { host, port, .. } => format!("{host}:{port} (TLS)"),
        redis::ConnectionAddr::Unix(path) => path.display().to_string(),
        other => other.to_string(),
    }
}

/// The epoch millisecond after which no claim can be blocked by a record expiring at
/// `expiration` (seconds): the end of that second.
fn expire_at_ms(expiration: i64) -> i64 {
    expiration.saturating_add(1).saturating_mul(1000)
}

/// The record's fields and values, as the scripts take them: name, value, name, value...
fn fields(record: &IdempotencyRecord) -> Vec<(&'static str, String)> {
    let mut fields = vec![
        ("status", record.status.as_str().to_owned()),
        ("expiration", record.expiration.to_string()),
        ("payload_hash", record.payload_hash.clone()),
        ("updated_at", record.updated_at.to_string()),
    ];
    if let Some(until) = record.in_progress_expiration {
        fields.push(("in_progress_expiration", until.to_string()));
    }
    if let Some(result) = &record.result {
        fields.push(("result", result.to_string()));
    }
    if let Some(token) = &record.claim_token {
        fields.push(("claim_token", token.clone()));
    }
    fields
}

/// Reads a record back; `None` when the hash does not have the record's shape.
fn from_hash(id: &str, hash: &HashMap<String, String>) -> Option<IdempotencyRecord> {
    let int = |name: &str| hash.get(name).and_then(|text| text.parse::<i64>().ok());
    Some(IdempotencyRecord {
        id: id.to_owned(),
        status: Status::parse(hash.get("status")?)?,
        expiration: int("expiration")?,
        in_progress_expiration: int("in_progress_expiration"),
        payload_hash: hash.get("payload_hash").cloned().unwrap_or_default(),
        result: hash.get("result").and_then(|text| serde_json::from_str(text).ok()),
        updated_at: int("updated_at").unwrap_or_default(),
        claim_token: hash.get("claim_token").cloned(),
    })
}

/// The owner arguments of [`COMPLETE`] and [`RELEASE`].
fn owner(claim: &IdempotencyRecord) -> (&'static str, &str) {
    match &claim.claim_token {
        Some(token) => ("1", token),
        None => ("0", ""),
    }
}

#[async_trait]
impl IdempotencyStore for RedisStore {
    fn describe(&self) -> String {
        format!("Redis store at {}", self.server)
    }

    fn supports_transactions(&self) -> bool {
        false
    }

    async fn claim(&self, record: &IdempotencyRecord, now: Now) -> Result<Claim, StoreError> {
        let mut invocation = self.scripts.claim.key(self.key(&record.id));
        invocation.arg(now.secs).arg(now.millis).arg(expire_at_ms(record.expiration)).arg(fields(record));
        let found: HashMap<String, String> =
            invocation.invoke_async(&mut self.connection("claim")?).await.map_err(|e| self.error("claim", e))?;
        if found.is_empty() {
            return Ok(Claim::Acquired);
        }
        let existing = from_hash(&record.id, &found).ok_or_else(|| StoreError {
            store: self.describe(),
            operation: "claim",
            cause: format!(
                "the key {} holds something that is not an idempotency record; evict it (sqs-kit key evict)",
                self.key(&record.id)
            ),
        })?;
        Ok(Claim::Existing(existing))
    }

    async fn complete(&self, claim: &IdempotencyRecord, record: &IdempotencyRecord) -> Result<(), ClaimWriteFailure> {
        let (has_token, token) = owner(claim);
        let mut invocation = self.scripts.complete.key(self.key(&record.id));
        invocation.arg(has_token).arg(token).arg(expire_at_ms(record.expiration)).arg(fields(record));
        let written: i64 = invocation.invoke_async(&mut self.connection("complete")?).await.map_err(|e| self.error("complete", e))?;
        match written {
            1 => Ok(()),
            _ => Err(ClaimWriteFailure::ClaimLost),
        }
    }

    async fn release(&self, claim: &IdempotencyRecord) -> Result<(), ClaimWriteFailure> {
        let (has_token, token) = owner(claim);
        let deleted: i64 = self
            .scripts
            .release
            .key(self.key(&claim.id))
            .arg(has_token)
            .arg(token)
            .invoke_async(&mut self.connection("release")?)
            .await
            .map_err(|e| self.error("release", e))?;
        match deleted {
            1 => Ok(()),
            _ => Err(ClaimWriteFailure::ClaimLost),
        }
    }

    async fn commit(
        &self,
        _record: &IdempotencyRecord,
        _writes: Vec<BusinessWrite>,
        _now: Now,
        _deadline: Now,
    ) -> Result<(), CommitFailure> {
        Err(StoreError {
            store: self.describe(),
            operation: "commit",
            cause: "Redis keeps no business data to commit with; use claim mode (not .transactional()) with this store".to_owned(),
        }
        .into())
    }

    async fn get(&self, id: &str) -> Result<Option<IdempotencyRecord>, StoreError> {
        let hash: HashMap<String, String> =
            redis::cmd("HGETALL").arg(self.key(id)).query_async(&mut self.connection("read")?).await.map_err(|e| self.error("read", e))?;
        if hash.is_empty() {
            return Ok(None);
        }
        from_hash(id, &hash).map(Some).ok_or_else(|| StoreError {
            store: self.describe(),
            operation: "read",
            cause: format!("the key {} holds something that is not an idempotency record", self.key(id)),
        })
    }

    async fn evict(&self, id: &str) -> Result<bool, StoreError> {
        let deleted: i64 =
            redis::cmd("DEL").arg(self.key(id)).query_async(&mut self.connection("evict")?).await.map_err(|e| self.error("evict", e))?;
        Ok(deleted > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_store_names_its_server_without_the_credentials() {
        let store = RedisStore::new(RedisConfig::new("rediss://ops:s3cret@cache.example.internal:6380/2")).unwrap();
        assert_eq!(store.describe(), "Redis store at cache.example.internal:6380 (TLS)");
        assert!(!format!("{store:?}").contains("s3cret"));
    }

    #[test]
    fn a_url_that_is_not_redis_is_refused_when_the_store_is_built() {
        let error = RedisStore::new(RedisConfig::new("http://127.0.0.1:6379")).unwrap_err();
        assert!(error.to_string().contains("REDIS_URL is not a usable Redis URL"), "{error}");
    }

    #[test]
    fn a_record_key_expires_at_the_end_of_its_expiration_second() {
        assert_eq!(expire_at_ms(1_800_000_000), 1_800_000_001_000);
        assert_eq!(expire_at_ms(i64::MAX), i64::MAX, "saturates instead of wrapping into the past");
    }

    #[test]
    fn settings_out_of_range_name_the_variable_and_the_range() {
        let error = parse_in("0", 1..=64, "SQS_KIT_REDIS_CONNECTIONS").unwrap_err();
        assert_eq!(error.to_string(), "SQS_KIT_REDIS_CONNECTIONS must be a whole number from 1 to 64, not \"0\"");
        assert_eq!(parse_in("64", 1..=64, "X").unwrap(), 64);
    }
}
