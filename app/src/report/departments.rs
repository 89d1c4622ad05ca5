//! Custodians' departments for the report's "who" (`[report.departments]`), asked
//! of an LDAP source of the config: read-only, one search per hundred custodians,
//! and only for the custodians of violations open at the report's end. The report
//! shows the department beside the custodian (a pseudonym unless the config names
//! custodians); a directory that cannot be asked leaves departments out and says
//! so in the log, never stops the report.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};

use crate::report::Month;
use tillsyn_config::Config;
use tillsyn_config::report::DepartmentLookup;
use tillsyn_store::Store;

/// Custodian (as findings have it) → department.
pub type Departments = BTreeMap<String, String>;

/// Why departments could not be looked up.
#[derive(Debug, thiserror::Error)]
pub enum DepartmentError {
    /// The configured source is no LDAP source.
    #[error("[report.departments]: {0:?} is not an ldap source of this config")]
    NotLdap(String),
    /// The store could not list the custodians.
    #[error("listing custodians: {0}")]
    Store(String),
    /// The directory failed.
    #[error("asking the directory: {0}")]
    Directory(String),
}

/// The departments of the custodians of violations open at `month`'s report end
/// (as of `now`), per `[report.departments]`; empty when it is not set.
pub async fn look_up(
    config: &Config,
    store: &Arc<Mutex<Store>>,
    month: Month,
    now: DateTime<Utc>,
) -> Result<Departments, DepartmentError> {
    let Some(lookup) = config
        .report
        .as_ref()
        .and_then(|report| report.departments.clone())
    else {
        return Ok(Departments::new());
    };
    let end = super::report_end(month, config.daemon.timezone.0, now);
    let custodians: Vec<String> = {
        let store = store.clone();
        tokio::task::spawn_blocking(move || -> Result<Vec<String>, DepartmentError> {
            let guard = store
                .lock()
                .map_err(|_| DepartmentError::Store("store lock poisoned".into()))?;
            let open = guard
                .open_counts_at(end)
                .map_err(|error| DepartmentError::Store(error.to_string()))?;
            let custodians: std::collections::BTreeSet<String> = open
                .into_keys()
                .filter_map(|(_, custodian)| custodian)
                .collect();
            Ok(custodians.into_iter().collect())
        })
        .await
        .map_err(|error| DepartmentError::Store(error.to_string()))??
    };
    ask(config, &lookup, &custodians).await
}

/// Ask the directory for the departments of `custodians`.
pub async fn ask(
    config: &Config,
    lookup: &DepartmentLookup,
    custodians: &[String],
) -> Result<Departments, DepartmentError> {
    if custodians.is_empty() {
        return Ok(Departments::new());
    }
    let settings = config
        .sources
        .iter()
        .find(|source| source.name == lookup.source)
        .map(|source| &source.settings);
    let settings = settings.ok_or_else(|| DepartmentError::NotLdap(lookup.source.clone()))?;
    let source = tillsyn_connectors::source::Source::build(settings)
        .map_err(|error| DepartmentError::Directory(error.to_string()))?;
    let found = source
        .lookup(
            &lookup.custodian_attribute,
            custodians,
            &[&lookup.attribute],
        )
        .await
        .ok_or_else(|| DepartmentError::NotLdap(lookup.source.clone()))?
        .map_err(|error| DepartmentError::Directory(error.to_string()))?;
    Ok(found
        .into_iter()
        .filter_map(|(custodian, attributes)| {
            let department = attributes.get(&lookup.attribute)?.trim();
            (!department.is_empty()).then(|| (custodian, department.to_owned()))
        })
        .collect())
}

/// [`look_up`], or none when the directory cannot be asked: the report is
/// made without them and the log says why.
pub async fn or_none(
    config: &Config,
    store: &Arc<Mutex<Store>>,
    month: Month,
    now: DateTime<Utc>,
) -> Departments {
    match look_up(config, store, month, now).await {
        Ok(departments) => departments,
        Err(error) => {
            tracing::warn!(error = %error, "Departments not looked up; the report shows custodians without them.");
            Departments::new()
        }
    }
}
