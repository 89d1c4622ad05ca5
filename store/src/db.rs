//! The SQL the store speaks, on SQLite or on PostgreSQL (issue 16).
//!
//! One dialect for both: PostgreSQL's `$1` placeholders (rewritten to SQLite's
//! `?1`), `ON CONFLICT … DO UPDATE/NOTHING` and `RETURNING`, which SQLite
//! understands too; values ([`Value`]) and rows ([`Row`]) both drivers read
//! and write, so a statement is written once and runs on either. The schema is
//! written once as well: the SQLite migrations ([`super::migrations`]) are
//! rewritten for PostgreSQL type by type ([`postgres_ddl`]: `INTEGER` is
//! `BIGINT`, `BLOB` is `BYTEA`, a rowid key an identity column), applied in the
//! same steps and counted in a `schema_version` table where SQLite has
//! `PRAGMA user_version`.
//!
//! The store's queries move onto this layer; the store on PostgreSQL is
//! selected by `[store] url` once they all have.

use std::borrow::Cow;
use tillsyn_config::StoreConfig;

use super::migrations::MIGRATIONS;

/// A value bound to a statement or read from a row.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// SQL NULL.
    Null,
    /// A 64-bit integer (also booleans, as 0 and 1, and Unix times).
    Int(i64),
    /// A double.
    Real(f64),
    /// Text.
    Text(String),
    /// Bytes.
    Blob(Vec<u8>),
}

impl From<i64> for Value {
    fn from(value: i64) -> Value {
        Value::Int(value)
    }
}

impl From<bool> for Value {
    fn from(value: bool) -> Value {
        Value::Int(i64::from(value))
    }
}

impl From<&str> for Value {
    fn from(value: &str) -> Value {
        Value::Text(value.to_owned())
    }
}

impl From<String> for Value {
    fn from(value: String) -> Value {
        Value::Text(value)
    }
}

impl From<&[u8]> for Value {
    fn from(value: &[u8]) -> Value {
        Value::Blob(value.to_vec())
    }
}

impl From<Vec<u8>> for Value {
    fn from(value: Vec<u8>) -> Value {
        Value::Blob(value)
    }
}

impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(value: Option<T>) -> Value {
        value.map_or(Value::Null, Into::into)
    }
}

/// Why a statement failed.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// SQLite said no.
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
    /// PostgreSQL said no (or could not be reached).
    #[error("PostgreSQL: {0}")]
    Postgres(String),
    /// A column was not of the type asked for.
    #[error("column {index}: expected {expected}, found {found}")]
    Type {
        /// Which column.
        index: usize,
        /// What was asked for.
        expected: &'static str,
        /// What it held.
        found: &'static str,
    },
    /// The database's schema is newer than this build knows.
    #[error(
        "the store's schema is version {found}, newer than this tillsyn knows ({known}); upgrade tillsyn"
    )]
    TooNew {
        /// In the database.
        found: usize,
        /// Known here.
        known: usize,
    },
}

impl From<tokio_postgres::Error> for DbError {
    fn from(error: tokio_postgres::Error) -> DbError {
        DbError::Postgres(postgres_message(&error))
    }
}

/// What went wrong, in words: the server's message when it sent one, else
/// the driver's with its causes (a TLS handshake error says which
/// certificate check failed only in its cause).
pub fn postgres_message(error: &tokio_postgres::Error) -> String {
    if let Some(db) = error.as_db_error() {
        return db.message().to_owned();
    }
    let mut message = error.to_string();
    let mut cause = std::error::Error::source(error);
    while let Some(inner) = cause {
        message.push_str(": ");
        message.push_str(&inner.to_string());
        cause = inner.source();
    }
    message
}

/// One row of a result.
#[derive(Debug, Clone, PartialEq)]
pub struct Row(pub Vec<Value>);

impl Value {
    fn type_name(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Int(_) => "integer",
            Value::Real(_) => "real",
            Value::Text(_) => "text",
            Value::Blob(_) => "blob",
        }
    }
}

impl Row {
    fn value(&self, index: usize) -> &Value {
        self.0.get(index).unwrap_or(&Value::Null)
    }

    fn mismatch(&self, index: usize, expected: &'static str) -> DbError {
        DbError::Type {
            index,
            expected,
            found: self.value(index).type_name(),
        }
    }

    /// An integer column.
    pub fn int(&self, index: usize) -> Result<i64, DbError> {
        self.opt_int(index)?
            .ok_or_else(|| self.mismatch(index, "integer"))
    }

    /// An integer column that may be NULL.
    pub fn opt_int(&self, index: usize) -> Result<Option<i64>, DbError> {
        match self.value(index) {
            Value::Null => Ok(None),
            Value::Int(value) => Ok(Some(*value)),
            _ => Err(self.mismatch(index, "integer")),
        }
    }

    /// A text column.
    pub fn text(&self, index: usize) -> Result<String, DbError> {
        self.opt_text(index)?
            .ok_or_else(|| self.mismatch(index, "text"))
    }

    /// A text column that may be NULL.
    pub fn opt_text(&self, index: usize) -> Result<Option<String>, DbError> {
        match self.value(index) {
            Value::Null => Ok(None),
            Value::Text(value) => Ok(Some(value.clone())),
            _ => Err(self.mismatch(index, "text")),
        }
    }

    /// A blob column.
    pub fn blob(&self, index: usize) -> Result<Vec<u8>, DbError> {
        match self.value(index) {
            Value::Blob(value) => Ok(value.clone()),
            _ => Err(self.mismatch(index, "blob")),
        }
    }

    /// Column `index` as bytes or NULL.
    pub fn opt_blob(&self, index: usize) -> Result<Option<Vec<u8>>, DbError> {
        match self.value(index) {
            Value::Null => Ok(None),
            _ => self.blob(index).map(Some),
        }
    }
}

/// A connection to the store's database, in either engine.
pub trait Database: Send {
    /// Run one statement; the rows it changed.
    fn execute(&self, sql: &str, params: &[Value]) -> Result<u64, DbError>;
    /// Run one statement once for each row of parameters, in order; the rows
    /// changed in all. PostgreSQL sends them together (pipelined), so a batch
    /// costs about one round trip, not one per row.
    fn execute_many(&self, sql: &str, rows: Vec<Vec<Value>>) -> Result<u64, DbError> {
        let mut changed = 0;
        for params in &rows {
            changed += self.execute(sql, params)?;
        }
        Ok(changed)
    }
    /// [`Database::execute_many`] for an `INSERT … VALUES (…)` whose rows do
    /// not conflict with each other on its `ON CONFLICT` target, if any:
    /// PostgreSQL then takes many rows per statement ([`many_rows`]), as
    /// statements per row cost it more than the rows do.
    fn insert_many(&self, sql: &str, rows: Vec<Vec<Value>>) -> Result<u64, DbError> {
        self.execute_many(sql, rows)
    }
    /// Run one query; its rows.
    fn query(&self, sql: &str, params: &[Value]) -> Result<Vec<Row>, DbError>;
    /// Run statements without parameters, separated by `;`.
    fn batch(&self, sql: &str) -> Result<(), DbError>;
    /// Start a transaction; `write`: it will write, and takes the write lock
    /// where the engine has one (SQLite's `BEGIN IMMEDIATE`).
    fn begin(&self, write: bool) -> Result<(), DbError>;
    /// Which engine.
    fn engine(&self) -> Engine;
    /// How many migration steps ran.
    fn schema_version(&self) -> Result<usize, DbError>;
    /// Run migration step `index` (0-based) and count it, in one transaction.
    fn migrate_step(&self, index: usize, sql: &str) -> Result<(), DbError>;
}

/// The engines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// SQLite in `state_dir`.
    Sqlite,
    /// A shared PostgreSQL.
    Postgres,
}

/// Run `work` in a transaction on `database`: committed when it succeeds,
/// rolled back when it fails (a failed rollback is the original error's
/// business; the connection is then unusable and reported as such later).
pub fn transaction<T, E: From<DbError>>(
    database: &dyn Database,
    write: bool,
    work: impl FnOnce(&dyn Database) -> Result<T, E>,
) -> Result<T, E> {
    database.begin(write)?;
    match work(database) {
        Ok(value) => {
            database.batch("COMMIT")?;
            Ok(value)
        }
        Err(error) => {
            let _ = database.batch("ROLLBACK");
            Err(error)
        }
    }
}

/// Run the migration steps not yet run: the same steps on both engines.
pub fn migrate(database: &dyn Database) -> Result<usize, DbError> {
    let version = database.schema_version()?;
    let known = MIGRATIONS.len();
    if version > known {
        return Err(DbError::TooNew {
            found: version,
            known,
        });
    }
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(version) {
        let sql = match database.engine() {
            Engine::Sqlite => Cow::Borrowed(*sql),
            Engine::Postgres => Cow::Owned(postgres_ddl(sql)),
        };
        database.migrate_step(index, &sql)?;
    }
    Ok(known)
}

/// A condition that `column` lies in the bytewise range of paths under a
/// prefix, its parameters `$first` and `$first + 1` from [`prefix_range`]:
/// an index on `column COLLATE BINARY` (PostgreSQL: `"C"`, whatever the
/// database's collation) serves it. The range holds a little more than the
/// prefix's paths (`anna-b` beside `anna/…`): callers keep the rows
/// [`crate::store`]'s `under_prefix` takes.
pub fn in_prefix_range(engine: Engine, column: &str, first: usize) -> String {
    let collation = match engine {
        Engine::Sqlite => "BINARY",
        Engine::Postgres => "\"C\"",
    };
    format!(
        "{column} COLLATE {collation} >= ${first} AND {column} COLLATE {collation} < ${}",
        first + 1
    )
}

/// The bounds of [`in_prefix_range`] for `prefix`: itself, and itself with
/// `0` (the character after `/`) appended.
pub fn prefix_range(prefix: &str) -> [Value; 2] {
    [Value::from(prefix), Value::from(format!("{prefix}0"))]
}

/// `sql`'s `VALUES (…)` tuple repeated for `count` rows of `width`
/// parameters each, the `$N` of row `k` renumbered `$(k × width + N)`.
/// `None` when `sql` has no such tuple.
pub fn many_rows(sql: &str, count: usize, width: usize) -> Option<String> {
    let start = sql.find("VALUES (")? + "VALUES ".len();
    let end = start + sql[start..].find(')')? + 1;
    let tuple = &sql[start..end];
    let mut tuples = Vec::with_capacity(count);
    for row in 0..count {
        let mut renumbered = String::with_capacity(tuple.len() + 8);
        let mut chars = tuple.chars().peekable();
        while let Some(character) = chars.next() {
            if character != '$' {
                renumbered.push(character);
                continue;
            }
            let mut digits = String::new();
            while let Some(digit) = chars.next_if(char::is_ascii_digit) {
                digits.push(digit);
            }
            let number: usize = digits.parse().ok()?;
            renumbered.push_str(&format!("${}", row * width + number));
        }
        tuples.push(renumbered);
    }
    Some(format!(
        "{}{}{}",
        &sql[..start],
        tuples.join(", "),
        &sql[end..]
    ))
}

/// The database's clock, Unix seconds, as SQL. Leases and claims are set and
/// judged by this one clock, never a host's: a process on a host whose clock
/// runs ahead does not take what another holds (on SQLite the database's
/// clock is the host's, and every process is on that host).
pub fn now_seconds(engine: Engine) -> &'static str {
    match engine {
        Engine::Sqlite => "CAST(strftime('%s', 'now') AS INTEGER)",
        Engine::Postgres => "CAST(floor(extract(epoch FROM clock_timestamp())) AS BIGINT)",
    }
}

/// The two-argument minimum: SQLite's `min(a, b)`, PostgreSQL's `LEAST`.
pub fn least(engine: Engine) -> &'static str {
    match engine {
        Engine::Sqlite => "min",
        Engine::Postgres => "LEAST",
    }
}

/// A SQLite migration step as PostgreSQL DDL: a rowid key becomes an identity
/// column, `INTEGER` `BIGINT`, `BLOB` `BYTEA`, and `WITHOUT ROWID` goes.
pub fn postgres_ddl(sql: &str) -> String {
    sql.replace(
        "INTEGER PRIMARY KEY",
        "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY",
    )
    .replace(" INTEGER", " BIGINT")
    .replace(" BLOB", " BYTEA")
    .replace(" COLLATE BINARY", " COLLATE \"C\"")
    .replace(") WITHOUT ROWID", ")")
}

/// `$N` placeholders as SQLite's `?N`, outside quoted text.
pub fn sqlite_sql(sql: &str) -> Cow<'_, str> {
    if !sql.contains('$') {
        return Cow::Borrowed(sql);
    }
    let mut out = String::with_capacity(sql.len());
    let mut quote: Option<char> = None;
    let mut chars = sql.chars().peekable();
    while let Some(character) = chars.next() {
        match (quote, character) {
            (Some(open), c) if c == open => {
                quote = None;
                out.push(c);
            }
            (Some(_), c) => out.push(c),
            (None, '\'' | '"') => {
                quote = Some(character);
                out.push(character);
            }
            (None, '$') if chars.peek().is_some_and(char::is_ascii_digit) => out.push('?'),
            (None, c) => out.push(c),
        }
    }
    Cow::Owned(out)
}

impl rusqlite::ToSql for Value {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        use rusqlite::types::{ToSqlOutput, ValueRef};
        Ok(ToSqlOutput::Borrowed(match self {
            Value::Null => ValueRef::Null,
            Value::Int(value) => ValueRef::Integer(*value),
            Value::Real(value) => ValueRef::Real(*value),
            Value::Text(value) => ValueRef::Text(value.as_bytes()),
            Value::Blob(value) => ValueRef::Blob(value),
        }))
    }
}

/// The store's database in SQLite: the connection itself.
impl Database for rusqlite::Connection {
    fn execute(&self, sql: &str, params: &[Value]) -> Result<u64, DbError> {
        let mut statement = self.prepare_cached(&sqlite_sql(sql))?;
        Ok(statement.execute(rusqlite::params_from_iter(params))? as u64)
    }

    fn query(&self, sql: &str, params: &[Value]) -> Result<Vec<Row>, DbError> {
        let mut statement = self.prepare_cached(&sqlite_sql(sql))?;
        let columns = statement.column_count();
        let rows = statement.query_map(rusqlite::params_from_iter(params), |row| {
            (0..columns)
                .map(|index| {
                    Ok(match row.get_ref(index)? {
                        rusqlite::types::ValueRef::Null => Value::Null,
                        rusqlite::types::ValueRef::Integer(value) => Value::Int(value),
                        rusqlite::types::ValueRef::Real(value) => Value::Real(value),
                        rusqlite::types::ValueRef::Text(value) => {
                            Value::Text(String::from_utf8_lossy(value).into_owned())
                        }
                        rusqlite::types::ValueRef::Blob(value) => Value::Blob(value.to_vec()),
                    })
                })
                .collect::<rusqlite::Result<Vec<Value>>>()
                .map(Row)
        })?;
        Ok(rows.collect::<rusqlite::Result<Vec<Row>>>()?)
    }

    fn batch(&self, sql: &str) -> Result<(), DbError> {
        Ok(self.execute_batch(sql)?)
    }

    fn begin(&self, write: bool) -> Result<(), DbError> {
        // A writer takes the write lock at once, so that what it read holds.
        Ok(self.execute_batch(if write { "BEGIN IMMEDIATE" } else { "BEGIN" })?)
    }

    fn engine(&self) -> Engine {
        Engine::Sqlite
    }

    fn schema_version(&self) -> Result<usize, DbError> {
        let version: i64 = self.pragma_query_value(None, "user_version", |row| row.get(0))?;
        Ok(usize::try_from(version).unwrap_or(0))
    }

    fn migrate_step(&self, index: usize, sql: &str) -> Result<(), DbError> {
        transaction(self, true, |database| {
            database.batch(sql)?;
            database.batch(&format!("PRAGMA user_version = {}", index + 1))
        })
    }
}

/// The store's database in PostgreSQL: one connection, driven by a thread
/// of its own with its own small runtime, so that the store's synchronous
/// calls work the same from a blocking thread, a plain thread or a command's
/// async code (a synchronous client run inside a runtime would panic there).
/// Statements go to the thread one at a time and the answer comes back.
pub struct Postgres {
    requests: std::sync::Mutex<std::sync::mpsc::Sender<Request>>,
}

/// One statement for the connection's thread, and where its answer goes.
enum Request {
    Execute(
        String,
        Vec<Value>,
        std::sync::mpsc::Sender<Result<u64, DbError>>,
    ),
    ExecuteMany(
        String,
        Vec<Vec<Value>>,
        std::sync::mpsc::Sender<Result<u64, DbError>>,
    ),
    Query(
        String,
        Vec<Value>,
        std::sync::mpsc::Sender<Result<Vec<Row>, DbError>>,
    ),
    Batch(String, std::sync::mpsc::Sender<Result<(), DbError>>),
}

/// The driver's settings and TLS for the PostgreSQL of `[store]` (the
/// store's and the fleet's connections alike).
///
/// TLS follows the url's `sslmode` (`disable`, `prefer` or `require`);
/// without one, it is `require`, except on loopback and Unix sockets,
/// where it is `prefer`. Whenever TLS is used the server's certificate
/// is verified against the system's roots and `ca_file`, and its name
/// against the host (stricter than libpq's `require`, as tillsyn's other
/// connections are).
pub fn prepare(
    target: &StoreConfig,
) -> Result<
    (
        tokio_postgres::Config,
        tokio_postgres_rustls::MakeRustlsConnect,
    ),
    DbError,
> {
    let mut config: tokio_postgres::Config = target.url.parse()?;
    if let Some(password) = &target.password {
        config.password(password.expose());
    }
    config.connect_timeout(std::time::Duration::from_secs(10));
    if !target.url.contains("sslmode=") {
        let local = config.get_hosts().iter().all(|host| match host {
            tokio_postgres::config::Host::Tcp(name) => {
                name == "localhost"
                    || name
                        .parse::<std::net::IpAddr>()
                        .is_ok_and(|address| address.is_loopback())
            }
            tokio_postgres::config::Host::Unix(_) => true,
        });
        config.ssl_mode(match local {
            true => tokio_postgres::config::SslMode::Prefer,
            false => tokio_postgres::config::SslMode::Require,
        });
    }
    let tls = tillsyn_connectors::tls::tls_config(target.ca_file.as_deref(), true)
        .map_err(|error| DbError::Postgres(error.to_string()))?;
    Ok((
        config,
        tokio_postgres_rustls::MakeRustlsConnect::new((*tls).clone()),
    ))
}

impl Postgres {
    /// Connect to `target`.
    pub fn connect(target: &StoreConfig) -> Result<Postgres, DbError> {
        let (config, tls) = prepare(target)?;
        let (requests, incoming) = std::sync::mpsc::channel::<Request>();
        let (ready, connected) = std::sync::mpsc::channel::<Result<(), DbError>>();
        std::thread::Builder::new()
            .name("tillsyn-postgres".into())
            .spawn(move || serve(config, tls, incoming, ready))
            .map_err(|error| DbError::Postgres(format!("starting its thread: {error}")))?;
        connected
            .recv()
            .map_err(|_| DbError::Postgres("its thread stopped".into()))??;
        Ok(Postgres {
            requests: std::sync::Mutex::new(requests),
        })
    }

    /// Send `request` (made with the answer's sender) and wait for the answer.
    fn ask<T>(
        &self,
        request: impl FnOnce(std::sync::mpsc::Sender<Result<T, DbError>>) -> Request,
    ) -> Result<T, DbError> {
        let (answer, answered) = std::sync::mpsc::channel();
        self.requests
            .lock()
            .map_err(|_| DbError::Postgres("connection lock poisoned".into()))?
            .send(request(answer))
            .map_err(|_| DbError::Postgres("the connection is closed".into()))?;
        answered
            .recv()
            .map_err(|_| DbError::Postgres("the connection is closed".into()))?
    }
}

/// The connection's thread: connect, report, then run statements in order
/// until the store is dropped.
fn serve(
    config: tokio_postgres::Config,
    tls: tokio_postgres_rustls::MakeRustlsConnect,
    incoming: std::sync::mpsc::Receiver<Request>,
    ready: std::sync::mpsc::Sender<Result<(), DbError>>,
) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            let _ = ready.send(Err(DbError::Postgres(format!("its runtime: {error}"))));
            return;
        }
    };
    let client = match runtime.block_on(config.connect(tls)) {
        Ok((client, connection)) => {
            // The connection's own task; it runs while a statement does.
            runtime.spawn(connection);
            client
        }
        Err(error) => {
            let _ = ready.send(Err(error.into()));
            return;
        }
    };
    let _ = ready.send(Ok(()));
    while let Ok(request) = incoming.recv() {
        runtime.block_on(async {
            match request {
                Request::Execute(sql, params, answer) => {
                    let params = as_params(&params);
                    let _ = answer.send(
                        client
                            .execute(sql.as_str(), &params)
                            .await
                            .map_err(DbError::from),
                    );
                }
                Request::ExecuteMany(sql, rows, answer) => {
                    let changed = async {
                        let statement = client.prepare(sql.as_str()).await?;
                        let params: Vec<Vec<&(dyn tokio_postgres::types::ToSql + Sync)>> =
                            rows.iter().map(|row| as_params(row)).collect();
                        let changed = futures_util::future::try_join_all(
                            params
                                .iter()
                                .map(|params| client.execute(&statement, params.as_slice())),
                        )
                        .await?;
                        Ok::<u64, tokio_postgres::Error>(changed.iter().sum())
                    };
                    let _ = answer.send(changed.await.map_err(DbError::from));
                }
                Request::Query(sql, params, answer) => {
                    let params = as_params(&params);
                    let rows = match client.query(sql.as_str(), &params).await {
                        Ok(rows) => rows
                            .iter()
                            .map(|row| {
                                (0..row.len())
                                    .map(|index| postgres_value(row, index))
                                    .collect::<Result<Vec<Value>, DbError>>()
                                    .map(Row)
                            })
                            .collect(),
                        Err(error) => Err(error.into()),
                    };
                    let _ = answer.send(rows);
                }
                Request::Batch(sql, answer) => {
                    let _ = answer.send(
                        client
                            .batch_execute(sql.as_str())
                            .await
                            .map_err(DbError::from),
                    );
                }
            }
        });
    }
}

fn as_params(params: &[Value]) -> Vec<&(dyn tokio_postgres::types::ToSql + Sync)> {
    params
        .iter()
        .map(|value| value as &(dyn tokio_postgres::types::ToSql + Sync))
        .collect()
}

impl tokio_postgres::types::ToSql for Value {
    fn to_sql(
        &self,
        ty: &tokio_postgres::types::Type,
        out: &mut bytes::BytesMut,
    ) -> Result<tokio_postgres::types::IsNull, Box<dyn std::error::Error + Sync + Send>> {
        use tokio_postgres::types::Type;
        match self {
            Value::Null => Ok(tokio_postgres::types::IsNull::Yes),
            // An integer goes as the column's own width (or as a boolean).
            Value::Int(value) => match *ty {
                Type::INT2 => i16::try_from(*value)?.to_sql(ty, out),
                Type::INT4 => i32::try_from(*value)?.to_sql(ty, out),
                Type::BOOL => (*value != 0).to_sql(ty, out),
                Type::FLOAT8 => (*value as f64).to_sql(ty, out),
                _ => value.to_sql(ty, out),
            },
            Value::Real(value) => value.to_sql(ty, out),
            Value::Text(value) => value.as_str().to_sql(ty, out),
            Value::Blob(value) => value.as_slice().to_sql(ty, out),
        }
    }

    fn accepts(_: &tokio_postgres::types::Type) -> bool {
        true
    }

    tokio_postgres::types::to_sql_checked!();
}

/// A column of a PostgreSQL row as a [`Value`].
fn postgres_value(row: &tokio_postgres::Row, index: usize) -> Result<Value, DbError> {
    use tokio_postgres::types::Type;
    let column = row
        .columns()
        .get(index)
        .map(|column| column.type_().clone())
        .unwrap_or(Type::TEXT);
    let value = match column {
        Type::INT2 => row
            .try_get::<_, Option<i16>>(index)?
            .map(|v| Value::Int(v.into())),
        Type::INT4 => row
            .try_get::<_, Option<i32>>(index)?
            .map(|v| Value::Int(v.into())),
        Type::INT8 => row.try_get::<_, Option<i64>>(index)?.map(Value::Int),
        Type::BOOL => row
            .try_get::<_, Option<bool>>(index)?
            .map(|v| Value::Int(i64::from(v))),
        Type::FLOAT4 => row
            .try_get::<_, Option<f32>>(index)?
            .map(|v| Value::Real(v.into())),
        Type::FLOAT8 => row.try_get::<_, Option<f64>>(index)?.map(Value::Real),
        // sum() and count() of BIGINT are NUMERIC: read as text, kept whole.
        Type::NUMERIC => {
            let text = row.try_get::<_, Option<PgNumeric>>(index)?;
            text.map(|numeric| Value::Int(numeric.0))
        }
        Type::BYTEA => row.try_get::<_, Option<Vec<u8>>>(index)?.map(Value::Blob),
        _ => row.try_get::<_, Option<String>>(index)?.map(Value::Text),
    };
    Ok(value.unwrap_or(Value::Null))
}

/// A whole NUMERIC (what PostgreSQL's `sum()` of integers gives), in binary.
struct PgNumeric(i64);

impl<'a> tokio_postgres::types::FromSql<'a> for PgNumeric {
    fn from_sql(
        _: &tokio_postgres::types::Type,
        raw: &'a [u8],
    ) -> Result<PgNumeric, Box<dyn std::error::Error + Sync + Send>> {
        // ndigits, weight, sign, dscale, then base-10000 digits.
        let word = |at: usize| -> Result<i16, Box<dyn std::error::Error + Sync + Send>> {
            let bytes = raw.get(at..at + 2).ok_or("numeric cut short")?;
            Ok(i16::from_be_bytes([bytes[0], bytes[1]]))
        };
        let digits = word(0)?;
        let weight = word(2)?;
        let sign = word(4)? as u16;
        let mut value: i64 = 0;
        for index in 0..digits.max(0) as usize {
            let digit = i64::from(word(8 + 2 * index)?);
            value = value
                .checked_mul(10_000)
                .and_then(|v| v.checked_add(digit))
                .ok_or("numeric too large")?;
        }
        // Trailing zero groups are not stored.
        for _ in 0..(i32::from(weight) + 1 - i32::from(digits)).max(0) {
            value = value.checked_mul(10_000).ok_or("numeric too large")?;
        }
        if sign == 0x4000 {
            value = -value;
        } else if sign != 0 {
            return Err("numeric is not a number".into());
        }
        Ok(PgNumeric(value))
    }

    fn accepts(ty: &tokio_postgres::types::Type) -> bool {
        *ty == tokio_postgres::types::Type::NUMERIC
    }
}

impl Database for Postgres {
    fn execute(&self, sql: &str, params: &[Value]) -> Result<u64, DbError> {
        self.ask(|answer| Request::Execute(sql.to_owned(), params.to_vec(), answer))
    }

    fn query(&self, sql: &str, params: &[Value]) -> Result<Vec<Row>, DbError> {
        self.ask(|answer| Request::Query(sql.to_owned(), params.to_vec(), answer))
    }

    fn execute_many(&self, sql: &str, rows: Vec<Vec<Value>>) -> Result<u64, DbError> {
        if rows.is_empty() {
            return Ok(0);
        }
        self.ask(|answer| Request::ExecuteMany(sql.to_owned(), rows, answer))
    }

    fn insert_many(&self, sql: &str, rows: Vec<Vec<Value>>) -> Result<u64, DbError> {
        let Some(width) = rows.first().map(Vec::len).filter(|width| *width > 0) else {
            return Ok(0);
        };
        // PostgreSQL takes at most 65,535 parameters per statement.
        let per_statement = (65_535 / width).clamp(1, 1000);
        let mut changed = 0;
        let mut rows = rows.into_iter().peekable();
        while rows.peek().is_some() {
            let chunk: Vec<Vec<Value>> = rows.by_ref().take(per_statement).collect();
            let Some(statement) = many_rows(sql, chunk.len(), width) else {
                return self.execute_many(sql, chunk);
            };
            let params: Vec<Value> = chunk.into_iter().flatten().collect();
            changed += self.execute(&statement, &params)?;
        }
        Ok(changed)
    }

    fn batch(&self, sql: &str) -> Result<(), DbError> {
        self.ask(|answer| Request::Batch(sql.to_owned(), answer))
    }

    fn begin(&self, _write: bool) -> Result<(), DbError> {
        self.batch("BEGIN")
    }

    fn engine(&self) -> Engine {
        Engine::Postgres
    }

    fn schema_version(&self) -> Result<usize, DbError> {
        // Instances starting together: one creates the table, under a lock
        // (CREATE TABLE IF NOT EXISTS alone races in PostgreSQL's catalog).
        transaction(self, true, |database| {
            database.batch(
                "SELECT pg_advisory_xact_lock(7353323);
                 CREATE TABLE IF NOT EXISTS schema_version (version BIGINT NOT NULL);
                 INSERT INTO schema_version (version)
                     SELECT 0 WHERE NOT EXISTS (SELECT 1 FROM schema_version);",
            )
        })?;
        let version = self
            .query("SELECT max(version) FROM schema_version", &[])?
            .first()
            .map(|row| row.int(0))
            .transpose()?
            .unwrap_or(0);
        Ok(usize::try_from(version).unwrap_or(0))
    }

    fn migrate_step(&self, index: usize, sql: &str) -> Result<(), DbError> {
        transaction(self, true, |database| {
            // One instance migrates at a time; the others wait, then find it done.
            database.batch("LOCK TABLE schema_version IN EXCLUSIVE MODE")?;
            let version = database
                .query("SELECT max(version) FROM schema_version", &[])?
                .first()
                .map(|row| row.int(0))
                .transpose()?
                .unwrap_or(0);
            if version > index as i64 {
                return Ok(());
            }
            database.batch(sql)?;
            database.execute(
                "UPDATE schema_version SET version = $1",
                &[Value::from((index + 1) as i64)],
            )?;
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use tillsyn_config::StoreConfig;
    use tokio_postgres::config::SslMode;

    fn mode(url: &str) -> SslMode {
        let target = StoreConfig {
            url: url.to_owned(),
            password: None,
            ca_file: None,
        };
        match super::prepare(&target) {
            Ok((config, _)) => config.get_ssl_mode(),
            Err(error) => unreachable!("{url}: {error}"),
        }
    }

    #[test]
    fn many_rows_renumber_each_rows_parameters() {
        assert_eq!(
            super::many_rows(
                "INSERT INTO t (a, b, c) VALUES ($1, $2, $1) ON CONFLICT DO NOTHING",
                3,
                2
            )
            .as_deref(),
            Some(
                "INSERT INTO t (a, b, c) VALUES ($1, $2, $1), ($3, $4, $3), ($5, $6, $5) ON CONFLICT DO NOTHING"
            )
        );
        assert_eq!(super::many_rows("UPDATE t SET a = $1", 2, 1), None);
    }

    /// TLS is required unless the url says otherwise, except on loopback and
    /// Unix sockets, where it is used when the server offers it.
    #[test]
    fn tls_is_required_off_loopback_unless_the_url_says_otherwise() {
        assert_eq!(mode("postgres://t@db.example.org/x"), SslMode::Require);
        assert_eq!(mode("postgres://t@10.1.2.3:5433/x"), SslMode::Require);
        assert_eq!(mode("postgres://t@127.0.0.1/x"), SslMode::Prefer);
        assert_eq!(mode("postgres://t@localhost/x"), SslMode::Prefer);
        assert_eq!(mode("postgres://t@[::1]/x"), SslMode::Prefer);
        assert_eq!(mode("postgres://t@%2Frun%2Fpostgresql/x"), SslMode::Prefer);
        assert_eq!(
            mode("postgres://t@db.example.org/x?sslmode=disable"),
            SslMode::Disable
        );
        assert_eq!(
            mode("postgres://t@127.0.0.1/x?sslmode=require"),
            SslMode::Require
        );
    }
}
