//! The rules of one source: what they need read (the scan plan, content,
//! identifiers), their fingerprints, and judging one record.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use tillsyn_config::rules::{Anchor, Check, TimestampField};
use tillsyn_connectors::{Needs, Record};
use tillsyn_core::detail;
use tillsyn_core::fingerprint::Fingerprint;

use crate::checks::{
    contains, days_between, matches_place, max_age, max_age_deadline, max_interval, max_recipients,
    selects, timestamp,
};
use crate::{
    CHECKED_RULES, CompiledRule, ConflictKey, ConflictSide, Erasures, Governing, SourceRules,
    Unerased, Violation, today,
};

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
    ) -> Option<crate::register::ErasureRequest> {
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
        Some(crate::register::ErasureRequest {
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
        rows: &[crate::identity::NewIdentity<'_>],
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
            let mut places: std::collections::BTreeMap<
                &str,
                Vec<&crate::identity::NewIdentity<'_>>,
            > = Default::default();
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

    /// `[content]`: how much is read inside records, at most.
    pub fn content_limits(&self) -> &tillsyn_config::ContentConfig {
        &self.limits
    }

    /// What the connector reads inside records at `now`: the detectors, the
    /// lowest confidence any `contains` rule counts, and which records they
    /// look at (the rules' own conditions, judged before the content is read);
    /// `None` when no rule of the source reads content. Documents are not
    /// read until the caller sets the plan's `extractor`.
    pub fn content_plan(
        &self,
        now: DateTime<Utc>,
    ) -> Option<tillsyn_connectors::content::ContentPlan> {
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
        Some(tillsyn_connectors::content::ContentPlan {
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
            // The runner adds the document extractor: starting workers is
            // no business of the rules.
            extractor: None,
        })
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
                && crate::checks::matches(
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
