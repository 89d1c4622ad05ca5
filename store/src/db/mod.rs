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

mod postgres;
mod sqlite;
#[cfg(test)]
mod tests;

use std::borrow::Cow;

pub use postgres::{Postgres, postgres_message, prepare};

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
