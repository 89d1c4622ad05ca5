//! The rules engine: which records a rule looks at, and whether a record breaks it.
//!
//! Rules see only [`Record`]s, never a protocol type. A [`RuleSet`] is compiled once
//! from the config; [`RuleSet::for_source`] picks the rules that can apply to one
//! source and what they need from it (the scan plan), and
//! [`SourceRules::evaluate`] checks one record against them.
//!
//! Kinds:
//! - `max_age`: kept longer than allowed, counted from a timestamp, optionally from
//!   the end of the fiscal year it falls in, plus a grace. With `date:NAME` the clock
//!   starts at an event (a position filled) and records without it are not due.
//! - `max_recipients`: a message copied to more people than allowed, own domains
//!   excluded.
//! - `max_interval`: a second event late after a first, or still missing once the
//!   limit has passed ("incidents reported within 72 hours of detection").
//! - `contains`: personal data inside a record (a personnummer in a mail body),
//!   as the detectors found it, at a minimum confidence and count.

use tillsyn_core::detail;

use std::sync::Arc;

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use globset::{GlobSet, GlobSetBuilder};
use tillsyn_connectors::{Address, Needs, Record};
use tillsyn_core::fingerprint::Fingerprint;

use tillsyn_config::rules::{
    Anchor, Check, Conditions, MaxAgeCheck, MaxIntervalCheck, MaxRecipientsCheck, MonthDay,
    RecipientField, RuleConfig, TimestampField,
};

/// A rule with its globs compiled.
#[derive(Debug)]
pub struct CompiledRule {
    /// The rule as configured.
    pub config: RuleConfig,
    paths: GlobSet,
    exclude: GlobSet,
    /// For `conflict` rules: the `marked_by` globs.
    marked_paths: GlobSet,
    marked_exclude: GlobSet,
}

/// Which side of a `conflict` rule a record is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConflictSide {
    /// It marks a person (an opt-out).
    Marked,
    /// It must not exist for a marked person (a list membership).
    Forbidden,
}

impl ConflictSide {
    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            ConflictSide::Marked => "marked",
            ConflictSide::Forbidden => "forbidden",
        }
    }
}

/// A record's part in a `conflict` rule: which rule, which side, whose.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConflictKey {
    /// Rule id.
    pub rule: String,
    /// Side.
    pub side: ConflictSide,
    /// The keyed hash of the person's key (trimmed and compared as
    /// directories compare values), in hex: the store never holds the
    /// address itself.
    pub key: String,
}

/// Why rules could not be compiled.
#[derive(Debug, thiserror::Error)]
pub enum RuleError {
    /// A rule's path globs.
    #[error("rule {rule:?}: cannot compile its path globs: {source}")]
    Globs {
        /// The rule.
        rule: String,
        /// Why.
        #[source]
        source: globset::Error,
    },
    /// The detectors of `contains` rules.
    #[error(transparent)]
    Detectors(#[from] tillsyn_detectors::BuildError),
}

/// All configured rules, compiled.
#[derive(Debug, Clone)]
pub struct RuleSet {
    rules: Vec<Arc<CompiledRule>>,
    timezone: chrono_tz::Tz,
    /// The detectors, when a `contains` rule needs them.
    detectors: Option<Arc<tillsyn_detectors::DetectorSet>>,
    /// `[content]` limits.
    limits: tillsyn_config::ContentConfig,
    /// Hashes what the detectors find (see [`RuleSet::with_identity_key`]).
    identity: Option<tillsyn_core::identity::IdentityKey>,
    /// `[identity]`.
    identity_config: tillsyn_config::IdentityConfig,
    /// Each source's `identifiers`.
    identifiers: std::collections::HashMap<String, std::collections::BTreeMap<String, String>>,
    /// `[erasure] register`.
    erasure_register: Option<std::path::PathBuf>,
    /// The identifier kinds the config knows: an erasure request of another
    /// is refused.
    erasure_kinds: Arc<std::collections::BTreeSet<String>>,
    /// `[erasure.source]`.
    erasure_source: Option<tillsyn_config::ErasureSource>,
    /// `[[exceptions]]`.
    exceptions: Arc<crate::exceptions::Exceptions>,
}

/// The rules that apply to one source, and what they need from it.
#[derive(Debug, Clone)]
pub struct SourceRules {
    rules: Vec<Arc<CompiledRule>>,
    timezone: chrono_tz::Tz,
    detectors: Option<Arc<tillsyn_detectors::DetectorSet>>,
    limits: tillsyn_config::ContentConfig,
    identity: Option<tillsyn_core::identity::IdentityKey>,
    identity_config: tillsyn_config::IdentityConfig,
    identifiers: std::collections::BTreeMap<String, String>,
    /// Erasure requests (keyed hash → when requested), for `erased` rules.
    erasures: Arc<Erasures>,
    /// When this source's records are erasure requests: how to read them.
    erasure_source: Option<tillsyn_config::ErasureSource>,
    /// The identifier kinds the config knows (a request of another is no
    /// request).
    erasure_kinds: Arc<std::collections::BTreeSet<String>>,
    /// Whether any rule reads mail participants, or the identity index takes
    /// mail addresses.
    pub participants: bool,
}

/// How many of a source's rules have their checked records counted
/// ([`SourceRules::checking`]): one bit each in a word per record.
pub const CHECKED_RULES: usize = 64;

/// Today in `zone`, for personnummer centuries.
pub fn today(zone: chrono_tz::Tz, now: DateTime<Utc>) -> tillsyn_detectors::Today {
    let local = now.with_timezone(&zone);
    tillsyn_detectors::Today {
        year: u32::try_from(local.year()).unwrap_or(2026),
        month: local.month(),
        day: local.day(),
    }
}

/// Erasure requests as `erased` rules see them: keyed hash → when requested.
pub type Erasures = std::collections::HashMap<tillsyn_core::identity::IdentityHash, DateTime<Utc>>;

/// A record (or its mailbox folder) that still holds an identifier whose
/// erasure is overdue.
#[derive(Debug, Clone)]
pub struct Unerased {
    /// The `erased` rule.
    pub rule: Arc<CompiledRule>,
    /// Where: the record's id, path and kind (a mailbox's folder when it is
    /// the mailbox's own account).
    pub record_id: String,
    /// Record path.
    pub record_path: String,
    /// Record kind.
    pub record_kind: &'static str,
    /// Days since the earliest overdue request.
    pub age_days: i64,
    /// What, as data, without the identifier.
    pub data: detail::Detail,
}

/// A promise that governs a record, as the subject locator shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Governing {
    /// Rule id.
    pub rule: String,
    /// The quoted promise.
    pub policy: String,
    /// When the policy says the record must be gone (`max_age` rules whose
    /// timestamp the record has).
    pub gone_by: Option<DateTime<Utc>>,
    /// The rule also asks for attributes of the record, not checked here: it
    /// governs the record if those hold.
    pub conditional: bool,
}

/// One broken rule on one record.
#[derive(Debug, Clone)]
pub struct Violation {
    /// The rule.
    pub rule: Arc<CompiledRule>,
    /// Whole days since the rule's timestamp (for mail: since received), if known.
    pub age_days: Option<i64>,
    /// What was measured, in words (English), without personal data.
    pub detail: String,
    /// The same as data, to be read in another language.
    pub data: detail::Detail,
}

impl Violation {
    /// Whether the record's custodian marked it as kept on purpose and the rule
    /// takes such a mark: age rules do (a custodian may keep what they still
    /// need); a mail copied too widely or data where it must not be is not
    /// made right by a mark.
    pub fn custodian_marked(&self, record: &Record) -> bool {
        matches!(self.rule.config.check, Check::MaxAge(_))
            && record
                .attributes
                .contains_key(tillsyn_connectors::CUSTODIAN_MARK)
    }
}

fn glob_set(
    rule: &RuleConfig,
    globs: &[tillsyn_config::rules::PathGlob],
) -> Result<GlobSet, RuleError> {
    let mut builder = GlobSetBuilder::new();
    for glob in globs {
        builder.add(glob.glob.clone());
    }
    builder.build().map_err(|source| RuleError::Globs {
        rule: rule.id.clone(),
        source,
    })
}

impl RuleSet {
    /// Compile the configured rules.
    pub fn new(rules: &[RuleConfig], timezone: chrono_tz::Tz) -> Result<RuleSet, RuleError> {
        let rules = rules
            .iter()
            .map(|rule| {
                let (marked_paths, marked_exclude) = match &rule.check {
                    Check::Conflict(check) => (
                        glob_set(rule, &check.marked_by.paths)?,
                        glob_set(rule, &check.marked_by.exclude_paths)?,
                    ),
                    _ => (GlobSet::empty(), GlobSet::empty()),
                };
                Ok(Arc::new(CompiledRule {
                    paths: glob_set(rule, &rule.when.paths)?,
                    exclude: glob_set(rule, &rule.when.exclude_paths)?,
                    marked_paths,
                    marked_exclude,
                    config: rule.clone(),
                }))
            })
            .collect::<Result<Vec<_>, RuleError>>()?;
        Ok(RuleSet {
            rules,
            timezone,
            detectors: None,
            limits: Default::default(),
            identity: None,
            identity_config: Default::default(),
            identifiers: Default::default(),
            erasure_register: None,
            erasure_kinds: Arc::default(),
            erasure_source: None,
            exceptions: Arc::default(),
        })
    }

    /// The exceptions in the config ("dispens").
    pub fn exceptions(&self) -> &Arc<crate::exceptions::Exceptions> {
        &self.exceptions
    }

    /// The key that hashes what the detectors find, for scanning: without
    /// one, `contains` rules read nothing (checking a config needs no key).
    pub fn with_identity_key(mut self, key: tillsyn_core::identity::IdentityKey) -> RuleSet {
        self.identity = Some(key);
        self
    }

    /// Compile the rules of `config`, with the detectors its `contains` rules
    /// use (the built-ins and `[[detectors]]`), built once.
    pub fn for_config(config: &tillsyn_config::Config) -> Result<RuleSet, RuleError> {
        let mut set = RuleSet::new(&config.rules, config.daemon.timezone.0)?;
        set.limits = config.content.clone();
        set.identity_config = config.identity.clone();
        set.erasure_register = config.erasure.register.clone();
        set.erasure_kinds = Arc::new(config.identifier_kinds());
        set.erasure_source = config.erasure.source.clone();
        set.exceptions = Arc::new(crate::exceptions::Exceptions::from_config(config));
        set.identifiers = config
            .sources
            .iter()
            .map(|source| (source.name.clone(), source.identifiers.clone()))
            .collect();
        // Only the detectors some `contains` rule names: every other pattern
        // would cost a scan of every text for nothing.
        let named: std::collections::BTreeSet<&str> = set
            .rules
            .iter()
            .filter_map(|rule| match &rule.config.check {
                Check::Contains(check) => Some(check.detectors.iter().map(String::as_str)),
                _ => None,
            })
            .flatten()
            .collect();
        if !named.is_empty() {
            let builtins: Vec<tillsyn_detectors::Builtin> = tillsyn_detectors::Builtin::ALL
                .iter()
                .copied()
                .filter(|builtin| named.contains(builtin.as_str()))
                .collect();
            let customs = config
                .detectors
                .iter()
                .filter(|custom| named.contains(custom.name.as_str()))
                .cloned()
                .collect();
            let detectors = tillsyn_detectors::DetectorSet::with(&builtins, customs)?;
            set.detectors = Some(Arc::new(detectors));
        }
        Ok(set)
    }

    /// The rules that can apply to records of `source`.
    pub fn for_source(&self, source: &str) -> SourceRules {
        let rules: Vec<Arc<CompiledRule>> = self
            .rules
            .iter()
            .filter(|rule| {
                rule.config.when.names_source(source)
                    || matches!(&rule.config.check, Check::Conflict(check)
                        if check.marked_by.names_source(source))
            })
            .cloned()
            .collect();
        let indexes_addresses = self.identity.is_some()
            && self.identity_config.enabled
            && self.identity_config.read_mail_headers;
        let participants = indexes_addresses
            || rules
                .iter()
                .any(|rule| matches!(rule.config.check, Check::MaxRecipients(_)));
        SourceRules {
            rules,
            timezone: self.timezone,
            detectors: self.detectors.clone(),
            limits: self.limits.clone(),
            identity: self.identity.clone(),
            identity_config: self.identity_config.clone(),
            identifiers: self.identifiers.get(source).cloned().unwrap_or_default(),
            erasures: Arc::default(),
            erasure_source: self
                .erasure_source
                .clone()
                .filter(|erasure| erasure.name == source),
            erasure_kinds: self.erasure_kinds.clone(),
            participants,
        }
    }

    /// Read the erasure register into the store (keyed hashes only), when
    /// there is one and a key; `None` otherwise.
    pub fn import_erasures(
        &self,
        store: &mut crate::store::Store,
        now: DateTime<Utc>,
    ) -> Option<Result<u64, crate::erasure::ImportError>> {
        let path = self.erasure_register.as_ref()?;
        let plan = crate::identity::IdentityPlan::new(
            self.identity.clone()?,
            Default::default(),
            today(self.timezone, now),
        );
        Some(
            crate::erasure::read_register(path, &plan, self.timezone, &self.erasure_kinds)
                .map_err(crate::erasure::ImportError::from)
                .and_then(|requests| {
                    store
                        .import_erasures(&requests, now)
                        .map_err(crate::erasure::ImportError::from)
                }),
        )
    }

    /// Every rule, in config order.
    pub fn rules(&self) -> impl Iterator<Item = &RuleConfig> {
        self.rules.iter().map(|rule| &rule.config)
    }
}

impl SourceRules {
    /// These rules with the erasure requests `erased` rules judge against.
    pub fn with_erasures(mut self, erasures: Arc<Erasures>) -> SourceRules {
        self.erasures = erasures;
        self
    }

    /// When this source's records are erasure requests: what hashes them.
    pub fn erasure_plan(&self, now: DateTime<Utc>) -> Option<crate::identity::IdentityPlan> {
        self.erasure_source.as_ref()?;
        Some(crate::identity::IdentityPlan::new(
            self.identity.clone()?,
            Default::default(),
            self.today(now),
        ))
    }

    /// The erasure request a record of the erasure source stands for, hashed
    /// with `plan` (see [`SourceRules::erasure_plan`]); `None` for a record
    /// that is no valid request (no identifier of its kind, no date).
    pub fn erasure_request(
        &self,
        record: &Record,
        plan: &crate::identity::IdentityPlan,
    ) -> Option<crate::store::ErasureRequest> {
        let source = self.erasure_source.as_ref()?;
        let kind = match (&source.kind, &source.kind_attribute) {
            (Some(kind), _) => kind.clone(),
            (None, Some(attribute)) => record.attributes.get(attribute)?.trim().to_lowercase(),
            (None, None) => return None,
        };
        // A kind the config does not know is no request (and is never kept:
        // it may be an identifier in the wrong column).
        if !self.erasure_kinds.contains(&kind) {
            return None;
        }
        let identifier = record.attributes.get(&source.identifier)?;
        let requested_at = *record.dates.get(&source.date)?;
        Some(crate::store::ErasureRequest {
            hash: plan.hash(&kind, identifier)?,
            kind,
            requested_at,
        })
    }

    /// Whether an `erased` rule looks at this source.
    pub fn judges_erasures(&self) -> bool {
        self.rules
            .iter()
            .any(|rule| matches!(rule.config.check, Check::Erased(_)))
    }

    /// The places among `rows` (the identity rows of `record`) that still
    /// hold an identifier whose erasure is past an `erased` rule's deadline
    /// at `now`, one per rule and place.
    pub fn unerased(
        &self,
        record: &Record,
        rows: &[crate::store::NewIdentity<'_>],
        now: DateTime<Utc>,
    ) -> Vec<Unerased> {
        if self.erasures.is_empty() {
            return Vec::new();
        }
        let mut found = Vec::new();
        for rule in &self.rules {
            let Check::Erased(check) = &rule.config.check else {
                continue;
            };
            if !selects(rule, record) {
                continue;
            }
            // By place: the record, or its folder for the mailbox's account.
            let mut places: std::collections::BTreeMap<&str, Vec<&crate::store::NewIdentity<'_>>> =
                Default::default();
            for row in rows {
                let Some(requested) = self.erasures.get(&row.hash) else {
                    continue;
                };
                if check
                    .deadline
                    .after(*requested)
                    .is_some_and(|due| now > due)
                {
                    places.entry(row.record_id).or_default().push(row);
                }
            }
            for (_, overdue) in places {
                let Some(first) = overdue.first() else {
                    continue;
                };
                let earliest = overdue
                    .iter()
                    .filter_map(|row| self.erasures.get(&row.hash))
                    .min()
                    .copied()
                    .unwrap_or(now);
                let mut held: Vec<(String, String)> = overdue
                    .iter()
                    .map(|row| (row.kind.to_owned(), row.field.to_owned()))
                    .collect();
                held.sort();
                held.dedup();
                let local = |time: DateTime<Utc>| {
                    time.with_timezone(&self.timezone)
                        .format("%Y-%m-%d")
                        .to_string()
                };
                found.push(Unerased {
                    rule: rule.clone(),
                    record_id: first.record_id.to_owned(),
                    record_path: first.record_path.to_owned(),
                    record_kind: first.record_kind,
                    age_days: days_between(earliest, now),
                    data: detail::Detail::Erased {
                        requested: local(earliest),
                        due: check
                            .deadline
                            .after(earliest)
                            .map_or_else(String::new, local),
                        held,
                    },
                });
            }
        }
        found
    }

    /// The rules whose place conditions (source, kind, folder, path) take in
    /// `record`, each with the deadline it sets, if any.
    pub fn governing(&self, record: &Record) -> Vec<Governing> {
        self.rules
            .iter()
            .filter(|rule| {
                rule.config.when.names_source(&record.source)
                    && matches_place(&rule.config.when, &rule.paths, &rule.exclude, record)
            })
            .map(|rule| Governing {
                rule: rule.config.id.clone(),
                policy: rule.config.policy.clone(),
                gone_by: match &rule.config.check {
                    Check::MaxAge(check) => max_age_deadline(check, record, self.timezone)
                        .map(|(_, _, deadline)| deadline),
                    _ => None,
                },
                conditional: !rule.config.when.attributes.is_empty()
                    || !rule.config.when.present.is_empty(),
            })
            .collect()
    }

    /// How records become identity index rows at `now`; `None` when the
    /// index is off or there is no key (checking a config).
    pub fn identity_plan(&self, now: DateTime<Utc>) -> Option<crate::identity::IdentityPlan> {
        // The erasure register lists people by design: it is not where their
        // data is held.
        if !self.identity_config.enabled || self.erasure_source.is_some() {
            return None;
        }
        Some(crate::identity::IdentityPlan::new(
            self.identity.clone()?,
            self.identifiers.clone(),
            self.today(now),
        ))
    }

    /// The organisation's time zone (`daemon.timezone`).
    pub fn timezone(&self) -> chrono_tz::Tz {
        self.timezone
    }

    /// Today in the organisation's time zone, for personnummer centuries.
    fn today(&self, now: DateTime<Utc>) -> tillsyn_detectors::Today {
        today(self.timezone, now)
    }

    /// What the connector must provide for a scan at `now` (the scan plan).
    ///
    /// A message received at `t` can break an age rule counting from `received`
    /// only if `t` < `now` − age − grace; the latest such cutoff over the rules is
    /// `age_cutoff`. An end-of-year anchor only moves deadlines later, so records
    /// younger than the cutoff still break nothing, but it lets an old record
    /// become due without crossing the cutoff again, so it turns windows off.
    pub fn needs(&self, now: DateTime<Utc>) -> Needs {
        let mut age_cutoff: Option<DateTime<Utc>> = None;
        let mut windowed_ages = true;
        // Leaving young records out is safe only if every rule is an age rule
        // that reads `received` first (a record with it never falls back to
        // another timestamp).
        let only_age = self.rules.iter().all(|rule| {
            matches!(&rule.config.check, Check::MaxAge(check)
                if check.timestamp.0.first() == Some(&TimestampField::Received))
        });
        for rule in &self.rules {
            if let Check::MaxAge(check) = &rule.config.check
                && check.timestamp.0.contains(&TimestampField::Received)
            {
                let cutoff = check
                    .grace
                    .before(now)
                    .and_then(|time| check.max_age.before(time));
                age_cutoff = age_cutoff.max(cutoff);
                windowed_ages &= check.anchor == Anchor::None;
            }
        }
        let content = self
            .rules
            .iter()
            .any(|rule| matches!(rule.config.check, Check::Contains(_)));
        Needs {
            participants: self.participants,
            // A content rule reads every record: none may be left out. What a
            // message holds never changes, so incremental reads stay as they are.
            age_cutoff,
            only_age: only_age && !content,
            windowed_ages,
            // What a record read before yields depends on the rules and on
            // what the index and the detectors take from it: a change to any
            // reads everything again (headers now wanted, say).
            plan: self.judging_fingerprint(),
            content,
        }
    }

    /// What the connector reads inside records at `now`: the detectors, the
    /// lowest confidence any `contains` rule counts, and which records they
    /// look at (the rules' own conditions, judged before the content is read);
    /// `None` when no rule of the source reads content.
    pub fn content_plan(
        &self,
        now: DateTime<Utc>,
    ) -> Option<Arc<tillsyn_connectors::content::ContentPlan>> {
        let detectors = self.detectors.clone()?;
        let identity = self.identity.clone()?;
        let rules: Vec<Arc<CompiledRule>> = self
            .rules
            .iter()
            .filter(|rule| matches!(rule.config.check, Check::Contains(_)))
            .cloned()
            .collect();
        let min = rules
            .iter()
            .filter_map(|rule| match &rule.config.check {
                Check::Contains(check) => Some(check.min_confidence.level()),
                _ => None,
            })
            .min()?;
        let place_rules = rules.clone();
        let wants: tillsyn_connectors::content::Wants =
            Arc::new(move |record: &Record| rules.iter().any(|rule| selects(rule, record)));
        let wants_place: tillsyn_connectors::content::Wants = Arc::new(move |record: &Record| {
            place_rules
                .iter()
                .any(|rule| matches_place(&rule.config.when, &rule.paths, &rule.exclude, record))
        });
        Some(Arc::new(tillsyn_connectors::content::ContentPlan {
            detectors,
            min,
            today: self.today(now),
            limits: tillsyn_connectors::content::ContentLimits {
                message_bytes: self.limits.message_bytes,
                part_bytes: self.limits.part_bytes,
                file_bytes: self.limits.file_bytes,
            },
            wants,
            wants_place,
            identity,
            // Documents are read by workers of this binary (`tillsyn __extract`).
            extractor: tillsyn_extract::Isolated::of_this_binary()
                .ok()
                .map(|isolated| {
                    Arc::new(tillsyn_extract::Isolated {
                        limits: tillsyn_extract::Limits {
                            member_bytes: self.limits.member_bytes,
                            total_bytes: self.limits.archive_total_bytes,
                            depth: self.limits.archive_depth,
                            ..isolated.limits
                        },
                        deadline: std::time::Duration::from_secs(
                            self.limits.document_seconds.max(1),
                        ),
                        memory_bytes: self.limits.document_memory_bytes,
                        ..isolated
                    })
                }),
        }))
    }

    /// The fingerprint of the applicable rules as configured: stable across
    /// runs and builds, changed by any edit to a rule.
    fn plan(&self) -> u64 {
        let mut plan = Fingerprint::new("rules");
        for rule in &self.rules {
            plan.debug(&rule.config);
        }
        plan.value()
    }

    /// A fingerprint of everything that decides what a record yields once
    /// read: the rules, the identity index's settings, the content limits
    /// and the detectors. A record cache made under another is not used.
    pub fn judging_fingerprint(&self) -> u64 {
        Fingerprint::new("judging")
            .number(self.plan())
            .debug(&self.identity_config)
            .debug(&self.limits)
            .debug(&self.detectors)
            .value()
    }

    /// The key under which the record cache remembers records (see
    /// [`tillsyn_connectors::record_cache`]), when records may be left out
    /// as unchanged: not where `erased` rules judge them (a new erasure
    /// request changes the verdict on an unchanged record), nor for the
    /// erasure source itself, nor without the pseudonym key.
    pub fn record_cache_key(&self) -> Option<[u8; 16]> {
        if self.judges_erasures() || self.erasure_source.is_some() {
            return None;
        }
        self.path_key()
    }

    /// The key records are remembered by ([`tillsyn_connectors::record_cache::PathHasher`]),
    /// derived from the pseudonym key; `None` without one (checking a config).
    pub fn path_key(&self) -> Option<[u8; 16]> {
        Some(self.identity.as_ref()?.hash("record-cache", ""))
    }

    /// The first second (Unix time) after `now` at which the rules could
    /// judge `record`, unchanged, otherwise than at `now`: when it passes an
    /// age limit, or when an interval runs out with its second event still
    /// missing. [`tillsyn_connectors::record_cache::NEVER`] when no time can
    /// (it breaks its age rules already, or has no clock).
    pub fn recheck_at(&self, record: &Record, now: DateTime<Utc>) -> i64 {
        let mut recheck = tillsyn_connectors::record_cache::NEVER;
        for rule in &self.rules {
            if !selects(rule, record) {
                continue;
            }
            let deadline = match &rule.config.check {
                Check::MaxAge(check) => {
                    max_age_deadline(check, record, self.timezone).map(|(_, _, deadline)| deadline)
                }
                Check::MaxInterval(check) if timestamp(record, &check.to).is_none() => {
                    timestamp(record, &check.from).and_then(|start| check.max.after(start))
                }
                _ => None,
            };
            // Broken once `now` > deadline: until its second comes, not yet.
            if let Some(deadline) = deadline.filter(|deadline| *deadline >= now) {
                recheck = recheck.min(deadline.timestamp());
            }
        }
        recheck
    }

    /// The record's parts in `conflict` rules, for the join across sources:
    /// each key as a keyed hash under the pseudonym key (none without one).
    pub fn conflict_keys(&self, record: &Record) -> Vec<ConflictKey> {
        let mut keys = Vec::new();
        let Some(identity) = &self.identity else {
            return keys;
        };
        for rule in &self.rules {
            let Check::Conflict(check) = &rule.config.check else {
                continue;
            };
            let key = record.attributes.get(&check.key).map(String::as_str);
            let Some(key) = key
                .map(tillsyn_connectors::dn::comparable)
                .filter(|k| !k.is_empty())
                .map(|key| tillsyn_core::identity::to_hex(&identity.hash("conflict", &key)))
            else {
                continue;
            };
            if rule.config.when.names_source(&record.source) && selects(rule, record) {
                keys.push(ConflictKey {
                    rule: rule.config.id.clone(),
                    side: ConflictSide::Forbidden,
                    key: key.clone(),
                });
            }
            if check.marked_by.names_source(&record.source)
                && matches(
                    &check.marked_by,
                    &rule.marked_paths,
                    &rule.marked_exclude,
                    record,
                )
            {
                keys.push(ConflictKey {
                    rule: rule.config.id.clone(),
                    side: ConflictSide::Marked,
                    key,
                });
            }
        }
        keys
    }

    /// The `conflict` rules this source takes part in: id and severity.
    pub fn conflict_rules(&self) -> Vec<(String, &'static str)> {
        self.rules
            .iter()
            .filter(|rule| matches!(rule.config.check, Check::Conflict(_)))
            .map(|rule| (rule.config.id.clone(), rule.config.severity.as_str()))
            .collect()
    }

    /// The ids of the rules that apply, in the order of the bits of
    /// [`SourceRules::checking`].
    pub fn rule_ids(&self) -> impl Iterator<Item = &str> {
        self.rules.iter().map(|rule| rule.config.id.as_str())
    }

    /// The rules that check `record` (its place and attributes meet their
    /// `when`), as bits in rule order: bit `i` for rule `i`, for the first
    /// [`CHECKED_RULES`] rules.
    pub fn checking(&self, record: &Record) -> u64 {
        self.rules
            .iter()
            .take(CHECKED_RULES)
            .enumerate()
            .filter(|(_, rule)| selects(rule, record))
            .fold(0, |mask, (index, _)| mask | (1 << index))
    }

    /// The rules that check the records of the place `place` stands for
    /// ([`tillsyn_connectors::PlaceTotal`]): its kind, folder and path meet
    /// their `when`. Record attributes are not asked, since the place's
    /// records were not all read.
    pub fn checking_place(&self, place: &Record) -> u64 {
        self.rules
            .iter()
            .take(CHECKED_RULES)
            .enumerate()
            .filter(|(_, rule)| {
                rule.config.when.names_source(&place.source)
                    && matches_place(&rule.config.when, &rule.paths, &rule.exclude, place)
            })
            .fold(0, |mask, (index, _)| mask | (1 << index))
    }

    /// How many rules apply.
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    /// Whether no rule applies.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The rules `record` breaks at `now`.
    pub fn evaluate(&self, record: &Record, now: DateTime<Utc>) -> Vec<Violation> {
        self.rules
            .iter()
            .filter(|rule| selects(rule, record))
            .filter_map(|rule| {
                let (age_days, data) = match &rule.config.check {
                    Check::MaxAge(check) => max_age(check, record, now, self.timezone)?,
                    Check::MaxRecipients(check) => max_recipients(check, record, now)?,
                    Check::MaxInterval(check) => max_interval(check, record, now, self.timezone)?,
                    Check::Contains(check) => contains(check, record, now)?,
                    // Judged across sources from the keys, not record by record.
                    Check::Conflict(_) => return None,
                    // Judged from the record's identity rows (`unerased`).
                    Check::Erased(_) => return None,
                };
                Some(Violation {
                    rule: rule.clone(),
                    age_days,
                    detail: data.render(tillsyn_core::language::Language::En),
                    data,
                })
            })
            .collect()
    }
}

fn selects(rule: &CompiledRule, record: &Record) -> bool {
    matches(&rule.config.when, &rule.paths, &rule.exclude, record)
}

/// Whether `record` meets `when` (its path globs compiled as `paths`/`exclude`).
/// Sources are checked by the caller.
fn matches(when: &Conditions, paths: &GlobSet, exclude: &GlobSet, record: &Record) -> bool {
    matches_place(when, paths, exclude, record) && {
        let attributes_match = when.attributes.iter().all(|(name, wanted)| {
            record
                .attributes
                .get(name)
                .is_some_and(|value| attribute_matches(value, wanted))
        });
        let present = when
            .present
            .iter()
            .all(|name| record.attributes.contains_key(name) || record.dates.contains_key(name));
        attributes_match && present
    }
}

/// The conditions of `when` that a place decides (kind, folder, path), not
/// those of one record's attributes: whether a record there could meet it.
fn matches_place(when: &Conditions, paths: &GlobSet, exclude: &GlobSet, record: &Record) -> bool {
    if !when.kinds.is_empty() && !when.kinds.contains(&record.kind) {
        return false;
    }
    if !when.folders.is_empty() && !when.folders.iter().any(|folder| in_folder(record, folder)) {
        return false;
    }
    if !when.paths.is_empty() && !paths.is_match(&record.path) {
        return false;
    }
    !exclude.is_match(&record.path)
}

/// Whether an attribute `value` satisfies a condition `wanted`: equal ignoring
/// ASCII case (directories and CRMs are loose about case: `Closed`), DNs equal
/// as directories compare them ([`tillsyn_connectors::dn`]: case, spaces and
/// escapes), or, for a list (several values joined with `;`, as group
/// memberships are), one of its items so.
pub fn attribute_matches(value: &str, wanted: &str) -> bool {
    use tillsyn_connectors::dn::same;
    same(value, wanted) || (value.contains(';') && value.split(';').any(|item| same(item, wanted)))
}

fn in_folder(record: &Record, folder: &str) -> bool {
    if folder.starts_with('\\') {
        return record
            .attributes
            .get("special_use")
            .is_some_and(|special| special.eq_ignore_ascii_case(folder));
    }
    if folder.eq_ignore_ascii_case("INBOX") {
        return record.container.eq_ignore_ascii_case("INBOX");
    }
    record.container == folder
}

fn timestamp(record: &Record, field: &TimestampField) -> Option<DateTime<Utc>> {
    let times = &record.timestamps;
    match field {
        TimestampField::Received => times.received,
        TimestampField::Created => times.created,
        TimestampField::Modified => times.modified,
        TimestampField::LastActivity => times.last_activity,
        TimestampField::Date(name) => record.dates.get(name).copied(),
    }
}

/// The first instant after the fiscal year that `start` falls in, in `timezone`.
pub fn after_fiscal_year(
    start: DateTime<Utc>,
    year_end: MonthDay,
    timezone: chrono_tz::Tz,
) -> Option<DateTime<Utc>> {
    let local = start.with_timezone(&timezone).date_naive();
    let this_year = NaiveDate::from_ymd_opt(local.year(), year_end.month, year_end.day)?;
    let end = if local <= this_year {
        this_year
    } else {
        NaiveDate::from_ymd_opt(local.year() + 1, year_end.month, year_end.day)?
    };
    tillsyn_core::dates::midnight(end.succ_opt()?, timezone)
}

fn days_between(from: DateTime<Utc>, to: DateTime<Utc>) -> i64 {
    (to - from).num_days()
}

fn max_age(
    check: &MaxAgeCheck,
    record: &Record,
    now: DateTime<Utc>,
    timezone: chrono_tz::Tz,
) -> Option<(Option<i64>, detail::Detail)> {
    let (field, start, deadline) = max_age_deadline(check, record, timezone)?;
    if now <= deadline {
        return None;
    }
    let age = days_between(start, now);
    // Dates in the organisation's own time zone: a year end is its year end.
    let local = |time: DateTime<Utc>| time.with_timezone(&timezone).format("%Y-%m-%d").to_string();
    let detail = detail::Detail::MaxAge {
        field: field.to_string(),
        start: local(start),
        days: age,
        limit: check.max_age.to_string(),
        grace: (!check.grace.is_zero()).then(|| check.grace.to_string()),
        after_year_end: check.anchor == Anchor::EndOfYear,
        overdue_since: local(deadline),
    };
    Some((Some(age), detail))
}

/// When a max_age rule says `record` must be gone: the timestamp it counts
/// from (and which), and the deadline (max_age and grace after it, or after
/// its fiscal year).
fn max_age_deadline<'a>(
    check: &'a MaxAgeCheck,
    record: &Record,
    timezone: chrono_tz::Tz,
) -> Option<(&'a TimestampField, DateTime<Utc>, DateTime<Utc>)> {
    let (field, start) = check
        .timestamp
        .0
        .iter()
        .find_map(|field| timestamp(record, field).map(|time| (field, time)))?;
    let clock_start = match check.anchor {
        Anchor::None => start,
        Anchor::EndOfYear => after_fiscal_year(
            start,
            check
                .fiscal_year_end
                .unwrap_or(MonthDay { month: 12, day: 31 }),
            timezone,
        )?,
    };
    let due = check.max_age.after(clock_start)?;
    Some((field, start, check.grace.after(due)?))
}

fn max_interval(
    check: &MaxIntervalCheck,
    record: &Record,
    now: DateTime<Utc>,
    timezone: chrono_tz::Tz,
) -> Option<(Option<i64>, detail::Detail)> {
    let start = timestamp(record, &check.from)?;
    let deadline = check.max.after(start)?;
    let local = |time: DateTime<Utc>| {
        time.with_timezone(&timezone)
            .format("%Y-%m-%d %H:%M")
            .to_string()
    };
    let hours = |from: DateTime<Utc>, to: DateTime<Utc>| (to - from).num_hours();
    let measured = match timestamp(record, &check.to) {
        Some(end) if end > deadline => (hours(start, end), true),
        Some(_) => return None,
        None if now > deadline => (hours(start, now), false),
        None => return None,
    };
    let (hours, arrived) = measured;
    let detail = detail::Detail::Interval {
        from: check.from.to_string(),
        to: check.to.to_string(),
        start: local(start),
        hours,
        limit: check.max.to_string(),
        arrived,
    };
    Some((Some(days_between(start, now)), detail))
}

fn contains(
    check: &tillsyn_config::rules::ContainsCheck,
    record: &Record,
    now: DateTime<Utc>,
) -> Option<(Option<i64>, detail::Detail)> {
    let content = record.content.as_ref()?;
    let min = check.min_confidence.level();
    // Which detectors, how many at each confidence, in which kinds of part;
    // never the values, nor attachment names (they may name a person).
    let mut by_detector: std::collections::BTreeMap<&str, [u64; 3]> = Default::default();
    let (mut bodies, mut attachments, mut files) = (0, 0, 0);
    let mut fields: Vec<&str> = Vec::new();
    for part in &content.parts {
        let mut counted = false;
        for found in &part.matches {
            if found.confidence >= min && check.detectors.contains(&found.detector) {
                let levels = by_detector.entry(found.detector.as_str()).or_default();
                levels[found.confidence as usize] += 1;
                counted = true;
            }
        }
        if counted {
            match part.part {
                tillsyn_connectors::content::Part::Body => bodies += 1,
                tillsyn_connectors::content::Part::Attachment(_) => attachments += 1,
                tillsyn_connectors::content::Part::File => files += 1,
                tillsyn_connectors::content::Part::Field(ref name) => fields.push(name),
            }
        }
    }
    let count: u64 = by_detector.values().flatten().sum();
    if count == 0 || count < check.min_count {
        return None;
    }
    let detail = detail::Detail::Contains {
        found: by_detector
            .iter()
            .map(|(detector, levels)| ((*detector).to_owned(), *levels))
            .collect(),
        body: bodies > 0,
        attachments,
        file: files > 0,
        // Field names are the config's own words.
        fields: fields.iter().map(|field| (*field).to_owned()).collect(),
    };
    let age = record
        .timestamps
        .received
        .or(record.timestamps.modified)
        .map(|time| days_between(time, now));
    Some((age, detail))
}

fn excluded(address: &Address, domains: &[String]) -> bool {
    let domain = address.domain();
    domains.iter().any(|excluded| {
        let excluded = excluded.trim_start_matches('@');
        domain.eq_ignore_ascii_case(excluded)
            || (domain.len() > excluded.len()
                && domain.as_bytes()[domain.len() - excluded.len() - 1] == b'.'
                && domain[domain.len() - excluded.len()..].eq_ignore_ascii_case(excluded))
    })
}

fn max_recipients(
    check: &MaxRecipientsCheck,
    record: &Record,
    now: DateTime<Utc>,
) -> Option<(Option<i64>, detail::Detail)> {
    let participants = record.participants.as_ref()?;
    let (label, lists): (&str, Vec<&Vec<Address>>) = match check.count {
        RecipientField::Cc => ("Cc", vec![&participants.cc]),
        RecipientField::To => ("To", vec![&participants.to]),
        RecipientField::Total => ("To+Cc", vec![&participants.to, &participants.cc]),
    };
    let mut counted: Vec<&Address> = lists
        .into_iter()
        .flatten()
        .filter(|address| !excluded(address, &check.exclude_domains))
        .collect();
    counted.sort_by(|a, b| a.address.cmp(&b.address));
    counted.dedup_by(|a, b| a.address == b.address);
    let count = counted.len();
    if count <= check.max as usize {
        return None;
    }
    let mut domains: Vec<&str> = counted.iter().map(|address| address.domain()).collect();
    domains.sort_unstable();
    domains.dedup();
    let detail = detail::Detail::Recipients {
        count,
        header: label.to_owned(),
        outside_excluded: !check.exclude_domains.is_empty(),
        domains: domains.len(),
        limit: check.max,
    };
    let age = record
        .timestamps
        .received
        .map(|received| days_between(received, now));
    Some((age, detail))
}

#[cfg(test)]
mod tests;
