//! The config as an admin meets it: the shipped example and policy packs parse;
//! a broken config gets every problem at once, each with its line, and a non-zero
//! exit; secrets never print.

mod common;

use common::*;

#[test]
fn example_config_and_every_policy_pack_pass_check_config() {
    let root = env!("CARGO_MANIFEST_DIR");
    let mut files = vec![format!("{root}/config.example.toml")];
    for entry in std::fs::read_dir(format!("{root}/examples/policies")).expect("packs") {
        files.push(entry.expect("entry").path().display().to_string());
    }
    assert!(files.len() >= 6, "example config and five packs: {files:?}");
    // The example's IMAP source reads its accounts from systemd's credentials
    // directory, as the service would.
    let credentials = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        credentials.path().join("tillsyn_imap-accounts.toml"),
        "[[accounts]]\nuser = \"anna\"\npassword = \"example\"\n",
    )
    .expect("accounts");
    std::fs::write(
        credentials.path().join("tillsyn_ldap-password"),
        "example\n",
    )
    .expect("password");
    std::fs::write(
        credentials.path().join("tillsyn_crm-token"),
        "example-token\n",
    )
    .expect("token");
    std::fs::write(
        credentials.path().join("tillsyn_smtp-password"),
        "example\n",
    )
    .expect("smtp password");
    for file in files {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_tillsyn"))
            .args(["check-config", "--config", &file])
            .env("CREDENTIALS_DIRECTORY", credentials.path())
            .output()
            .expect("run tillsyn");
        let (stdout, stderr) = text(&output);
        assert_eq!(output.status.code(), Some(0), "{file}: {stdout}{stderr}");
        assert!(stdout.contains(": OK"), "{file}: {stdout}");
    }
}

/// Each (line, fragment) appears in `output` as a problem of `file` at that line.
fn assert_reported(output: &str, file: &str, expected: &[(usize, &str)]) {
    for (line, fragment) in expected {
        let found = output
            .lines()
            .any(|l| l.contains(&format!("{file}:{line}:")) && l.contains(fragment));
        assert!(found, "line {line} should report {fragment:?}:\n{output}");
    }
}

#[test]
fn every_problem_is_reported_at_once_with_its_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("bad.toml");
    std::fs::write(
        &config,
        r#"[daemon]
state_dir = "state"
timezone = "Mars/Olympus"

[privacy]
name_owners = false
key_file = "missing-key"

[[sources]]
name = "share"
type = "fileshare"
root = "/srv/share"
folow_symlinks = true

[[rules]]
id = "stale"
kind = "max_age"
policy = "x"
max_age = "31 fortnights"
when = { sources = ["share", "nosuch"] }

[[rules]]
id = "cc"
kind = "max_recipients"
policy = "y"
max = 3
[rules.when]
paths = ["a/[b"]

[[rules]]
id = "stale"
kind = "max_age"
max_age = "36m"
policy = "z"
"#,
    )
    .expect("write");
    let output = tillsyn(&["check-config", "--config", config.to_str().expect("utf8")]);
    let (stdout, _) = text(&output);
    assert_eq!(output.status.code(), Some(3), "{stdout}");
    let expected: &[(usize, &str)] = &[
        (3, "unknown time zone \"Mars/Olympus\""),
        (7, "missing-key"),
        (13, "unknown field `folow_symlinks`"),
        (19, "unknown unit \"fortnights\""),
        (20, "unknown source \"nosuch\""),
        (28, "invalid glob"),
        (31, "rule id \"stale\" is used twice"),
        (33, "ambiguous unit \"m\""),
    ];
    assert_reported(&stdout, "bad.toml", expected);
    assert!(
        stdout.contains(&format!("{} problems", expected.len())),
        "{stdout}"
    );

    // A scan refuses the same config: exit 3 (config invalid, as for every
    // command), the same messages.
    let scan = tillsyn(&["scan", "--once", "--config", config.to_str().expect("utf8")]);
    let (_, stderr) = text(&scan);
    assert_eq!(scan.status.code(), Some(3));
    assert!(
        stderr.contains("unknown field `folow_symlinks`"),
        "{stderr}"
    );
}

#[test]
fn report_and_schedule_mistakes_are_reported_with_their_lines() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("bad.toml");
    std::fs::write(
        &config,
        r#"[daemon]
state_dir = "state"
listen = "localhost"

[[sources]]
name = "share"
type = "fileshare"
root = "/srv/share"
schedule = "0 3 * * *"

[report]
language = "de"
sender = "not an address"
recipients = ["ok@example.se"]

[report.smtp]
host = "127.0.0.1"
security = "plain"
"#,
    )
    .expect("write");
    let output = tillsyn(&["check-config", "--config", config.to_str().expect("utf8")]);
    let (stdout, _) = text(&output);
    assert_eq!(output.status.code(), Some(3), "{stdout}");
    assert_reported(
        &stdout,
        "bad.toml",
        &[
            (3, "invalid socket address"),
            (9, "six fields"),
            (12, "unknown variant `de`"),
        ],
    );

    // With the language fixed, the address and the plaintext server are next.
    let text_fixed = std::fs::read_to_string(&config)
        .expect("read")
        .replace("language = \"de\"", "language = \"en\"")
        .replace("listen = \"localhost\"", "")
        .replace("schedule = \"0 3 * * *\"", "schedule = \"0 0 3 * * *\"");
    std::fs::write(&config, &text_fixed).expect("write");
    let output = tillsyn(&["check-config", "--config", config.to_str().expect("utf8")]);
    let (stdout, _) = text(&output);
    assert_eq!(output.status.code(), Some(3), "{stdout}");
    assert!(
        stdout.contains(":13: [report]: \"not an address\" is not a mail address"),
        "{stdout}"
    );
    assert!(
        stdout.contains(":18: [report.smtp]: security = \"plain\""),
        "{stdout}"
    );

    // Departments asked of a source that is no directory.
    let departments = text_fixed
        .replace(
            "sender = \"not an address\"",
            "sender = \"tillsyn@example.se\"",
        )
        .replace("security = \"plain\"", "security = \"starttls\"")
        + "\n[report.departments]\nsource = \"share\"\n";
    std::fs::write(&config, departments).expect("write");
    let output = tillsyn(&["check-config", "--config", config.to_str().expect("utf8")]);
    let (stdout, _) = text(&output);
    assert_eq!(output.status.code(), Some(3), "{stdout}");
    assert!(
        stdout.contains("[report.departments]: \"share\" is not an ldap source"),
        "{stdout}"
    );
}

#[test]
fn a_syntax_error_names_its_line_and_a_secret_never_prints() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("syntax.toml");
    std::fs::write(
        &config,
        "[daemon]\nstate_dir = \"s\"\n[[sources]\nname = 1\n",
    )
    .expect("write");
    let output = tillsyn(&["check-config", "--config", config.to_str().expect("utf8")]);
    let (stdout, _) = text(&output);
    assert_eq!(output.status.code(), Some(3));
    assert!(stdout.contains("syntax.toml:3:"), "{stdout}");

    // A key too short to be safe is refused without printing it.
    std::fs::write(dir.path().join("key"), "hunter2-short\n").expect("key");
    std::fs::write(&config, "[privacy]\nkey_file = \"key\"\n").expect("write");
    let output = tillsyn(&["check-config", "--config", config.to_str().expect("utf8")]);
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(3));
    assert!(stdout.contains("at least 16 bytes"), "{stdout}");
    assert!(!stdout.contains("hunter2") && !stderr.contains("hunter2"));
}

#[test]
fn unknown_source_and_missing_once_are_clear_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("c.toml");
    std::fs::write(&config, "[daemon]\nstate_dir = \"s\"\n[[sources]]\nname = \"a\"\ntype = \"fileshare\"\nroot = \".\"\n").expect("write");
    let path = config.to_str().expect("utf8");
    let output = tillsyn(&["scan", "--once", "--config", path, "--source", "b"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        text(&output)
            .1
            .contains("no source named \"b\"; configured: a")
    );
    let output = tillsyn(&["scan", "--config", path]);
    assert_eq!(output.status.code(), Some(2));
    assert!(text(&output).1.contains("needs --once"));
}

#[test]
fn the_old_report_switch_is_refused_naming_the_one_that_replaced_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("old.toml");
    std::fs::write(
        &config,
        "[daemon]\nstate_dir = \"s\"\n\n[report]\nlanguage = \"en\"\nname_owners = true\n",
    )
    .expect("write");
    let output = tillsyn(&["check-config", "--config", config.to_str().expect("utf8")]);
    let (stdout, _) = text(&output);
    assert_eq!(output.status.code(), Some(3), "{stdout}");
    assert!(
        stdout.contains("old.toml:6: [report]: `name_owners` has moved to `[privacy] name_owners`"),
        "{stdout}"
    );
    // In [privacy] it is accepted.
    std::fs::write(
        &config,
        "[daemon]\nstate_dir = \"s\"\n\n[privacy]\nname_owners = true\n\n[report]\nlanguage = \"en\"\n",
    )
    .expect("write");
    let output = tillsyn(&["check-config", "--config", config.to_str().expect("utf8")]);
    assert_eq!(output.status.code(), Some(0), "{:?}", text(&output));
}

/// `[fleet]` without `[store]`, a lease too short to renew, no units at once,
/// and a source name holding a control character (it would make unit names
/// ambiguous): each reported with its line; a good `[fleet]` passes.
#[test]
fn fleet_mistakes_are_reported_with_their_lines() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(dir.path().join("share")).expect("share");
    let config = dir.path().join("fleet.toml");
    let write = |fleet: &str, store: &str, name: &str| {
        std::fs::write(
            &config,
            format!(
                "[daemon]\nstate_dir = \"state\"\n\n{store}\n{fleet}\n\n\
                 [[sources]]\nname = \"{name}\"\ntype = \"fileshare\"\nroot = \"share\"\n"
            ),
        )
        .expect("write");
        let output = tillsyn(&["check-config", "--config", config.to_str().expect("utf8")]);
        let (stdout, _) = text(&output);
        (output.status.code(), stdout)
    };
    let (code, stdout) = write(
        "[fleet]\nlease_seconds = 2\nunits_at_once = 0",
        "",
        "sh\\u0001are",
    );
    assert_eq!(code, Some(3), "{stdout}");
    for expected in [
        "[fleet]: instances share their work through the database: set [store] url too",
        "[fleet]: lease_seconds must be at least 3",
        "[fleet]: units_at_once must be at least 1",
        "must not be empty or hold control characters",
    ] {
        assert!(stdout.contains(expected), "{expected}: {stdout}");
    }
    assert!(stdout.contains("fleet.toml:5:"), "{stdout}");
    let (code, stdout) = write(
        "[fleet]\nlease_seconds = 30",
        "[store]\nurl = \"postgres://tillsyn@127.0.0.1:5432/tillsyn\"",
        "share",
    );
    assert_eq!(code, Some(0), "{stdout}");
}
