//! The one way to build what a run needs from a config: the rules under
//! the identity key, the store the config names, and each source's
//! connector. The daemon, every CLI command, `tillsyn subject` and the
//! digests start here, so a config means the same to all of them.

use tillsyn_config::{Config, SourceConfig};
use tillsyn_core::identity::IdentityKey;
use tillsyn_rules::{RuleError, RuleSet};

use crate::privacy::{KeyError, PersonDisplay};
use tillsyn_connectors::source::{BuildError, Source};
use tillsyn_store::{Store, StoreError};

/// A config, built: its rules hashing under its key.
#[derive(Debug, Clone)]
pub struct Engine {
    config: Config,
    key: IdentityKey,
    rules: RuleSet,
}

/// Why a config could not be built.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The pseudonym key could not be read or made.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// The rules did not compile.
    #[error(transparent)]
    Rules(#[from] RuleError),
}

impl Engine {
    /// Build `config`: read (or make) the pseudonym key and compile the
    /// rules under it.
    pub fn new(config: Config) -> Result<Engine, EngineError> {
        let key = crate::privacy::identity_key(&config)?;
        let rules = RuleSet::for_config(&config)?.with_identity_key(key.clone());
        Ok(Engine { config, key, rules })
    }

    /// The config it was built from.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The rules, hashing under the key.
    pub fn rules(&self) -> &RuleSet {
        &self.rules
    }

    /// The identity key (the pseudonym key as an identifier hasher).
    pub fn key(&self) -> &IdentityKey {
        &self.key
    }

    /// The store the config names: the shared PostgreSQL of `[store]`
    /// (whose noted key must be this one), or SQLite in `state_dir`.
    pub fn open_store(&self) -> Result<Store, StoreError> {
        Store::for_config(&self.config, &self.key)
    }

    /// A private copy of that store, for `--dry-run` and `--verify`.
    pub fn copy_store(&self) -> Result<Store, StoreError> {
        Store::copy_for_config(&self.config)
    }

    /// The connector of one configured source.
    pub fn source(&self, source: &SourceConfig) -> Result<Source, BuildError> {
        Source::build(&source.settings)
    }

    /// How output shows people: by name only where the config says so,
    /// every name shown when `reveal`.
    pub fn display(&self, reveal: bool) -> Result<PersonDisplay, KeyError> {
        let display = PersonDisplay::for_config(&self.config)?;
        Ok(if reveal { display.revealing() } else { display })
    }
}
