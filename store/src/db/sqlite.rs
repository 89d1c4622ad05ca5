//! The dialect on SQLite: values bound and read through rusqlite, and the
//! statements rewritten to SQLite's placeholders.

use super::{Database, DbError, Engine, Row, Value, sqlite_sql, transaction};

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
