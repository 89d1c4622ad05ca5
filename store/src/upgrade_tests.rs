//! Upgrades keep everything: a store file made at every earlier schema
//! version (`store/fixtures/vNN.sqlite`, frozen once made) is opened by this
//! build, and every row of every table is still there, column for column,
//! except what a migration drops on purpose (each named below with its
//! reason, and the CHANGELOG's "Rescans this upgrade causes").
//!
//! The fixtures hold rows in every table of their version: scans, findings,
//! checkpoints, identity rows, exceptions, outbox rows and the rest, filled
//! by the table's own columns (a value for each, within its CHECK lists).
//! `UPDATE_STORE_FIXTURES=1 cargo test -p tillsyn-store upgrade` makes the
//! fixtures of versions that have none (never remaking one): a new migration
//! step needs the fixture of the version before it, or this test fails.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rusqlite::Connection;
use rusqlite::types::Value as SqlValue;

use super::Store;
use super::migrations::MIGRATIONS;

/// Rows made per table.
const ROWS: i64 = 3;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

fn fixture(version: usize) -> PathBuf {
    fixtures().join(format!("v{version:02}.sqlite"))
}

/// The tables of a database, in the order they were made.
fn tables(connection: &Connection) -> Vec<(String, String)> {
    let mut statement = connection
        .prepare(
            "SELECT name, sql FROM sqlite_master WHERE type = 'table'
             AND name NOT LIKE 'sqlite_%' ORDER BY rowid",
        )
        .expect("tables");
    statement
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
        .expect("tables")
        .map(|row| row.expect("table"))
        .collect()
}

/// A table's columns: name and declared type.
fn columns(connection: &Connection, table: &str) -> Vec<(String, String)> {
    let mut statement = connection
        .prepare(&format!("PRAGMA table_info({table})"))
        .expect("columns");
    statement
        .query_map([], |row| Ok((row.get(1)?, row.get(2)?)))
        .expect("columns")
        .map(|row| row.expect("column"))
        .collect()
}

/// The values a column's `CHECK (column IN (...))` allows, if it has one.
fn allowed(table_sql: &str, column: &str) -> Option<Vec<String>> {
    let marker = format!("CHECK ({column} IN (");
    let start = table_sql.find(&marker)? + marker.len();
    let end = start + table_sql[start..].find(')')?;
    Some(
        table_sql[start..end]
            .split(',')
            .map(|value| value.trim().trim_matches('\'').to_owned())
            .collect(),
    )
}

/// Row `index` of `table`: a value for every column, by its type.
fn row_values(table: &str, sql: &str, columns: &[(String, String)], index: i64) -> Vec<SqlValue> {
    columns
        .iter()
        .enumerate()
        .map(|(at, (name, kind))| {
            if let Some(values) = allowed(sql, name) {
                // A `running` scan is failed when a store is opened: the
                // others are what a store at rest holds.
                let values: Vec<&String> = values.iter().filter(|v| *v != "running").collect();
                return SqlValue::Text(values[index as usize % values.len()].clone());
            }
            match (name.as_str(), kind.as_str()) {
                ("id" | "scan_id", _) => SqlValue::Integer(index + 1),
                (_, "INTEGER") => SqlValue::Integer(1_700_000_000 + index * 1000 + at as i64),
                (_, "REAL") => SqlValue::Real(0.5 + index as f64),
                (_, "BLOB") => SqlValue::Blob(
                    (0..16)
                        .map(|byte| (byte + index as u8 * 16 + at as u8) ^ 0xA5)
                        .collect(),
                ),
                _ => SqlValue::Text(format!("{table}.{name}.{index}")),
            }
        })
        .collect()
}

/// Make the store file of schema `version`: its migrations, then rows in
/// every table.
fn make_fixture(version: usize, path: &Path) {
    let connection = Connection::open(path).expect("fixture");
    // Small pages: the fixtures are kept in the repository.
    connection
        .pragma_update(None, "page_size", 512)
        .expect("page size");
    for sql in &MIGRATIONS[..version] {
        connection.execute_batch(sql).expect("migrate");
    }
    connection
        .pragma_update(None, "user_version", version as i64)
        .expect("version");
    for (table, sql) in tables(&connection) {
        let columns = columns(&connection, &table);
        let names: Vec<&str> = columns.iter().map(|(name, _)| name.as_str()).collect();
        let marks: Vec<String> = (1..=columns.len()).map(|at| format!("?{at}")).collect();
        let insert = format!(
            "INSERT INTO {table} ({}) VALUES ({})",
            names.join(", "),
            marks.join(", ")
        );
        for index in 0..ROWS {
            let values = row_values(&table, &sql, &columns, index);
            connection
                .execute(&insert, rusqlite::params_from_iter(values))
                .unwrap_or_else(|error| unreachable!("{table} at version {version}: {error}"));
        }
    }
    connection.execute_batch("VACUUM").expect("vacuum");
}

/// Every row of `table`, by column name.
fn rows(connection: &Connection, table: &str) -> Vec<BTreeMap<String, SqlValue>> {
    let names: Vec<String> = columns(connection, table)
        .into_iter()
        .map(|(name, _)| name)
        .collect();
    let mut statement = connection
        .prepare(&format!("SELECT * FROM {table}"))
        .expect("select");
    statement
        .query_map([], |row| {
            names
                .iter()
                .enumerate()
                .map(|(at, name)| Ok((name.clone(), row.get::<_, SqlValue>(at)?)))
                .collect()
        })
        .expect("rows")
        .map(|row| row.expect("row"))
        .collect()
}

/// A column's name after the migrations that renamed it (19: one role
/// named apart from the other).
fn renamed(table: &str, column: &str) -> String {
    match (table, column) {
        ("findings" | "conflict_keys", "owner") => "custodian".to_owned(),
        ("checked_counts" | "digest_months", "owners") => "custodians".to_owned(),
        _ => column.to_owned(),
    }
}

/// Whether `row` (of the old version) is in `now`, every column the table
/// still has equal.
fn kept(table: &str, row: &BTreeMap<String, SqlValue>, now: &[BTreeMap<String, SqlValue>]) -> bool {
    now.iter().any(|candidate| {
        row.iter().all(|(column, value)| {
            candidate
                .get(&renamed(table, column))
                .is_none_or(|current| current == value)
        })
    })
}

#[test]
fn a_store_of_every_earlier_version_opens_with_nothing_lost() {
    let current = MIGRATIONS.len();
    let making = std::env::var_os("UPDATE_STORE_FIXTURES").is_some();
    let mut missing = Vec::new();
    for version in 1..current {
        let path = fixture(version);
        if !path.exists() {
            if making {
                std::fs::create_dir_all(fixtures()).expect("fixtures");
                make_fixture(version, &path);
            } else {
                missing.push(path.display().to_string());
                continue;
            }
        }
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::copy(&path, dir.path().join("findings.sqlite")).expect("copy");
        let old = Connection::open(&path).expect("fixture");
        let before: Vec<(String, Vec<BTreeMap<String, SqlValue>>)> = tables(&old)
            .into_iter()
            .map(|(table, _)| {
                let rows = rows(&old, &table);
                (table, rows)
            })
            .collect();
        drop(old);

        let store = Store::open(dir.path())
            .unwrap_or_else(|error| unreachable!("version {version}: {error}"));
        assert_eq!(store.schema_version().expect("version"), current);
        drop(store);
        let new = Connection::open(dir.path().join("findings.sqlite")).expect("upgraded");
        let now: BTreeMap<String, Vec<BTreeMap<String, SqlValue>>> = tables(&new)
            .into_iter()
            .map(|(table, _)| {
                let rows = rows(&new, &table);
                (table, rows)
            })
            .collect();
        let had_identities = before
            .iter()
            .any(|(table, rows)| table == "identities" && !rows.is_empty());
        for (table, rows) in &before {
            assert_eq!(rows.len() as i64, ROWS, "{table} at version {version}");
            match table.as_str() {
                // 10: the identity index moved to segments; the old rows are
                // not converted, and the checkpoints go with them so every
                // source is read once more and indexed anew.
                "identities" => assert!(!now.contains_key("identities")),
                "checkpoints" if version < 10 && had_identities => {
                    assert!(now["checkpoints"].is_empty(), "version {version}");
                }
                // 21: conflict keys were plain; the key that hashes them is
                // not in the database, so they go and are made again.
                "conflict_keys" if version < 21 => {
                    assert!(now["conflict_keys"].is_empty(), "version {version}");
                }
                // 20: both outboxes move into one, each row with its kind.
                "report_outbox" | "digest_outbox" => {
                    let kind = table.trim_end_matches("_outbox");
                    let moved: Vec<_> = now["outbox"]
                        .iter()
                        .filter(|row| row.get("kind") == Some(&SqlValue::Text(kind.to_owned())))
                        .collect();
                    assert_eq!(moved.len(), rows.len(), "{table} at version {version}");
                    for row in rows {
                        let period = row.get("month").expect("month");
                        assert!(
                            moved.iter().any(|new| new.get("period") == Some(period)
                                && new.get("message") == row.get("message")
                                && new.get("attempts") == row.get("attempts")),
                            "{table} row {row:?} lost at version {version}"
                        );
                    }
                }
                _ => {
                    let current_rows = now
                        .get(table)
                        .unwrap_or_else(|| unreachable!("{table} gone after version {version}"));
                    assert_eq!(
                        current_rows.len(),
                        rows.len(),
                        "{table} at version {version}"
                    );
                    for row in rows {
                        assert!(
                            kept(table, row, current_rows),
                            "{table} row {row:?} changed from version {version}: now {current_rows:?}"
                        );
                    }
                }
            }
        }
    }
    assert!(
        missing.is_empty(),
        "no store fixture of {missing:?}: make it with \
         UPDATE_STORE_FIXTURES=1 cargo test -p tillsyn-store upgrade"
    );
}

#[test]
fn the_checks_see_a_lost_row_and_a_changed_value() {
    let table = "findings";
    let row: BTreeMap<String, SqlValue> = [
        ("id".to_owned(), SqlValue::Integer(1)),
        ("owner".to_owned(), SqlValue::Text("anna".to_owned())),
    ]
    .into();
    let same: BTreeMap<String, SqlValue> = [
        ("id".to_owned(), SqlValue::Integer(1)),
        ("custodian".to_owned(), SqlValue::Text("anna".to_owned())),
        ("detail_data".to_owned(), SqlValue::Null),
    ]
    .into();
    let changed: BTreeMap<String, SqlValue> = [
        ("id".to_owned(), SqlValue::Integer(1)),
        ("custodian".to_owned(), SqlValue::Text("bo".to_owned())),
    ]
    .into();
    assert!(kept(table, &row, std::slice::from_ref(&same)));
    assert!(!kept(table, &row, &[changed]));
    assert!(!kept(table, &row, &[]));
}
