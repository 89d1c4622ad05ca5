//! The `[[rules]]` section: what a rule checks, on which records, and which promise
//! it enforces. Every field's doc is the user documentation of that key.

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;
use tillsyn_connectors::RecordKind;

use tillsyn_core::period::Period;

/// One rule: a promise of the policy, made checkable.
#[derive(Debug, Clone)]
pub struct RuleConfig {
    /// Short stable id, used in metrics and the store, e.g. `stale-inbox`.
    pub id: String,
    /// The promise, quoted from the policy, e.g. "Ansökan raderas … efter aktuell
    /// tjänst är tillsatt". Shown with every finding.
    pub policy: String,
    /// How serious a breach is. Default: `medium`.
    pub severity: Severity,
    /// What the rule checks, in plain words. Default: none.
    pub description: Option<String>,
    /// Which records the rule looks at. Default: every record of every source.
    pub when: Conditions,
    /// The check (`kind = "max_age"` or `"max_recipients"`, with its keys).
    pub check: Check,
    /// How long a breach of this rule may stay open before the alerting rules in
    /// `monitoring/` fire: the time the organisation gives itself to act. Exported
    /// as `tillsyn_rule_alert_after_seconds`. Default: `0d`.
    pub alert_after: Period,
}

/// Severity of a rule's findings.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Worth knowing.
    Low,
    /// A promise broken.
    #[default]
    Medium,
    /// A promise broken with real risk to people.
    High,
    /// Needs action now.
    Critical,
}

impl Severity {
    /// The config and label spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }
}

impl std::str::FromStr for Severity {
    type Err = String;
    fn from_str(text: &str) -> Result<Severity, String> {
        match text {
            "low" => Ok(Severity::Low),
            "medium" => Ok(Severity::Medium),
            "high" => Ok(Severity::High),
            "critical" => Ok(Severity::Critical),
            other => Err(format!("unknown severity {other:?}")),
        }
    }
}

/// `[rules.when]`: conditions that select records. All given conditions must hold.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Conditions {
    /// Source names. Default: all sources.
    #[serde(default)]
    pub sources: Vec<String>,
    /// Record kinds: `message`, `file`, `folder`, `contact`, `crm_object`.
    /// Default: all kinds.
    #[serde(default)]
    pub kinds: Vec<RecordKind>,
    /// Mail folders by name (`INBOX` matches in any case) or by special use
    /// (`\\Sent`). Default: all folders.
    #[serde(default)]
    pub folders: Vec<String>,
    /// Path globs relative to the source root (`/`-separated; `*` stays within one
    /// folder, `**` crosses folders). Default: all paths.
    #[serde(default)]
    pub paths: Vec<PathGlob>,
    /// Path globs to leave out. Default: none.
    #[serde(default)]
    pub exclude_paths: Vec<PathGlob>,
    /// Attributes that must equal the given values, e.g. `{ class = "invoice" }`.
    /// Default: none.
    #[serde(default)]
    pub attributes: BTreeMap<String, String>,
    /// Attributes or dates that must be present, e.g. `["position_filled"]`.
    /// Default: none.
    #[serde(default)]
    pub present: Vec<String>,
}

impl Conditions {
    /// Whether these conditions take in records of `source` (no `sources` means
    /// every source).
    pub fn names_source(&self, source: &str) -> bool {
        self.sources.is_empty() || self.sources.iter().any(|name| name == source)
    }
}

/// A path glob, checked when the config is read.
#[derive(Clone)]
pub struct PathGlob {
    /// The glob as written.
    pub text: String,
    /// The compiled glob.
    pub glob: globset::Glob,
}

impl fmt::Debug for PathGlob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PathGlob({:?})", self.text)
    }
}

impl<'de> Deserialize<'de> for PathGlob {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<PathGlob, D::Error> {
        let text = String::deserialize(deserializer)?;
        let glob = globset::GlobBuilder::new(&text)
            .literal_separator(true)
            .build()
            .map_err(|error| serde::de::Error::custom(format!("invalid glob: {error}")))?;
        Ok(PathGlob { text, glob })
    }
}

/// What a rule checks.
#[derive(Debug, Clone)]
pub enum Check {
    /// `kind = "max_age"`: the record may be kept at most this long.
    MaxAge(MaxAgeCheck),
    /// `kind = "max_recipients"`: a message may reach at most this many people.
    MaxRecipients(MaxRecipientsCheck),
    /// `kind = "max_interval"`: a second event must follow a first within a
    /// limit ("reported within 72 hours of detection").
    MaxInterval(MaxIntervalCheck),
    /// `kind = "conflict"`: records selected by `when` must not exist for a
    /// person whom records selected by `marked_by` mark ("unsubscribed, yet still
    /// on the list"), joined across sources.
    Conflict(ConflictCheck),
    /// `kind = "contains"`: a record must not hold this personal data in its
    /// content (mail bodies and attachments, file text): "send personal data by
    /// mail as little as possible".
    Contains(ContainsCheck),
    /// `kind = "erased"`: a person on the erasure register must be in no
    /// record once `deadline` has passed since the request ("the customer can
    /// ask at any time to have their personal data erased").
    Erased(ErasedCheck),
}

/// `kind = "erased"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ErasedCheck {
    /// How long after the request the data may remain. Default: `"30d"`, the
    /// month GDPR art. 12(3) gives.
    #[serde(default = "default_erasure_deadline")]
    pub deadline: Period,
}

fn default_erasure_deadline() -> Period {
    Period::days(30)
}

impl Check {
    /// The `kind` spelling.
    pub fn kind(&self) -> &'static str {
        match self {
            Check::MaxAge(_) => "max_age",
            Check::MaxRecipients(_) => "max_recipients",
            Check::MaxInterval(_) => "max_interval",
            Check::Conflict(_) => "conflict",
            Check::Contains(_) => "contains",
            Check::Erased(_) => "erased",
        }
    }
}

/// Keys of a `max_age` rule.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaxAgeCheck {
    /// How long the record may be kept, counted from `timestamp` (and `anchor`),
    /// e.g. `"31d"`, `"36 months"`, `"7y"`. Required.
    pub max_age: Period,
    /// Which time the age counts from; a list means the first one the record has.
    /// `received`, `created`, `modified`, `last_activity`, or `date:NAME` for a
    /// named date (e.g. `date:position_filled` from a marker file, or
    /// `date:path_date` from the path). A record without any of them is skipped,
    /// which makes `date:` an event clock: no event, no deadline. Default:
    /// `["received", "modified"]`.
    #[serde(default = "default_timestamps")]
    pub timestamp: TimestampChoice,
    /// `none` counts from the timestamp itself; `end_of_year` from the end of the
    /// fiscal year it falls in (bookkeeping law: "7 years after the year end").
    /// Default: `none`.
    #[serde(default)]
    pub anchor: Anchor,
    /// Last day of the fiscal year as `MM-DD`, for `anchor = "end_of_year"`.
    /// Default: `12-31`.
    #[serde(default)]
    pub fiscal_year_end: Option<MonthDay>,
    /// Extra time allowed after `max_age` before it counts as a breach, e.g. the
    /// days the routine needs to run. Default: `0d`.
    #[serde(default = "Period::zero")]
    pub grace: Period,
}

fn default_timestamps() -> TimestampChoice {
    TimestampChoice(vec![TimestampField::Received, TimestampField::Modified])
}

/// Where an age counts from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TimestampField {
    /// When the store received it.
    Received,
    /// When it was created.
    Created,
    /// When it last changed.
    Modified,
    /// Last activity or contact.
    LastActivity,
    /// A named date.
    Date(String),
}

impl fmt::Display for TimestampField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TimestampField::Received => f.write_str("received"),
            TimestampField::Created => f.write_str("created"),
            TimestampField::Modified => f.write_str("modified"),
            TimestampField::LastActivity => f.write_str("last activity"),
            TimestampField::Date(name) => write!(f, "{}", name.replace('_', " ")),
        }
    }
}

impl std::str::FromStr for TimestampField {
    type Err = String;
    fn from_str(text: &str) -> Result<TimestampField, String> {
        Ok(match text {
            "received" => TimestampField::Received,
            "created" => TimestampField::Created,
            "modified" => TimestampField::Modified,
            "last_activity" => TimestampField::LastActivity,
            other => match other.strip_prefix("date:") {
                Some(name) if !name.is_empty() => TimestampField::Date(name.to_owned()),
                _ => {
                    return Err(format!(
                        "unknown timestamp {other:?}; use received, created, modified, \
                         last_activity or date:NAME"
                    ));
                }
            },
        })
    }
}

/// One timestamp or a list tried in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimestampChoice(pub Vec<TimestampField>);

impl<'de> Deserialize<'de> for TimestampChoice {
    fn deserialize<D: serde::Deserializer<'de>>(
        deserializer: D,
    ) -> Result<TimestampChoice, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum OneOrMany {
            One(String),
            Many(Vec<String>),
        }
        let names = match OneOrMany::deserialize(deserializer)? {
            OneOrMany::One(name) => vec![name],
            OneOrMany::Many(names) => names,
        };
        if names.is_empty() {
            return Err(serde::de::Error::custom("timestamp list is empty"));
        }
        names
            .iter()
            .map(|name| name.parse().map_err(serde::de::Error::custom))
            .collect::<Result<Vec<_>, _>>()
            .map(TimestampChoice)
    }
}

/// Where a `max_age` clock starts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Anchor {
    /// At the timestamp.
    #[default]
    None,
    /// At the end of the fiscal year the timestamp falls in.
    EndOfYear,
}

/// A day of the year, `MM-DD`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MonthDay {
    /// 1–12.
    pub month: u32,
    /// 1–31, valid for the month (02-29 is refused: not every year has it).
    pub day: u32,
}

impl<'de> Deserialize<'de> for MonthDay {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<MonthDay, D::Error> {
        let text = String::deserialize(deserializer)?;
        let invalid = || serde::de::Error::custom(format!("{text:?} is not a MM-DD day"));
        let (month, day) = text.split_once('-').ok_or_else(invalid)?;
        let month: u32 = month.parse().map_err(|_| invalid())?;
        let day: u32 = day.parse().map_err(|_| invalid())?;
        // 2023 is not a leap year, so 02-29 is refused.
        chrono::NaiveDate::from_ymd_opt(2023, month, day).ok_or_else(invalid)?;
        Ok(MonthDay { month, day })
    }
}

/// Keys of a `max_recipients` rule.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaxRecipientsCheck {
    /// Which recipients count: `cc`, `to`, or `total` (To + Cc). Default: `cc`.
    #[serde(default)]
    pub count: RecipientField,
    /// Most recipients allowed; one more is a finding. Required.
    pub max: u32,
    /// Domains whose addresses are not counted (your own organisation), matched
    /// with their subdomains, e.g. `["example.se"]`. Default: none.
    #[serde(default)]
    pub exclude_domains: Vec<String>,
}

/// Keys of a `contains` rule.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContainsCheck {
    /// Detectors whose matches count: built-in (`personnummer`, `iban`,
    /// `payment_card`, `phone`, `email`, `ipv4`, `ipv6`) or the names of
    /// `[[detectors]]`. Required.
    pub detectors: Vec<String>,
    /// The lowest confidence that counts: `low`, `medium` or `high`. Default:
    /// `medium` (a bare 10-digit number with nothing around it is only `low`).
    #[serde(default)]
    pub min_confidence: MinConfidence,
    /// Matches needed in one record for a finding. Default: 1.
    #[serde(default = "default_min_count")]
    pub min_count: u64,
}

fn default_min_count() -> u64 {
    1
}

/// A confidence as written in the config.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MinConfidence {
    /// Every valid match.
    Low,
    /// Written as such numbers are written, or named nearby.
    #[default]
    Medium,
    /// Written as such and named nearby.
    High,
}

impl MinConfidence {
    /// The detectors' confidence.
    pub fn level(self) -> tillsyn_detectors::Confidence {
        match self {
            MinConfidence::Low => tillsyn_detectors::Confidence::Low,
            MinConfidence::Medium => tillsyn_detectors::Confidence::Medium,
            MinConfidence::High => tillsyn_detectors::Confidence::High,
        }
    }
}

/// Which header's recipients count.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RecipientField {
    /// Cc only.
    #[default]
    Cc,
    /// To only.
    To,
    /// To and Cc.
    Total,
}

/// Keys of a `max_interval` rule.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaxIntervalCheck {
    /// When the clock starts, e.g. `date:detected`. A record without it is not
    /// checked. Required.
    pub from: TimestampField,
    /// The event that must follow, e.g. `date:reported`. While it is missing the
    /// clock runs on to now: overdue once the limit has passed. Required.
    pub to: TimestampField,
    /// The longest allowed interval, e.g. `"72h"`. Required.
    pub max: Period,
}

impl<'de> Deserialize<'de> for TimestampField {
    fn deserialize<D: serde::Deserializer<'de>>(
        deserializer: D,
    ) -> Result<TimestampField, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// Keys of a `conflict` rule.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConflictCheck {
    /// The records that mark a person, e.g. `{ sources = ["crm"], attributes =
    /// { opt_out = "true" } }`. The rule's own `when` selects the records that
    /// must then not exist. Required.
    pub marked_by: Conditions,
    /// The attribute that identifies the person on both sides (`email`, as
    /// each source maps it in `attributes`), compared trimmed and lower-cased
    /// as directories compare values. Required: a record's custodian is who
    /// acts on it, not whom it is about, so nothing is joined on it.
    pub key: String,
}
