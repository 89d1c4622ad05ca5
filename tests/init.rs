//! `tillsyn init` against a real Dovecot (master user) and a real slapd:
//! driven by flags and through a pseudo-terminal, it writes a config that
//! checks out and connects to every source, never holds a secret, and says
//! which secret files to create when they are missing.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::dovecot::Dovecot;
use common::slapd::{Person, SERVICE_DN, SERVICE_PASSWORD, SUFFIX, Slapd};
use common::text;

const MASTER: &str = "tillsyn-master";
const MASTER_PASSWORD: &str = "master-secret";

/// The servers and a folder with the CA bundle, a share and the secrets.
struct World {
    dovecot: Dovecot,
    slapd: Slapd,
    dir: tempfile::TempDir,
}

impl World {
    fn start() -> World {
        let dovecot = Dovecot::start(&[("anna", "anna-pw"), ("bo", "bo-pw")]);
        let people: Vec<Person> = (0..3)
            .map(|n| Person {
                uid: format!("person{n}"),
                status: "active",
                ended: None,
                opt_out: false,
            })
            .collect();
        let slapd = Slapd::start(&people);
        let dir = tempfile::tempdir().expect("tempdir");
        // One bundle for both test CAs, as an organisation's internal CA file
        // may hold several.
        let bundle = std::fs::read_to_string(dovecot.path("ca.pem")).expect("dovecot CA")
            + &std::fs::read_to_string(slapd.path("ca.pem")).expect("slapd CA");
        std::fs::write(dir.path().join("ca.pem"), bundle).expect("bundle");
        std::fs::create_dir_all(dir.path().join("share/HR")).expect("share");
        World {
            dovecot,
            slapd,
            dir,
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// A credentials folder holding both secrets.
    fn credentials(&self, name: &str) -> PathBuf {
        let folder = self.path(name);
        std::fs::create_dir_all(&folder).expect("credentials");
        std::fs::write(folder.join("imap-password"), format!("{MASTER_PASSWORD}\n"))
            .expect("imap secret");
        std::fs::write(
            folder.join("ldap-password"),
            format!("{SERVICE_PASSWORD}\n"),
        )
        .expect("ldap secret");
        folder
    }

    fn ldap_url(&self) -> String {
        format!("ldaps://localhost:{}", self.slapd.tls_port)
    }
}

fn init(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tillsyn"))
        .arg("init")
        .args(args)
        .env("TILLSYN_LOG", "warn")
        .output()
        .expect("tillsyn init")
}

/// The config holds no secret, and what the check said per source.
fn assert_connected(config: &Path, said: &str) {
    let written = std::fs::read_to_string(config).expect("config");
    for secret in [MASTER_PASSWORD, SERVICE_PASSWORD] {
        assert!(
            !written.contains(secret),
            "a secret in the config:\n{written}"
        );
    }
    for source in ["mail", "directory", "share"] {
        assert!(
            said.lines()
                .any(|line| line.trim_start().starts_with(&format!("{source}: OK"))),
            "{source} not connected:\n{said}"
        );
    }
}

#[test]
fn flags_and_a_terminal_both_make_a_config_that_connects() {
    let world = World::start();
    let port = world.dovecot.tls_port.to_string();
    let ca = world.path("ca.pem").display().to_string();
    let share = world.path("share").display().to_string();
    let state = world.path("state").display().to_string();
    let ldap_url = world.ldap_url();
    let base = format!("ou=people,{SUFFIX}");
    let common_flags = |config: &Path, credentials: &Path| -> Vec<String> {
        [
            "--config",
            &config.display().to_string(),
            "--credentials",
            &credentials.display().to_string(),
            "--ca-file",
            &ca,
            "--imap-port",
            &port,
            "--state-dir",
            &state,
            "--timezone",
            "Europe/Stockholm",
        ]
        .map(str::to_owned)
        .to_vec()
    };
    let source_flags: Vec<String> = [
        "--domain",
        "exempel.se",
        "--imap-host",
        "localhost",
        "--imap-login",
        "master",
        "--imap-master-user",
        MASTER,
        "--imap-user",
        "anna",
        "--imap-user",
        "bo",
        "--ldap-url",
        &ldap_url,
        "--ldap-base",
        &base,
        "--ldap-bind-dn",
        SERVICE_DN,
        "--share",
        &share,
    ]
    .map(str::to_owned)
    .to_vec();

    // Without the secret files: the config is written, the files to make
    // are named, and the check fails saying so.
    let config = world.path("missing/tillsyn.toml");
    let empty = world.path("empty-credentials");
    std::fs::create_dir_all(&empty).expect("empty credentials");
    let args: Vec<String> = common_flags(&config, &empty)
        .into_iter()
        .chain(source_flags.iter().cloned())
        .collect();
    let output = init(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let (said, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(3), "{said}{stderr}");
    for file in ["imap-password", "ldap-password"] {
        let expected = format!("create  {}", empty.join(file).display());
        assert!(
            said.contains(&expected),
            "{expected} not asked for:\n{said}"
        );
    }
    assert!(said.contains("cannot read secret file"), "{said}");
    assert!(
        !said.contains("tillsyn-init-"),
        "the check's own folder leaked:\n{said}"
    );

    // With them: it checks out and connects to all three sources.
    let config = world.path("flags/tillsyn.toml");
    let credentials = world.credentials("credentials");
    let args: Vec<String> = common_flags(&config, &credentials)
        .into_iter()
        .chain(source_flags.iter().cloned())
        .collect();
    let output = init(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let (said, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(0), "{said}{stderr}");
    assert_connected(&config, &said);
    assert!(said.contains("present /"), "{said}");
    // It does not overwrite what is there.
    let again = init(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert_ne!(again.status.code(), Some(0));
    assert!(text(&again).1.contains("--force"), "{:?}", text(&again));

    // The same answers through a pseudo-terminal.
    let config = world.path("terminal/tillsyn.toml");
    let answers = [
        "exempel.se", // domains
        "localhost",  // IMAP host
        "",           // login: master (default)
        MASTER,       // master user
        "anna, bo",   // mailboxes
        &ldap_url,    // directory
        &base,        // search base
        SERVICE_DN,   // bind DN
        &share,       // shares
        "",           // policy: none
        "",           // report: none
    ]
    .join("\n")
        + "\n";
    let flags = common_flags(&config, &credentials);
    let output = Command::new("python3")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/in_terminal.py"))
        .arg(&answers)
        .arg(env!("CARGO_BIN_EXE_tillsyn"))
        .arg("init")
        .args(&flags)
        .env("TILLSYN_LOG", "warn")
        .output()
        .expect("python3");
    let (said, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(0), "{said}{stderr}");
    assert!(
        said.contains("IMAP server host"),
        "no questions asked:\n{said}"
    );
    assert_connected(&config, &said);
    let written = std::fs::read_to_string(&config).expect("config");
    assert!(written.contains("users = [\"anna\", \"bo\"]"), "{written}");
}
