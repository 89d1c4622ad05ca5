//! The dialect on PostgreSQL: the connection (TLS as the config asks, the
//! password from its file), a worker thread that serves the synchronous
//! store over tokio-postgres, values bound and read, and the server's errors
//! in words.

use tillsyn_config::StoreConfig;

use super::{Database, DbError, Engine, Row, Value, many_rows, transaction};

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
    let mut statements = Statements::default();
    while let Ok(request) = incoming.recv() {
        runtime.block_on(async {
            match request {
                Request::Execute(sql, params, answer) => {
                    let params = as_params(&params);
                    let changed = async {
                        let statement = statements.prepared(&client, &sql).await?;
                        client.execute(&statement, &params).await
                    };
                    let _ = answer.send(changed.await.map_err(DbError::from));
                }
                Request::ExecuteMany(sql, rows, answer) => {
                    let changed = async {
                        let statement = statements.prepared(&client, &sql).await?;
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
                    let found = async {
                        let statement = statements.prepared(&client, &sql).await?;
                        client.query(&statement, &params).await
                    };
                    let rows = match found.await {
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
                    // A batch may change the schema under a prepared
                    // statement: each is prepared again when next used.
                    // Beginning and ending a transaction change nothing.
                    if !matches!(sql.as_str(), "BEGIN" | "COMMIT" | "ROLLBACK") {
                        statements.clear();
                    }
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

/// The statements this connection has prepared, by their text: each is
/// parsed and planned by the server once per connection, and a statement
/// costs one round trip instead of two (a text statement is prepared
/// unnamed, then bound and run).
#[derive(Default)]
struct Statements {
    by_text: std::collections::HashMap<String, tokio_postgres::Statement>,
}

/// At most this many statements are kept: the many-row inserts make one text
/// per row count, and a long run should not keep them all.
const PREPARED_STATEMENTS: usize = 256;

impl Statements {
    /// `sql` prepared on `client`, once.
    async fn prepared(
        &mut self,
        client: &tokio_postgres::Client,
        sql: &str,
    ) -> Result<tokio_postgres::Statement, tokio_postgres::Error> {
        if let Some(statement) = self.by_text.get(sql) {
            return Ok(statement.clone());
        }
        let statement = client.prepare(sql).await?;
        if self.by_text.len() >= PREPARED_STATEMENTS {
            self.by_text.clear();
        }
        self.by_text.insert(sql.to_owned(), statement.clone());
        Ok(statement)
    }

    /// Forget every statement (dropping one closes it on the server).
    fn clear(&mut self) {
        self.by_text.clear();
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
