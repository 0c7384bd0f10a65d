//! Larder's cache: idempotency keys and cached lookups behind one interface.
//!
//! [`RedisCache`] is used when `REDIS_URL` (one Redis) or `LARDER_REDIS_CLUSTER_URLS` (a Redis
//! Cluster) is set and is shared by every Larder process;
//! [`MemoryCache`] (moka) is the in-process fallback. Both promise the same things: every
//! entry expires after the TTL it was written with, [`Cache::set`] overwrites,
//! [`Cache::set_if_absent`] is atomic (exactly one of several racing callers wins), and keys
//! are namespaced by the prefix the cache was built with, so tests and tenants sharing a
//! Redis never see each other's keys.
//!
//! The cache is never the source of truth: callers treat a [`CacheError`] as a miss and go to
//! the database.
//!
//! A sick Redis must not make requests slow. Every Redis command has a short deadline
//! ([`COMMAND_DEADLINE`]), and a circuit breaker stops asking Redis for [`OPEN_FOR`] after
//! [`FAILURES_TO_OPEN`] failures in a row: commands then fail at once (a cache miss; the
//! database answers), counters count in this process meanwhile, and one probe a while later
//! closes the breaker when Redis answers again. [`Cache::ping`] (for `/readyz`) always asks
//! Redis itself.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use redis::AsyncCommands;

/// The cache could not be used; the caller falls back to the database.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("cache unavailable")]
    Redis(#[source] redis::RedisError),
    #[error("cache unavailable: no answer within {}ms", COMMAND_DEADLINE.as_millis())]
    Timeout,
    #[error("cache skipped: Redis failed just before (circuit open)")]
    CircuitOpen,
}

impl CacheError {
    /// Logs a failed cache call the caller works around: a warning, except for one that
    /// skipped Redis on purpose (the breaker's warning already said Redis is failing), so
    /// an outage does not log a line per request.
    pub fn log(&self, what: &'static str) {
        if matches!(self, CacheError::CircuitOpen) {
            tracing::debug!(error = %self, "{what}");
        } else {
            tracing::warn!(error = %self, "{what}");
        }
    }
}

/// The most one Redis command may take before the caller goes to the database instead.
pub const COMMAND_DEADLINE: Duration = Duration::from_millis(250);
/// Failures in a row that open the circuit.
pub const FAILURES_TO_OPEN: u32 = 2;
/// How long an open circuit skips Redis before one probe asks it again.
pub const OPEN_FOR: Duration = Duration::from_secs(5);

/// How many breakers a cluster's slots are shared among.
const SLOT_GROUPS: usize = 16;

/// A key's cluster slot: CRC16 (XMODEM) of it, modulo 16384. Larder's keys carry no hash
/// tags, so the whole key counts.
fn slot(key: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for byte in key {
        crc ^= u16::from(*byte) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc % 16_384
}

/// The circuit breaker in front of Redis.
#[derive(Debug)]
enum Circuit {
    Closed {
        failures: u32,
    },
    Open {
        until: Instant,
    },
    /// One probe is on its way; the rest still skip. A probe that never reports (its
    /// caller went away) is given up after [`PROBE_GIVEN_UP`], and another may go.
    Probing {
        since: Instant,
    },
}

/// How long a probe may go unreported before another is let through.
const PROBE_GIVEN_UP: Duration = Duration::from_millis(2 * COMMAND_DEADLINE.as_millis() as u64);

#[derive(Debug)]
struct Breaker(std::sync::Mutex<Circuit>);

impl Breaker {
    fn new() -> Self {
        Self(std::sync::Mutex::new(Circuit::Closed { failures: 0 }))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Circuit> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether a command may go to Redis now.
    fn allow(&self) -> bool {
        self.allow_at(Instant::now())
    }

    fn allow_at(&self, now: Instant) -> bool {
        let mut circuit = self.lock();
        match *circuit {
            Circuit::Closed { .. } => true,
            Circuit::Open { until } if now >= until => {
                *circuit = Circuit::Probing { since: now };
                true
            }
            Circuit::Probing { since }
                if now.saturating_duration_since(since) >= PROBE_GIVEN_UP =>
            {
                *circuit = Circuit::Probing { since: now };
                true
            }
            Circuit::Open { .. } | Circuit::Probing { .. } => false,
        }
    }

    fn is_closed(&self) -> bool {
        matches!(*self.lock(), Circuit::Closed { .. })
    }

    fn succeeded(&self) {
        let mut circuit = self.lock();
        if !matches!(*circuit, Circuit::Closed { .. }) {
            tracing::info!("Redis answers again; using it");
        }
        *circuit = Circuit::Closed { failures: 0 };
    }

    fn failed(&self) {
        let mut circuit = self.lock();
        let failures = match *circuit {
            Circuit::Closed { failures } => failures + 1,
            // Already skipping (a deletion tried anyway failed): the spell stands as it is.
            Circuit::Open { .. } => return,
            Circuit::Probing { .. } => FAILURES_TO_OPEN,
        };
        if failures >= FAILURES_TO_OPEN {
            if matches!(*circuit, Circuit::Closed { .. }) {
                tracing::warn!(
                    skip_ms = u64::try_from(OPEN_FOR.as_millis()).unwrap_or(u64::MAX),
                    "Redis is failing; skipping it for a while (the database answers)"
                );
            }
            *circuit = Circuit::Open {
                until: Instant::now() + OPEN_FOR,
            };
        } else {
            *circuit = Circuit::Closed { failures };
        }
    }

    fn is_open(&self) -> bool {
        !matches!(*self.lock(), Circuit::Closed { .. })
    }
}

pub type CacheResult<T> = Result<T, CacheError>;

/// Which implementation is behind a [`Cache`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheKind {
    /// Redis, shared between processes.
    Redis,
    /// moka, private to this process.
    Memory,
}

#[async_trait::async_trait]
pub trait Cache: Send + Sync + fmt::Debug + 'static {
    fn kind(&self) -> CacheKind;

    /// Answers when the cache does (always, in memory).
    async fn ping(&self) -> CacheResult<()>;

    async fn get(&self, key: &str) -> CacheResult<Option<String>>;

    /// Stores `value` under `key` for `ttl`, replacing what was there.
    async fn set(&self, key: &str, value: &str, ttl: Duration) -> CacheResult<()>;

    /// Stores `value` only if `key` holds nothing; returns whether it was stored.
    async fn set_if_absent(&self, key: &str, value: &str, ttl: Duration) -> CacheResult<bool>;

    async fn delete(&self, key: &str) -> CacheResult<()>;

    /// Adds `delta` (which may be negative: a place given back) to the counter at `key`,
    /// atomically, never below zero. The counter lives `window` from its creation (later
    /// changes do not extend it). Returns the new count and the time left.
    async fn add(&self, key: &str, delta: i64, window: Duration) -> CacheResult<(i64, Duration)>;

    /// The counter at `key` and its time left; `(0, 0)` when there is none.
    async fn counter(&self, key: &str) -> CacheResult<(i64, Duration)>;
}

// --- Redis ----------------------------------------------------------------------------------

/// The shared cache. One multiplexed connection, reconnected automatically.
///
/// On a cluster each command goes to the node that owns its key's slot. Every command and
/// every pipeline here touches exactly one key, so no two keys ever need to meet in a slot
/// and none carries a hash tag: the keys spread over all the nodes. (The prefix is not a
/// tag either; as one it would put every key on a single node.) A command that someday
/// uses two keys together must give them one tag, `{…}`, or the cluster refuses it.
#[derive(Clone)]
pub struct RedisCache {
    conn: Connection,
    prefix: Arc<str>,
    /// One breaker for one Redis; on a cluster one per sixteenth of the slots, so a node
    /// that is down opens only the breakers of its own keys.
    breakers: Arc<Vec<Breaker>>,
    /// Counters while Redis is skipped: limits hold per process meanwhile.
    local: MemoryCache,
    /// Invalidations Redis did not take, to make once it answers again.
    pending: Arc<PendingDeletes>,
}

/// Keys whose deletion failed. A stale entry left in Redis would outlive the outage (a
/// revoked key working again for its TTL once Redis is back), so each is deleted as soon
/// as a command to its part of Redis succeeds.
#[derive(Debug, Default)]
struct PendingDeletes {
    any: AtomicBool,
    keys: std::sync::Mutex<std::collections::HashSet<String>>,
    /// A replay is running (one at a time).
    replaying: AtomicBool,
    /// When a replay last left keys behind (their part of Redis still skipped): the next
    /// waits a little.
    retry_after: std::sync::Mutex<Option<Instant>>,
}

/// Invalidations remembered at most; beyond, the entries expire on their own.
const MAX_PENDING_DELETES: usize = 10_000;

impl PendingDeletes {
    fn remember(&self, key: String) {
        let mut keys = self
            .keys
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if keys.len() < MAX_PENDING_DELETES {
            keys.insert(key);
            self.any.store(true, Ordering::Release);
        } else {
            tracing::error!(
                "too many cache invalidations waiting for Redis; entries expire on their own"
            );
        }
    }

    /// Whether `key` waits to be deleted: whatever Redis holds for it is stale.
    fn holds(&self, key: &str) -> bool {
        self.any.load(Ordering::Acquire)
            && self
                .keys
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .contains(key)
    }

    fn take(&self) -> Vec<String> {
        if !self.any.swap(false, Ordering::AcqRel) {
            return Vec::new();
        }
        self.keys
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .drain()
            .collect()
    }
}

/// One Redis, or a cluster's nodes, behind one connection type.
#[derive(Clone)]
enum Connection {
    One(redis::aio::ConnectionManager),
    Cluster(redis::cluster_async::ClusterConnection),
}

impl redis::aio::ConnectionLike for Connection {
    fn req_packed_command<'a>(
        &'a mut self,
        cmd: &'a redis::Cmd,
    ) -> redis::RedisFuture<'a, redis::Value> {
        match self {
            Connection::One(c) => c.req_packed_command(cmd),
            Connection::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> redis::RedisFuture<'a, Vec<redis::Value>> {
        match self {
            Connection::One(c) => c.req_packed_commands(pipeline, offset, count),
            Connection::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Connection::One(c) => c.get_db(),
            Connection::Cluster(c) => c.get_db(),
        }
    }
}

/// How long a command may wait for its answer before the caller treats the cache as down.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(1);
const CONNECTION_TIMEOUT: Duration = Duration::from_secs(2);

/// Commands go out as soon as they are written (`TCP_NODELAY`): with Nagle's algorithm, a
/// command written while an earlier one is unacknowledged waits for that acknowledgement.
fn tcp_settings() -> redis::io::tcp::TcpSettings {
    redis::io::tcp::TcpSettings::default().set_nodelay(true)
}

impl fmt::Debug for RedisCache {
    // The URL may carry a password; show neither.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisCache")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl RedisCache {
    /// Connects to `url`; every key is stored under `prefix` (say `larder:`).
    pub async fn connect(url: &str, prefix: &str) -> CacheResult<Self> {
        let info = redis::IntoConnectionInfo::into_connection_info(url)
            .map_err(CacheError::Redis)?
            .set_tcp_settings(tcp_settings());
        let client = redis::Client::open(info).map_err(CacheError::Redis)?;
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(CONNECTION_TIMEOUT))
            .set_response_timeout(Some(RESPONSE_TIMEOUT))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_millis(500));
        let conn = client
            .get_connection_manager_with_config(config)
            .await
            .map_err(CacheError::Redis)?;
        Ok(Self::with(Connection::One(conn), prefix))
    }

    fn with(conn: Connection, prefix: &str) -> Self {
        let groups = match conn {
            Connection::One(_) => 1,
            Connection::Cluster(_) => SLOT_GROUPS,
        };
        Self {
            conn,
            prefix: prefix.into(),
            breakers: Arc::new((0..groups).map(|_| Breaker::new()).collect()),
            local: MemoryCache::new(100_000),
            pending: Arc::default(),
        }
    }

    /// Whether Redis (any part of a cluster) is being skipped after failures.
    pub fn circuit_open(&self) -> bool {
        self.breakers.iter().any(Breaker::is_open)
    }

    /// The breaker that guards `key` (its full name, prefix included).
    fn breaker(&self, key: &str) -> &Breaker {
        let group = if self.breakers.len() == 1 {
            0
        } else {
            usize::from(slot(key.as_bytes())) * self.breakers.len() / 16_384
        };
        &self.breakers[group]
    }

    /// Runs one Redis command on `key` through its breaker, within [`COMMAND_DEADLINE`].
    async fn guarded<T>(
        &self,
        key: &str,
        command: impl std::future::Future<Output = redis::RedisResult<T>>,
    ) -> CacheResult<T> {
        let breaker = self.breaker(key);
        if !breaker.allow() {
            return Err(CacheError::CircuitOpen);
        }
        let result = reported(
            breaker,
            tokio::time::timeout(COMMAND_DEADLINE, command).await,
        );
        if result.is_ok() {
            self.delete_pending();
        }
        result
    }

    /// Deletes `key` now, breaker or not (within [`COMMAND_DEADLINE`]), telling its breaker
    /// how it went.
    async fn delete_now(&self, key: &str) -> CacheResult<()> {
        let mut conn = self.conn.clone();
        let outcome = tokio::time::timeout(COMMAND_DEADLINE, conn.del::<_, ()>(key)).await;
        reported(self.breaker(key), outcome)
    }

    /// Makes the invalidations Redis missed, in the background (one replay at a time, never
    /// on a caller's time): those whose part of Redis answers now; the rest wait a second.
    fn delete_pending(&self) {
        let pending = &self.pending;
        if !pending.any.load(Ordering::Acquire) {
            return;
        }
        let due = pending
            .retry_after
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .is_none_or(|at| Instant::now() >= at);
        if !due || pending.replaying.swap(true, Ordering::AcqRel) {
            return;
        }
        let cache = self.clone();
        tokio::spawn(async move {
            let mut left = false;
            for key in cache.pending.take() {
                let done = cache.breaker(&key).is_closed() && cache.delete_now(&key).await.is_ok();
                if !done {
                    cache.pending.remember(key);
                    left = true;
                }
            }
            *cache
                .pending
                .retry_after
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) =
                left.then(|| Instant::now() + Duration::from_secs(1));
            cache.pending.replaying.store(false, Ordering::Release);
        });
    }

    /// Connects to a Redis Cluster through `nodes` (any of its nodes; the others are
    /// discovered). A node that fails over or restarts is found again on the next command.
    pub async fn connect_cluster(nodes: &[String], prefix: &str) -> CacheResult<Self> {
        let client = redis::cluster::ClusterClient::builder(nodes.iter().map(String::as_str))
            .connection_timeout(CONNECTION_TIMEOUT)
            .response_timeout(RESPONSE_TIMEOUT)
            // A node that is down costs a command a few short retries, never seconds: the
            // caller has the database to fall back on.
            .retries(2)
            .min_retry_wait(10)
            .max_retry_wait(200)
            .overall_response_timeout(Some(RESPONSE_TIMEOUT))
            .tcp_settings(tcp_settings())
            .build()
            .map_err(CacheError::Redis)?;
        let conn = client
            .get_async_connection()
            .await
            .map_err(CacheError::Redis)?;
        let cache = Self::with(Connection::Cluster(conn), prefix);
        // The connection is made lazily; a cluster nobody answers for is an error now.
        cache.ping().await?;
        Ok(cache)
    }

    /// Whether this cache talks to a cluster.
    pub fn is_cluster(&self) -> bool {
        matches!(self.conn, Connection::Cluster(_))
    }

    fn key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    /// Deletes every key under this cache's prefix (tests clean up their namespace with it).
    /// On a cluster, SCAN sees one node only: there each key is deleted by name instead, so
    /// only keys the caller names can be cleared (see [`RedisCache::delete`]).
    pub async fn clear_prefix(&self) -> CacheResult<()> {
        let Connection::One(mut conn) = self.conn.clone() else {
            return Ok(());
        };
        let pattern = format!("{}*", self.prefix);
        let mut cursor: u64 = 0;
        loop {
            let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(500)
                .query_async(&mut conn)
                .await
                .map_err(CacheError::Redis)?;
            if !keys.is_empty() {
                let _: () = conn.del(keys).await.map_err(CacheError::Redis)?;
            }
            if next == 0 {
                return Ok(());
            }
            cursor = next;
        }
    }
}

/// A command's outcome within its deadline, told to its breaker.
fn reported<T>(
    breaker: &Breaker,
    outcome: Result<redis::RedisResult<T>, tokio::time::error::Elapsed>,
) -> CacheResult<T> {
    match outcome {
        Ok(Ok(value)) => {
            breaker.succeeded();
            Ok(value)
        }
        Ok(Err(err)) => {
            breaker.failed();
            Err(CacheError::Redis(err))
        }
        Err(_) => {
            breaker.failed();
            Err(CacheError::Timeout)
        }
    }
}

/// [`Cache::add`] in Redis: `KEYS[1]` the counter, `ARGV[1]` the delta, `ARGV[2]` the
/// window in milliseconds.
const COUNT: &str = "redis.call('SET', KEYS[1], 0, 'PX', ARGV[2], 'NX')
local count = redis.call('INCRBY', KEYS[1], ARGV[1])
if count < 0 then
  redis.call('SET', KEYS[1], 0, 'KEEPTTL')
  count = 0
end
return {count, redis.call('PTTL', KEYS[1])}";

fn millis(ttl: Duration) -> u64 {
    // Redis rejects a zero expiry; a millisecond is as good as gone.
    u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1)
}

#[async_trait::async_trait]
impl Cache for RedisCache {
    fn kind(&self) -> CacheKind {
        CacheKind::Redis
    }

    async fn ping(&self) -> CacheResult<()> {
        // Asks Redis itself, breaker or not, within a deadline: /readyz tells the truth,
        // and an answer closes the breaker early.
        let asked = async {
            match self.conn.clone() {
                Connection::One(mut conn) => {
                    let _: String = redis::cmd("PING").query_async(&mut conn).await?;
                }
                // A cluster answers when any primary does: a node that is down makes only
                // the lookups of its keys go to the database, no reason to take the service
                // out of rotation.
                Connection::Cluster(mut conn) => {
                    use redis::cluster_routing::{
                        MultipleNodeRoutingInfo, ResponsePolicy, RoutingInfo,
                    };
                    conn.route_command(
                        redis::cmd("PING"),
                        RoutingInfo::MultiNode((
                            MultipleNodeRoutingInfo::AllMasters,
                            Some(ResponsePolicy::OneSucceeded),
                        )),
                    )
                    .await?;
                }
            }
            Ok::<(), redis::RedisError>(())
        };
        match tokio::time::timeout(RESPONSE_TIMEOUT, asked).await {
            Ok(Ok(())) => {
                // One Redis answered: its breaker may close. (A cluster's ping says only
                // that some node answers; its breakers find out key by key.)
                if self.breakers.len() == 1 {
                    self.breakers[0].succeeded();
                }
                Ok(())
            }
            Ok(Err(err)) => Err(CacheError::Redis(err)),
            Err(_) => Err(CacheError::Timeout),
        }
    }

    async fn get(&self, key: &str) -> CacheResult<Option<String>> {
        let mut conn = self.conn.clone();
        let key = self.key(key);
        if self.pending.holds(&key) {
            // Invalidated while Redis missed it: a miss until the deletion is made.
            return Ok(None);
        }
        self.guarded(&key, conn.get(&key)).await
    }

    async fn set(&self, key: &str, value: &str, ttl: Duration) -> CacheResult<()> {
        let mut conn = self.conn.clone();
        let key = self.key(key);
        let cmd = redis::cmd("SET")
            .arg(&key)
            .arg(value)
            .arg("PX")
            .arg(millis(ttl))
            .to_owned();
        let () = self.guarded(&key, cmd.query_async(&mut conn)).await?;
        Ok(())
    }

    async fn set_if_absent(&self, key: &str, value: &str, ttl: Duration) -> CacheResult<bool> {
        let mut conn = self.conn.clone();
        let key = self.key(key);
        let cmd = redis::cmd("SET")
            .arg(&key)
            .arg(value)
            .arg("NX")
            .arg("PX")
            .arg(millis(ttl))
            .to_owned();
        let stored: Option<String> = self.guarded(&key, cmd.query_async(&mut conn)).await?;
        Ok(stored.is_some())
    }

    /// Deletions are invalidations: tried even while the breaker skips Redis, and
    /// remembered when they fail, to be made once Redis answers again.
    async fn delete(&self, key: &str) -> CacheResult<()> {
        let key = self.key(key);
        match self.delete_now(&key).await {
            Ok(()) => {
                self.delete_pending();
                Ok(())
            }
            Err(err) => {
                self.pending.remember(key);
                Err(err)
            }
        }
    }

    async fn add(&self, key: &str, delta: i64, window: Duration) -> CacheResult<(i64, Duration)> {
        let mut conn = self.conn.clone();
        let shared = self.key(key);
        // One round trip, applied atomically: create with the window if absent, count
        // (never below zero), read the time left.
        let call = redis::cmd("EVAL")
            .arg(COUNT)
            .arg(1)
            .arg(&shared)
            .arg(delta)
            .arg(millis(window))
            .to_owned();
        match self
            .guarded(&shared, call.query_async::<(i64, i64)>(&mut conn))
            .await
        {
            Ok((count, left)) => Ok((
                count,
                Duration::from_millis(u64::try_from(left).unwrap_or(0)),
            )),
            // Limits keep counting, in this process, while Redis does not answer.
            Err(err) => {
                tracing::debug!(error = %err, "counting in this process while Redis fails");
                self.local.add(key, delta, window).await
            }
        }
    }

    async fn counter(&self, key: &str) -> CacheResult<(i64, Duration)> {
        let mut conn = self.conn.clone();
        let shared = self.key(key);
        let pipe = redis::pipe()
            .cmd("GET")
            .arg(&shared)
            .cmd("PTTL")
            .arg(&shared)
            .to_owned();
        match self
            .guarded(&shared, pipe.query_async::<(Option<i64>, i64)>(&mut conn))
            .await
        {
            Ok((count, left)) => Ok((
                count.unwrap_or(0),
                Duration::from_millis(u64::try_from(left).unwrap_or(0)),
            )),
            Err(_) => self.local.counter(key).await,
        }
    }
}

// --- in memory ------------------------------------------------------------------------------

#[derive(Clone)]
struct Entry {
    value: Arc<str>,
    expires_at: Instant,
}

impl Entry {
    fn new(value: &str, ttl: Duration) -> Self {
        Self {
            value: value.into(),
            expires_at: Instant::now() + ttl,
        }
    }
}

/// Each entry lives until the expiry it was written with.
struct PerEntryTtl;

impl moka::Expiry<String, Entry> for PerEntryTtl {
    fn expire_after_create(&self, _: &String, entry: &Entry, at: Instant) -> Option<Duration> {
        Some(entry.expires_at.saturating_duration_since(at))
    }

    fn expire_after_update(
        &self,
        _: &String,
        entry: &Entry,
        at: Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        Some(entry.expires_at.saturating_duration_since(at))
    }
}

/// The in-process cache, used when no Redis is configured (and as the near cache in front
/// of Redis). Bounded, so a scan of random keys cannot grow it without limit.
#[derive(Clone)]
pub struct MemoryCache {
    entries: moka::future::Cache<String, Entry>,
}

impl fmt::Debug for MemoryCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryCache")
            .field("entries", &self.entries.entry_count())
            .finish()
    }
}

impl MemoryCache {
    /// A cache holding at most `capacity` entries (least recently used go first).
    pub fn new(capacity: u64) -> Self {
        Self {
            entries: moka::future::Cache::builder()
                .max_capacity(capacity)
                .expire_after(PerEntryTtl)
                .build(),
        }
    }
}

impl Default for MemoryCache {
    fn default() -> Self {
        Self::new(100_000)
    }
}

#[async_trait::async_trait]
impl Cache for MemoryCache {
    fn kind(&self) -> CacheKind {
        CacheKind::Memory
    }

    async fn ping(&self) -> CacheResult<()> {
        Ok(())
    }

    async fn get(&self, key: &str) -> CacheResult<Option<String>> {
        Ok(self.entries.get(key).await.map(|e| e.value.to_string()))
    }

    async fn set(&self, key: &str, value: &str, ttl: Duration) -> CacheResult<()> {
        let entry = Entry::new(value, ttl);
        self.entries.insert(key.to_owned(), entry).await;
        Ok(())
    }

    async fn set_if_absent(&self, key: &str, value: &str, ttl: Duration) -> CacheResult<bool> {
        let entry = Entry::new(value, ttl);
        // `or_insert` is atomic per key: one racing caller inserts, the others see its entry.
        let entry = self.entries.entry(key.to_owned()).or_insert(entry).await;
        Ok(entry.is_fresh())
    }

    async fn delete(&self, key: &str) -> CacheResult<()> {
        self.entries.invalidate(key).await;
        Ok(())
    }

    async fn add(&self, key: &str, delta: i64, window: Duration) -> CacheResult<(i64, Duration)> {
        let result = self
            .entries
            .entry(key.to_owned())
            .and_compute_with(|existing| {
                let next = match existing.map(|e| e.into_value()) {
                    Some(e) if e.expires_at > Instant::now() => Entry {
                        value: (e.value.parse::<i64>().unwrap_or(0) + delta)
                            .max(0)
                            .to_string()
                            .into(),
                        expires_at: e.expires_at,
                    },
                    _ => Entry::new(&delta.max(0).to_string(), window),
                };
                std::future::ready(moka::ops::compute::Op::Put(next))
            })
            .await;
        let entry = result.into_entry().map(|e| e.into_value());
        Ok(entry
            .map(|e| {
                (
                    e.value.parse().unwrap_or(0),
                    e.expires_at.saturating_duration_since(Instant::now()),
                )
            })
            .unwrap_or((0, Duration::ZERO)))
    }

    async fn counter(&self, key: &str) -> CacheResult<(i64, Duration)> {
        Ok(self
            .entries
            .get(key)
            .await
            .map(|e| {
                (
                    e.value.parse().unwrap_or(0),
                    e.expires_at.saturating_duration_since(Instant::now()),
                )
            })
            .unwrap_or((0, Duration::ZERO)))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// The behaviour both implementations promise, run against each.
    async fn behaves_like_a_cache(cache: &dyn Cache) {
        let ttl = Duration::from_secs(60);
        assert_eq!(cache.get("a").await.unwrap(), None);

        cache.set("a", "1", ttl).await.unwrap();
        assert_eq!(cache.get("a").await.unwrap().as_deref(), Some("1"));
        cache.set("a", "2", ttl).await.unwrap();
        assert_eq!(cache.get("a").await.unwrap().as_deref(), Some("2"));

        assert!(!cache.set_if_absent("a", "3", ttl).await.unwrap());
        assert_eq!(cache.get("a").await.unwrap().as_deref(), Some("2"));
        assert!(cache.set_if_absent("b", "1", ttl).await.unwrap());
        assert_eq!(cache.get("b").await.unwrap().as_deref(), Some("1"));

        cache.delete("a").await.unwrap();
        assert_eq!(cache.get("a").await.unwrap(), None);
        assert!(cache.set_if_absent("a", "4", ttl).await.unwrap());

        // Entries expire after their own TTL.
        cache
            .set("short", "x", Duration::from_millis(50))
            .await
            .unwrap();
        cache.set("long", "y", ttl).await.unwrap();
        tokio::time::sleep(Duration::from_millis(120)).await;
        assert_eq!(cache.get("short").await.unwrap(), None);
        assert_eq!(cache.get("long").await.unwrap().as_deref(), Some("y"));
        assert!(cache.set_if_absent("short", "z", ttl).await.unwrap());

        // Counters count within their window, and start again after it.
        assert_eq!(cache.counter("hits").await.unwrap().0, 0);
        for n in 1..=3 {
            let (count, left) = cache
                .add("hits", 1, Duration::from_millis(300))
                .await
                .unwrap();
            assert_eq!(count, n);
            assert!(left <= Duration::from_millis(300) && left > Duration::ZERO);
        }
        assert_eq!(cache.counter("hits").await.unwrap().0, 3);
        let counts = futures::future::join_all(
            (0..20).map(|_| cache.add("many", 1, Duration::from_secs(60))),
        )
        .await;
        let mut counts: Vec<i64> = counts.into_iter().map(|c| c.unwrap().0).collect();
        counts.sort_unstable();
        assert_eq!(counts, (1..=20).collect::<Vec<_>>());
        // A place given back never takes a counter below zero (one that expired meanwhile,
        // say): no extra attempts.
        let window = Duration::from_secs(60);
        assert_eq!(cache.add("given", -1, window).await.unwrap().0, 0);
        assert_eq!(cache.add("given", 1, window).await.unwrap().0, 1);
        for _ in 0..2 {
            assert_eq!(cache.add("given", -1, window).await.unwrap().0, 0);
        }
        assert_eq!(cache.add("given", 1, window).await.unwrap().0, 1);
        tokio::time::sleep(Duration::from_millis(350)).await;
        assert_eq!(cache.counter("hits").await.unwrap().0, 0);
        assert_eq!(
            cache
                .add("hits", 1, Duration::from_secs(1))
                .await
                .unwrap()
                .0,
            1
        );

        // Exactly one of many racing callers wins set_if_absent.
        let attempts = (0..32).map(|i| {
            let value = i.to_string();
            async move { cache.set_if_absent("race", &value, ttl).await.unwrap() }
        });
        let wins = futures::future::join_all(attempts)
            .await
            .into_iter()
            .filter(|won| *won)
            .count();
        assert_eq!(wins, 1);
    }

    #[tokio::test]
    async fn memory_cache_keeps_the_promises() {
        behaves_like_a_cache(&MemoryCache::new(1000)).await;
    }

    #[tokio::test]
    async fn redis_cache_keeps_the_promises() {
        larder_testkit::require_redis().await;
        let cache = RedisCache::connect(
            &larder_testkit::redis_url(),
            &larder_testkit::redis_prefix(),
        )
        .await
        .unwrap();
        behaves_like_a_cache(&cache).await;
        cache.clear_prefix().await.unwrap();
        assert_eq!(cache.get("long").await.unwrap(), None);
    }

    #[tokio::test]
    async fn redis_prefixes_keep_namespaces_apart() {
        larder_testkit::require_redis().await;
        let url = larder_testkit::redis_url();
        let one = RedisCache::connect(&url, &larder_testkit::redis_prefix())
            .await
            .unwrap();
        let two = RedisCache::connect(&url, &larder_testkit::redis_prefix())
            .await
            .unwrap();
        one.set("k", "1", Duration::from_secs(60)).await.unwrap();
        assert_eq!(two.get("k").await.unwrap(), None);
        two.clear_prefix().await.unwrap();
        assert_eq!(one.get("k").await.unwrap().as_deref(), Some("1"));
        one.clear_prefix().await.unwrap();
    }

    #[tokio::test]
    async fn redis_cluster_keeps_the_promises_and_outlives_a_node_restart() {
        let cluster = tokio::task::spawn_blocking(larder_testkit::cluster::RedisCluster::start)
            .await
            .unwrap();
        let cache = RedisCache::connect_cluster(&cluster.urls(), "larder:")
            .await
            .unwrap();
        assert!(cache.is_cluster());
        behaves_like_a_cache(&cache).await;

        // Keys spread over the nodes: none is tagged into one slot.
        let ttl = Duration::from_secs(60);
        for n in 0..60 {
            cache.set(&format!("spread:{n}"), "x", ttl).await.unwrap();
        }
        let per_node = cluster.keys_per_node();
        assert!(per_node.iter().all(|n| *n > 0), "{per_node:?}");

        // A node goes away: its keys fail (callers fall back to the database), the rest
        // still work; once it is back, everything works again on the same connection.
        let cluster = std::sync::Arc::new(cluster);
        let c = cluster.clone();
        tokio::task::spawn_blocking(move || c.stop_node(1))
            .await
            .unwrap();
        let mut failed = 0;
        for n in 0..60 {
            if cache.get(&format!("spread:{n}")).await.is_err() {
                failed += 1;
            }
        }
        assert!(failed > 0 && failed < 60, "{failed} of 60 reads failed");
        for _ in 0..10 {
            cache.ping().await.unwrap();
        }
        let c = cluster.clone();
        tokio::task::spawn_blocking(move || c.restart_node(1))
            .await
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        while cache.get("spread:0").await.is_err() || cache.get("spread:59").await.is_err() {
            assert!(Instant::now() < deadline, "the node's keys never came back");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        for n in 0..60 {
            cache.set(&format!("spread:{n}"), "y", ttl).await.unwrap();
            assert_eq!(
                cache.get(&format!("spread:{n}")).await.unwrap().as_deref(),
                Some("y")
            );
        }
        let (count, _) = cache.add("after", 1, ttl).await.unwrap();
        assert_eq!(count, 1);
    }

    /// A hung Redis (it takes connections and never answers) costs each command at most
    /// the deadline, and after a few failures nothing at all; counters go on in the
    /// process; once it answers again, it is used again.
    #[tokio::test]
    async fn a_hung_redis_is_skipped_and_found_again() {
        let redis = tokio::task::spawn_blocking(larder_testkit::throwaway::ThrowawayRedis::start)
            .await
            .unwrap();
        let cache = RedisCache::connect(&redis.url(), "x:").await.unwrap();
        let ttl = Duration::from_secs(60);
        cache.set("k", "v", ttl).await.unwrap();
        cache.set("revoked", "v", ttl).await.unwrap();
        assert_eq!(cache.add("n", 1, ttl).await.unwrap().0, 1);
        redis.hang();
        let started = Instant::now();
        for _ in 0..FAILURES_TO_OPEN {
            let one = Instant::now();
            assert!(cache.get("k").await.is_err());
            assert!(one.elapsed() < COMMAND_DEADLINE + Duration::from_millis(200));
        }
        assert!(cache.circuit_open());
        // Open: no waiting at all.
        let skipped = Instant::now();
        for _ in 0..100 {
            assert!(matches!(cache.get("k").await, Err(CacheError::CircuitOpen)));
        }
        assert!(
            skipped.elapsed() < Duration::from_millis(100),
            "{:?}",
            skipped.elapsed()
        );
        // Counters count in the process meanwhile (limits hold), never below zero.
        assert_eq!(cache.add("local", 1, ttl).await.unwrap().0, 1);
        assert_eq!(cache.add("local", 1, ttl).await.unwrap().0, 2);
        for left in [1, 0, 0] {
            assert_eq!(cache.add("local", -1, ttl).await.unwrap().0, left);
        }
        // An invalidation is tried anyway (within the deadline), and kept for later.
        let one = Instant::now();
        assert!(cache.delete("revoked").await.is_err());
        assert!(one.elapsed() < COMMAND_DEADLINE + Duration::from_millis(200));
        // /readyz asks Redis itself, and hears nothing.
        assert!(cache.ping().await.is_err());
        assert!(
            started.elapsed() < Duration::from_secs(4),
            "{:?}",
            started.elapsed()
        );
        // Back. Say the deletion was lost with the outage and the stale entry is still there:
        // it reads as a miss, and is deleted once Redis answers.
        redis.unhang();
        let raw = redis::Client::open(redis.url()).unwrap();
        let mut raw = raw.get_multiplexed_async_connection().await.unwrap();
        let () = raw.set("x:revoked", "v").await.unwrap();
        assert_eq!(cache.get("revoked").await.unwrap(), None);
        let deadline = Instant::now() + OPEN_FOR + Duration::from_secs(5);
        while cache.get("k").await.is_err() {
            assert!(Instant::now() < deadline, "Redis was never used again");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(!cache.circuit_open());
        assert_eq!(cache.get("k").await.unwrap().as_deref(), Some("v"));
        assert_eq!(cache.add("n", 1, ttl).await.unwrap().0, 2);
        // The invalidation Redis missed was made once it answered.
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let left: bool = raw.exists("x:revoked").await.unwrap();
            if !left {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the missed deletion was never made"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(cache.get("revoked").await.unwrap(), None);
    }

    #[test]
    fn a_probe_that_never_reports_is_given_up() {
        let breaker = Breaker::new();
        for _ in 0..FAILURES_TO_OPEN {
            breaker.failed();
        }
        let opened = Instant::now();
        assert!(!breaker.allow_at(opened));
        let due = opened + OPEN_FOR + Duration::from_millis(1);
        assert!(breaker.allow_at(due), "the probe");
        assert!(!breaker.allow_at(due), "one probe at a time");
        // Its caller went away: it never reports. Another goes after a while.
        assert!(!breaker.allow_at(due + PROBE_GIVEN_UP - Duration::from_millis(1)));
        assert!(breaker.allow_at(due + PROBE_GIVEN_UP));
        breaker.succeeded();
        assert!(breaker.is_closed());
    }

    #[test]
    fn slots_are_redis_clusters() {
        // The examples of the Redis Cluster specification.
        assert_eq!(slot(b"123456789"), 0x31C3);
        assert_eq!(slot(b"foo"), 12_182);
        assert_eq!(slot(b"bar"), 5_061);
    }

    #[tokio::test]
    async fn unreachable_redis_is_an_error() {
        let result = RedisCache::connect("redis://127.0.0.1:1", "x:").await;
        assert!(result.is_err());
    }
}
