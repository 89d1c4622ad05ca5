//! Building the rules from the config: globs and detectors compiled once,
//! then the rules that can apply to one source picked out.

use std::sync::Arc;

use crate::{CompiledRule, RuleError, RuleSet, SourceRules, today};
use chrono::{DateTime, Utc};
use globset::{GlobSet, GlobSetBuilder};
use tillsyn_config::rules::{Check, RuleConfig};

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

    /// `[erasure] register`: the file of erasure requests, when there is one.
    pub fn erasure_register(&self) -> Option<&std::path::Path> {
        self.erasure_register.as_deref()
    }

    /// The requests in the erasure register's `text`, each identifier
    /// hashed under the identity key (see [`crate::register::parse_register`]);
    /// `None` without a key.
    pub fn register_requests(
        &self,
        text: &str,
        now: DateTime<Utc>,
    ) -> Option<Result<Vec<crate::register::ErasureRequest>, crate::register::LineProblems>> {
        let plan = crate::identity::IdentityPlan::new(
            self.identity.clone()?,
            Default::default(),
            today(self.timezone, now),
        );
        Some(crate::register::parse_register(
            text,
            &plan,
            self.timezone,
            &self.erasure_kinds,
        ))
    }

    /// Every rule, in config order.
    pub fn rules(&self) -> impl Iterator<Item = &RuleConfig> {
        self.rules.iter().map(|rule| &rule.config)
    }
}
