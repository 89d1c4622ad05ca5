//! The monthly compliance report: what management reads once a month, promise by
//! promise, all taken from the findings store's history.
//!
//! - [`build`] reads the store for one month (in the configured time zone): what
//!   was open at the month's end, what was new and resolved during it, a 12-month
//!   trend per promise, and which sources were verified. A source with no complete
//!   scan in the month is *not verified*, and a promise that has no open violation
//!   but a source that was not verified is shown as *not verified*, never as kept.
//! - [`render`] turns that into a subject, a plain-text and an HTML body
//!   (handlebars templates in `reports/`, overridable), a trend chart as PNG and a
//!   CSV of the open findings.
//! - [`mail`] wraps it as one MIME message, keeps it in the store's outbox and
//!   delivers it exactly once per month.
//!
//! Everything is computed relative to the month's end, not to today, so a report
//! for a past month reads the same whenever it is made. Custodians and the parts of
//! record locations that name people are keyed pseudonyms unless
//! `[privacy] name_people` is set (see [`crate::privacy`]).

mod build;
pub mod chart;
pub mod departments;
pub mod digest;
mod erasure;
pub mod mail;
mod model;
pub mod outbox;
pub mod render;
#[cfg(test)]
mod tests;
mod text;

pub use build::{build, build_with, report_end};
pub use model::*;
pub use text::location;

use tillsyn_store::StoreError;

/// Errors building a report.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The pseudonym key is unusable.
    #[error(transparent)]
    Key(#[from] crate::privacy::KeyError),
    /// A template failed.
    #[error(transparent)]
    Render(#[from] render::RenderError),
}
