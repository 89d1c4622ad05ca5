//! Opening a store: SQLite in the state directory (with its lock and
//! private files), a shared PostgreSQL, or a private copy of either for
//! `--dry-run` and `--verify`; migrating it; failing scans a crash left
//! running.

use std::path::Path;

use rusqlite::Connection;

use crate::db::{self, Database, Value};
use crate::{Store, StoreError, holder_id, identity_index, migrations};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};

impl Store {
    /// The store `config` names: the shared PostgreSQL of `[store]`, or
    /// SQLite in `state_dir`. A shared store must have been used under
    /// `key` only ([`Store::check_shared_key`]).
    pub fn for_config(
        config: &tillsyn_config::Config,
        key: &tillsyn_core::identity::IdentityKey,
    ) -> Result<Store, StoreError> {
        match &config.store {
            Some(store) => {
                let opened = Store::open_postgres_at(store)?;
                opened.check_shared_key(key)?;
                Ok(opened)
            }
            None => Store::open(&config.daemon.state_dir),
        }
    }

    /// Note `key`'s check value in the store, or check it against the one
    /// noted there: processes sharing a store must share the pseudonym key
    /// ([`StoreError::KeyMismatch`]). Only a keyed hash of a fixed text is
    /// kept, which says nothing of the key.
    pub fn check_shared_key(
        &self,
        key: &tillsyn_core::identity::IdentityKey,
    ) -> Result<(), StoreError> {
        let check = tillsyn_core::identity::to_hex(&key.hash("store key check", "tillsyn"));
        self.db().execute(
            "INSERT INTO store_facts (name, value) VALUES ('pseudonym_key', $1)
             ON CONFLICT (name) DO NOTHING",
            &[Value::from(check.as_str())],
        )?;
        let noted = self
            .db()
            .query(
                "SELECT value FROM store_facts WHERE name = 'pseudonym_key'",
                &[],
            )?
            .first()
            .map(|row| row.text(0))
            .transpose()?;
        match noted {
            Some(noted) if noted != check => Err(StoreError::KeyMismatch),
            _ => Ok(()),
        }
    }

    /// A private copy of the store `config` names, for `--dry-run` and
    /// `--verify` (see [`Store::open_copy`]). A shared PostgreSQL is not
    /// copied: those runs are refused there, with why.
    pub fn copy_for_config(config: &tillsyn_config::Config) -> Result<Store, StoreError> {
        match &config.store {
            Some(store) => Store::copy_of_postgres(store),
            None => Store::open_copy(&config.daemon.state_dir),
        }
    }

    /// A private in-memory copy of the shared PostgreSQL store at `target`,
    /// for `--dry-run` and `--verify`: every table of the store copied row
    /// for row into an in-memory SQLite store of the same schema, so scans
    /// run against it exactly as against the real one, and nothing reaches
    /// PostgreSQL. The shared store must be at this version's schema (the
    /// copy does not migrate it: that would be a write).
    pub fn copy_of_postgres(target: &tillsyn_config::StoreConfig) -> Result<Store, StoreError> {
        let source = db::Postgres::connect(target)?;
        let (found, known) = (source.schema_version()?, migrations::MIGRATIONS.len());
        if found != known {
            return Err(StoreError::Postgres(format!(
                "the shared store's schema is version {found} and this tillsyn's {known}: \
                 a private copy is made only of a store at this version (run this version's \
                 daemon, or any command that opens the store, once first)"
            )));
        }
        let copy = Store::ready(Box::new(Connection::open_in_memory()?), None)?;
        let tables = copy.db().query(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'",
            &[],
        )?;
        db::transaction(copy.db(), true, |db| {
            for table in &tables {
                let name = table.text(0)?;
                let rows = source.query(&format!("SELECT * FROM {name}"), &[])?;
                let Some(width) = rows.first().map(|row| row.0.len()) else {
                    continue;
                };
                let placeholders: Vec<String> = (1..=width).map(|at| format!("${at}")).collect();
                db.execute_many(
                    &format!("INSERT INTO {name} VALUES ({})", placeholders.join(", ")),
                    rows.into_iter().map(|row| row.0).collect(),
                )?;
            }
            Ok::<(), StoreError>(())
        })?;
        Ok(copy)
    }

    /// Open (creating when needed) `findings.sqlite` in `state_dir`.
    pub fn open(state_dir: &Path) -> Result<Store, StoreError> {
        let state_error = |source| StoreError::StateDir {
            path: state_dir.to_path_buf(),
            source,
        };
        if !state_dir.exists() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(state_dir)
                .map_err(state_error)?;
        }
        let path = state_dir.join("findings.sqlite");
        // The database holds where personal data was found: owner-only from its
        // first byte, whatever the umask (SQLite gives its WAL and shared-memory
        // files the database's mode).
        std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&path)
            .map_err(state_error)?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
            .map_err(state_error)?;
        let connection = Connection::open(&path)?;
        connection.busy_timeout(std::time::Duration::from_secs(10))?;
        connection.pragma_update(None, "journal_mode", "WAL")?;
        connection.pragma_update(None, "synchronous", "NORMAL")?;
        connection.pragma_update(None, "foreign_keys", "ON")?;
        connection.pragma_update(None, "cache_size", -16384)?;
        // A `running` scan is a crashed one only when no other tillsyn process
        // has the store open: `tillsyn findings` run beside the daemon must not
        // mark the daemon's scan in progress as failed.
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(state_dir.join("store.lock"))
            .map_err(state_error)?;
        let lock = lock.try_lock().is_ok().then_some(lock);
        let mut store = Store::ready(Box::new(connection), lock)?;
        if store.lock.is_some() {
            store.fail_interrupted_scans()?;
        }
        Ok(store)
    }

    /// A private in-memory copy of the store in `state_dir` (empty when there is
    /// none yet), for `scan --dry-run`: scans run against it exactly as against
    /// the real one, and nothing reaches the file.
    pub fn open_copy(state_dir: &Path) -> Result<Store, StoreError> {
        let mut connection = Connection::open_in_memory()?;
        let path = state_dir.join("findings.sqlite");
        if path.exists() {
            let source = Connection::open_with_flags(
                &path,
                rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY
                    | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )?;
            source.busy_timeout(std::time::Duration::from_secs(10))?;
            let backup = rusqlite::backup::Backup::new(&source, &mut connection)?;
            backup.run_to_completion(1000, std::time::Duration::ZERO, None)?;
        }
        Store::ready(Box::new(connection), None)
    }

    /// A store on `database`, migrated to this version, with its staging
    /// table; `lock` when this process holds `store.lock`.
    fn ready(
        database: Box<dyn Database>,
        lock: Option<std::fs::File>,
    ) -> Result<Store, StoreError> {
        let mut store = Store {
            database,
            lock,
            holder: holder_id(),
            staging: identity_index::Staging::default(),
        };
        store.migrate()?;
        store.create_staging()?;
        Ok(store)
    }

    /// This connection's spill table for identity rows of running scans (see
    /// [`Store::record_identities`]): a temporary table in a temporary file,
    /// gone with the connection, so a crashed scan leaves nothing behind.
    fn create_staging(&self) -> Result<(), StoreError> {
        let table = "CREATE TEMP TABLE IF NOT EXISTS staged_identity_segments (
                 id      INTEGER PRIMARY KEY,
                 scan_id INTEGER NOT NULL,
                 spill   INTEGER NOT NULL,
                 key     INTEGER NOT NULL,
                 entries INTEGER NOT NULL,
                 data    BLOB    NOT NULL
             );";
        match self.db().engine() {
            db::Engine::Sqlite => {
                self.db().batch("PRAGMA temp_store = FILE")?;
                self.db().batch(table)?;
            }
            db::Engine::Postgres => self.db().batch(&db::postgres_ddl(table))?,
        }
        Ok(())
    }

    /// Open the store in a shared PostgreSQL at `url`
    /// (`postgres://user@host:port/database`, the password apart), migrating
    /// its schema to this version (instances starting together migrate once).
    /// Scans left `running` are not failed here: in a fleet, another instance
    /// may be running them.
    pub fn open_postgres(url: &str, password: Option<&[u8]>) -> Result<Store, StoreError> {
        Store::open_postgres_at(&tillsyn_config::StoreConfig {
            url: url.to_owned(),
            password: password.map(|password| tillsyn_core::secret::Secret::new(password.to_vec())),
            ca_file: None,
        })
    }

    /// [`Store::open_postgres`] at `target`, with its TLS settings.
    pub fn open_postgres_at(target: &tillsyn_config::StoreConfig) -> Result<Store, StoreError> {
        Store::ready(Box::new(db::Postgres::connect(target)?), None)
    }

    fn migrate(&mut self) -> Result<(), StoreError> {
        db::migrate(self.db())?;
        Ok(())
    }

    fn fail_interrupted_scans(&mut self) -> Result<(), StoreError> {
        self.db().execute(
            "UPDATE scans SET status = 'failed', error_kind = 'interrupted',
                 error_message = 'tillsyn stopped before the scan finished'
             WHERE status = 'running'",
            &[],
        )?;
        Ok(())
    }
}
