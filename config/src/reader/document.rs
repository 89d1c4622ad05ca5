//! The walk over the whole document: each top-level section in turn, then the
//! checks that span entries.

use std::path::Path;

use toml::de::DeTable;

use super::Reader;
use crate::rules::Check;
use crate::*;

impl<'t> Reader<'t> {
    pub(crate) fn read(&mut self, path: &Path) -> Option<Config> {
        let (document, syntax) = DeTable::parse_recoverable(self.text);
        if !syntax.is_empty() {
            for error in syntax {
                let offset = error.span().map(|span| span.start);
                self.issue(offset, error.message().to_owned());
            }
            return None;
        }
        let mut daemon = Some(DaemonConfig::default());
        let mut privacy = Some(PrivacyConfig::default());
        let mut privacy_span = 0..0;
        let mut sources = Vec::new();
        let mut rules = Vec::new();
        let mut report = Some(None);
        let mut detectors = Vec::new();
        let mut content = Some(ContentConfig::default());
        let mut identity = Some(IdentityConfig::default());
        let mut erasure = Some(ErasureConfig::default());
        let mut exceptions = Vec::new();
        let mut digest = Some(None);
        let mut digest_span = 0..0;
        let mut store = Some(None);
        let mut fleet = Some(None);
        let mut fleet_span = 0..0;
        for (key, value) in document.into_inner() {
            let key_span = key.span();
            match key.get_ref().as_ref() {
                "daemon" => daemon = self.deserialize(value, "[daemon]"),
                "privacy" => {
                    privacy_span = value.span();
                    let value =
                        self.renamed(value, "[privacy]", &[(&[], "name_owners", "name_people")]);
                    privacy = self
                        .deserialize::<PrivacyFile>(value, "[privacy]")
                        .and_then(|file| self.privacy(file, &privacy_span));
                }
                "report" => {
                    let value = self.renamed(
                        value,
                        "[report]",
                        &[(&["departments"], "owner_attribute", "custodian_attribute")],
                    );
                    report = self.report(value).map(Some)
                }
                "sources" => {
                    for entry in self.array(value, "sources") {
                        if let Some(source) = self.source(entry) {
                            sources.push(source);
                        }
                    }
                }
                "rules" => {
                    for entry in self.array(value, "rules") {
                        if let Some(rule) = self.rule(entry) {
                            rules.push(rule);
                        }
                    }
                }
                "content" => content = self.deserialize(value, "[content]"),
                "identity" => identity = self.deserialize(value, "[identity]"),
                "erasure" => {
                    erasure = self
                        .deserialize::<ErasureConfig>(value, "[erasure]")
                        .map(|mut erasure| {
                            erasure.register = erasure.register.map(|path| self.resolve(&path));
                            erasure
                        })
                }
                "store" => {
                    let span = value.span();
                    store = self
                        .deserialize::<StoreFile>(value, "[store]")
                        .and_then(|file| self.store(file, &span))
                        .map(Some);
                }
                "fleet" => {
                    fleet_span = value.span();
                    fleet = self
                        .deserialize::<FleetSettings>(value, "[fleet]")
                        .map(Some);
                }
                "digest" => {
                    digest_span = value.span();
                    let template_at = self.locate(&digest_span, "{owner}");
                    let value = self.renamed(
                        value,
                        "[digest]",
                        &[(&["directory"], "owner_attribute", "custodian_attribute")],
                    );
                    digest = self
                        .deserialize::<crate::DigestConfig>(value, "[digest]")
                        .map(|mut digest| {
                            digest.addresses_file =
                                digest.addresses_file.map(|path| self.resolve(&path));
                            if let Some(template) = &mut digest.address_template
                                && template.contains("{owner}")
                            {
                                *template = template.replace("{owner}", "{custodian}");
                                self.warning(
                                    template_at,
                                    "[digest]: `{owner}` in `address_template` is now `{custodian}`; read as such in this release only",
                                );
                            }
                            Some(digest)
                        });
                }
                "exceptions" => {
                    for entry in self.array(value, "exceptions") {
                        let span = entry.span();
                        if let Some(exception) = self
                            .deserialize::<crate::ExceptionConfig>(entry, "[[exceptions]]")
                        {
                            exceptions.push((exception, span));
                        }
                    }
                }
                "detectors" => {
                    for entry in self.array(value, "detectors") {
                        if let Some(detector) = self.detector(entry) {
                            detectors.push(detector);
                        }
                    }
                }
                other => self.issue(
                    Some(key_span.start),
                    format!(
                        "unknown section `{other}`; expected `daemon`, `privacy`, `sources`, `rules`, `detectors`, `content`, `identity`, `erasure`, `exceptions`, `digest`, `store` or `report`"
                    ),
                ),
            }
        }
        self.check_detector_names(&rules);
        let timezone = daemon
            .as_ref()
            .map_or(chrono_tz::UTC, |daemon| daemon.timezone.0);
        let exceptions = self.exceptions(exceptions, timezone);
        self.cross_checks();
        if let Some(Some(source)) = erasure.as_ref().map(|erasure| &erasure.source) {
            if !sources
                .iter()
                .any(|configured| configured.name == source.name)
            {
                self.issue(
                    None,
                    format!("[erasure.source]: no source named {:?}", source.name),
                );
            }
            if source.kind.is_some() == source.kind_attribute.is_some() {
                self.issue(
                    None,
                    "[erasure.source]: give one of `kind` and `kind_attribute`",
                );
            }
            let kinds = identifier_kinds(&sources, &detectors);
            if let Some(kind) = &source.kind
                && !kinds.contains(kind)
            {
                self.issue(
                    None,
                    format!(
                        "[erasure.source]: `kind` must be one this config knows ({})",
                        kinds.into_iter().collect::<Vec<_>>().join(", ")
                    ),
                );
            }
        }
        if let Some(identity) = &identity
            && !identity.enabled
        {
            for rule in &rules {
                if matches!(rule.check, Check::Erased(_)) {
                    self.issue(
                        None,
                        format!(
                            "rule {:?}: kind \"erased\" needs the identity index ([identity] enabled = true)",
                            rule.id
                        ),
                    );
                }
            }
        }
        if let (Some(Some(digest)), Some(report)) = (&digest, &report) {
            let mails = report.as_ref().is_some_and(|report| report.mail.is_some());
            if !mails {
                self.issue(
                    Some(digest_span.start),
                    "[digest] sends with [report]'s mail settings (sender and [report.smtp]); set them",
                );
            }
            if let Some(sender) = &digest.sender
                && sender.parse::<lettre::message::Mailbox>().is_err()
            {
                self.issue(
                    Some(self.locate(&digest_span, "sender")),
                    format!("[digest]: {sender:?} is not a mail address"),
                );
            }
            if let Some(directory) = &digest.directory
                && !sources.iter().any(|source| {
                    source.name == directory.source
                        && matches!(source.settings, SourceSettings::Ldap(_))
                })
            {
                self.issue(
                    Some(self.locate(&digest_span, &format!("\"{}\"", directory.source))),
                    format!(
                        "[digest.directory]: {:?} is not an ldap source of this config",
                        directory.source
                    ),
                );
            }
            let bad_domain = |domain: &String| {
                let domain = domain.trim().trim_start_matches('@');
                domain.is_empty() || !domain.contains('.') || domain.contains(['@', '/', ' ', '*'])
            };
            if digest.domains.is_empty() || digest.domains.iter().any(bad_domain) {
                self.issue(
                    Some(self.locate(&digest_span, "domains")),
                    "[digest]: `domains` names the organisation's own mail domains (`domains = [\"firma.se\"]`); a digest goes only to an address in one of them",
                );
            }
            if let Some(template) = &digest.address_template
                && !template.contains("{custodian}")
            {
                self.issue(
                    Some(self.locate(&digest_span, "address_template")),
                    "[digest]: `address_template` needs {custodian} where the custodian's name goes",
                );
            }
        }
        if let Some(Some(report)) = &report
            && let Some(departments) = &report.departments
            && !sources.iter().any(|source| {
                source.name == departments.source
                    && matches!(source.settings, SourceSettings::Ldap(_))
            })
        {
            self.issue(
                None,
                format!(
                    "[report.departments]: {:?} is not an ldap source of this config",
                    departments.source
                ),
            );
        }
        if let (Some(Some(settings)), Some(store)) = (&fleet, &store) {
            if store.is_none() {
                self.issue(
                    Some(self.locate(&fleet_span, "")),
                    "[fleet]: instances share their work through the database: set [store] url too",
                );
            }
            if settings.lease_seconds < 3 {
                self.issue(
                    Some(self.locate(&fleet_span, "lease_seconds")),
                    "[fleet]: lease_seconds must be at least 3 (it is renewed every third of it)",
                );
            }
            if settings.units_at_once == Some(0) {
                self.issue(
                    Some(self.locate(&fleet_span, "units_at_once")),
                    "[fleet]: units_at_once must be at least 1",
                );
            }
        }
        let mut daemon = daemon?;
        daemon.state_dir = self.resolve(&daemon.state_dir);
        Some(Config {
            path: path.to_path_buf(),
            daemon,
            privacy: privacy?,
            sources,
            rules,
            report: report?,
            detectors,
            content: content?,
            identity: identity?,
            erasure: erasure?,
            exceptions,
            digest: digest?,
            store: store?,
            fleet: fleet?,
            warnings: Vec::new(),
            upgrades: Vec::new(),
        })
    }
}
