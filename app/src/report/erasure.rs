//! The report's erasure section: requests received in the month, and each
//! request's state now, judged as `tillsyn erasure` judges it.

use chrono::{DateTime, Utc};
use tillsyn_config::Config;
use tillsyn_store::{Store, StoreError};

use super::ErasureSection;

/// The erasure section: requests received in `[start, end)`, and every
/// request's state at `now`.
pub(super) fn erasure_section(
    config: &Config,
    store: &Store,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<Option<ErasureSection>, StoreError> {
    use crate::erasure::StoreState;
    let judged = config
        .rules
        .iter()
        .any(|rule| matches!(rule.check, tillsyn_config::rules::Check::Erased(_)));
    let statuses = crate::erasure::status(config, store, now)?;
    if !judged && statuses.is_empty() {
        return Ok(None);
    }
    let mut section = ErasureSection {
        total: statuses.len() as u64,
        ..ErasureSection::default()
    };
    for request in &statuses {
        if request.requested_at >= start && request.requested_at < end {
            section.received += 1;
        }
        let due = request.due.is_some_and(|due| now > due);
        match request.overall() {
            StoreState::Overdue => section.overdue += 1,
            _ if !due => section.pending += 1,
            StoreState::Erased => section.erased += 1,
            _ => section.not_verified += 1,
        }
    }
    Ok(Some(section))
}
