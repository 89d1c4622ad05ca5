//! `[[rules]]`, `[[detectors]]` and `[[exceptions]]`: what is checked, the
//! organisation's own detectors, and what is kept on purpose.

use std::collections::BTreeSet;

use tillsyn_core::period::Period;

use super::{Reader, Spanned};
use crate::rules::{
    Check, Conditions, ConflictCheck, MaxAgeCheck, MaxIntervalCheck, MaxRecipientsCheck,
    RuleConfig, Severity,
};
use crate::*;

impl<'t> Reader<'t> {
    /// Check `[[exceptions]]` entries: each valid on its own (a reason, an
    /// end date, globs), an id used once, and naming rules and sources that
    /// exist.
    pub(super) fn exceptions(
        &mut self,
        entries: Vec<(crate::ExceptionConfig, std::ops::Range<usize>)>,
        timezone: chrono_tz::Tz,
    ) -> Vec<crate::ExceptionConfig> {
        let mut kept = Vec::new();
        let mut ids = BTreeSet::new();
        for (entry, span) in entries {
            let id = entry.id.clone();
            if let Err(error) = entry.check(timezone) {
                let at = self.locate(&span, "id");
                self.issue(Some(at), format!("[[exceptions]] {id:?}: {error}"));
                continue;
            }
            if !ids.insert(id.clone()) {
                let at = self.locate(&span, &format!("\"{id}\""));
                self.issue(Some(at), format!("exception id {id:?} is used twice"));
            }
            if entry.rule != "*"
                && !self
                    .rule_refs
                    .iter()
                    .any(|(rule, _, _)| *rule == entry.rule)
            {
                let at = self.locate(&span, &format!("\"{}\"", entry.rule));
                self.issue(
                    Some(at),
                    format!(
                        "[[exceptions]] {id:?}: unknown rule {:?} (a rule id, or \"*\" for every rule)",
                        entry.rule
                    ),
                );
            }
            for source in &entry.sources {
                if !self.source_names.iter().any(|(name, _)| name == source) {
                    let at = self.locate(&span, &format!("\"{source}\""));
                    self.issue(
                        Some(at),
                        format!("[[exceptions]] {id:?}: unknown source {source:?}"),
                    );
                }
            }
            kept.push(entry);
        }
        kept
    }

    pub(super) fn detector(
        &mut self,
        entry: Spanned<'_>,
    ) -> Option<tillsyn_detectors::CustomDetector> {
        let span = entry.span();
        let file: DetectorFile = self.deserialize(entry, "[[detectors]]")?;
        // Named even if broken below: rules that name it are not wrong too.
        self.detector_names.push(file.name.clone());
        let detector = tillsyn_detectors::CustomDetector {
            name: file.name,
            pattern: file.pattern,
            checksum: file.checksum.map(|checksum| match checksum {
                ChecksumFile::Luhn => tillsyn_detectors::Checksum::Luhn,
                ChecksumFile::Mod97 => tillsyn_detectors::Checksum::Mod97,
            }),
            keywords: file.keywords,
            window: file.window,
        };
        if tillsyn_detectors::Builtin::named(&detector.name).is_some() {
            self.issue(
                Some(self.locate(&span, "name")),
                format!(
                    "[[detectors]] {:?}: that name is a built-in detector's; choose another",
                    detector.name
                ),
            );
            return None;
        }
        if let Err(error) = tillsyn_detectors::DetectorSet::with(&[], vec![detector.clone()]) {
            self.issue(
                Some(self.locate(&span, "pattern")),
                format!("[[detectors]]: {error}"),
            );
            return None;
        }
        Some(detector)
    }

    /// Every detector a `contains` rule names is a built-in or a `[[detectors]]`.
    pub(super) fn check_detector_names(&mut self, rules: &[RuleConfig]) {
        let spans: Vec<(String, std::ops::Range<usize>)> = self
            .rule_refs
            .iter()
            .map(|(id, span, _)| (id.clone(), span.clone()))
            .collect();
        for rule in rules {
            let Check::Contains(check) = &rule.check else {
                continue;
            };
            let span = spans
                .iter()
                .find(|(id, _)| *id == rule.id)
                .map(|(_, span)| span.clone())
                .unwrap_or(0..0);
            if check.detectors.is_empty() {
                self.issue(
                    Some(span.start),
                    format!("rule {:?}: `detectors` names none", rule.id),
                );
            }
            for name in &check.detectors {
                let known = tillsyn_detectors::Builtin::named(name).is_some()
                    || self.detector_names.contains(name);
                if !known {
                    let builtins: Vec<&str> = tillsyn_detectors::Builtin::ALL
                        .iter()
                        .map(|builtin| builtin.as_str())
                        .collect();
                    self.issue(
                        Some(self.locate(&span, &format!("\"{name}\""))),
                        format!(
                            "rule {:?}: unknown detector {name:?}; built-in: {}, or a [[detectors]] name",
                            rule.id,
                            builtins.join(", ")
                        ),
                    );
                }
            }
        }
    }

    pub(super) fn rule(&mut self, entry: Spanned<'_>) -> Option<RuleConfig> {
        let span = entry.span();
        let common = [
            "id",
            "kind",
            "policy",
            "severity",
            "description",
            "when",
            "alert_after",
        ];
        let (mut values, rest) = self.split(entry, "rules", &common)?;
        let id = self.string(values[0].take(), "[[rules]] `id`", span.start)?;
        let what = format!("rule {id:?}");
        let kind_value = values[1].take();
        let kind_span = kind_value.as_ref().map(|value| value.span());
        let kind = self.string(kind_value, &format!("{what}: `kind`"), span.start);
        let policy = self.string(
            values[2].take(),
            &format!("{what}: `policy` (the promise it checks, quoted)"),
            span.start,
        );
        let severity = match values[3].take() {
            Some(value) => self.deserialize::<Severity>(value, &what),
            None => Some(Severity::default()),
        };
        let description = match values[4].take() {
            Some(value) => self.deserialize::<String>(value, &what).map(Some),
            None => Some(None),
        };
        let when = match values[5].take() {
            Some(value) => self.deserialize::<Conditions>(value, &format!("{what}: [rules.when]")),
            None => Some(Conditions::default()),
        };
        let alert_after = match values[6].take() {
            Some(value) => self.deserialize::<Period>(value, &what),
            None => Some(Period::zero()),
        };
        let referenced = when
            .as_ref()
            .map(|when| when.sources.clone())
            .unwrap_or_default();
        self.rule_refs.push((id.clone(), span.clone(), referenced));
        let check = match kind.as_deref() {
            Some("max_age") => self
                .deserialize::<MaxAgeCheck>(rest, &what)
                .map(Check::MaxAge),
            Some("max_recipients") => self
                .deserialize::<MaxRecipientsCheck>(rest, &what)
                .map(Check::MaxRecipients),
            Some("max_interval") => self
                .deserialize::<MaxIntervalCheck>(rest, &what)
                .map(Check::MaxInterval),
            Some("conflict") => self
                .deserialize::<ConflictCheck>(rest, &what)
                .map(Check::Conflict),
            Some("contains") => self
                .deserialize::<crate::rules::ContainsCheck>(rest, &what)
                .map(Check::Contains),
            Some("erased") => self
                .deserialize::<crate::rules::ErasedCheck>(rest, &what)
                .map(Check::Erased),
            Some(other) => {
                self.issue(
                    kind_span.map(|span| span.start),
                    format!(
                        "{what}: unknown kind {other:?}; expected \"max_age\", \"max_recipients\", \"max_interval\", \"conflict\", \"contains\" or \"erased\""
                    ),
                );
                None
            }
            None => None,
        };
        if let Some(Check::Conflict(conflict)) = &check {
            if matches!(conflict.key.as_str(), "owner" | "custodian") {
                self.issue(
                    Some(self.locate(&span, "key")),
                    format!(
                        "{what}: `key = \"{}\"` would join on who acts on a record, not whom it is about; name the attribute that holds the person's address on both sides (`key = \"email\"`, mapped in each source's `attributes`)",
                        conflict.key
                    ),
                );
            }
            if let Some(last) = self.rule_refs.last_mut() {
                last.2.extend(conflict.marked_by.sources.iter().cloned());
            }
        }
        Some(RuleConfig {
            id,
            policy: policy?,
            severity: severity?,
            description: description?,
            when: when?,
            check: check?,
            alert_after: alert_after?,
        })
    }
}
