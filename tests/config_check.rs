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
name_people = false
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
        stdout.contains("old.toml:6: [report]: `name_owners` has moved to `[privacy] name_people`"),
        "{stdout}"
    );
    // In [privacy] it is accepted.
    std::fs::write(
        &config,
        "[daemon]\nstate_dir = \"s\"\n\n[privacy]\nname_people = true\n\n[report]\nlanguage = \"en\"\n",
    )
    .expect("write");
    let output = tillsyn(&["check-config", "--config", config.to_str().expect("utf8")]);
    assert_eq!(output.status.code(), Some(0), "{:?}", text(&output));
    assert!(!text(&output).0.contains("warning"), "{:?}", text(&output));
}

/// Keys renamed when "owner" was split into custodian and subjects: where the
/// old key meant one thing it is read under its new name, with a warning
/// that names it; where it meant both (a directory's `owner_attribute`, an
/// API's `owner`, a conflict joined on the owner) it is refused with an
/// explanation of both new keys, never guessed. Both names at once are
/// refused.
#[test]
fn old_owner_keys_are_renamed_with_a_warning_or_refused_when_they_were_ambiguous() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(dir.path().join("share")).expect("share");
    std::fs::create_dir_all(dir.path().join("mail")).expect("mail");
    let config = dir.path().join("old.toml");
    let check = |text: &str| {
        std::fs::write(&config, text).expect("write");
        let output = tillsyn(&["check-config", "--config", config.to_str().expect("utf8")]);
        (output.status.code(), text_of(&output))
    };
    fn text_of(output: &std::process::Output) -> String {
        let (stdout, stderr) = text(output);
        format!("{stdout}{stderr}")
    }
    let renamed = "[daemon]\nstate_dir = \"s\"\n\n[privacy]\nname_owners = false\n\n[[sources]]\nname = \"share\"\ntype = \"fileshare\"\nroot = \"share\"\nowner_from = [\"Hem/{owner}/**\"]\n\n[[sources]]\nname = \"mail\"\ntype = \"maildir\"\nroot = \"mail\"\nowner_marks = { flagged = true }\n";
    let (code, output) = check(renamed);
    assert_eq!(code, Some(0), "{output}");
    for expected in [
        "old.toml:5: warning: [privacy]: `name_owners` is now called `name_people`",
        "old.toml:11: warning: source \"share\": `owner_from` is now called `custodian_from`",
        "warning: source \"share\": `{owner}` in `custodian_from` is now `{custodian}`",
        "old.toml:17: warning: source \"mail\": `owner_marks` is now called `custodian_marks`",
    ] {
        assert!(output.contains(expected), "{expected:?} in:\n{output}");
    }
    let both = renamed.replace(
        "name_owners = false",
        "name_owners = false\nname_people = true",
    );
    let (code, output) = check(&both);
    assert_eq!(code, Some(3), "{output}");
    assert!(
        output.contains("`name_owners` is the old name of `name_people`; keep only `name_people`"),
        "{output}"
    );

    let ambiguous = "[daemon]\nstate_dir = \"s\"\n\n[[sources]]\nname = \"directory\"\ntype = \"ldap\"\nurl = \"ldap://127.0.0.1:1\"\nallow_plaintext = true\nbind_dn = \"cn=x\"\npassword_file = \"pw\"\nbase_dn = \"dc=x\"\nowner_attribute = \"mail\"\n\n[[sources]]\nname = \"crm\"\ntype = \"http\"\nurl = \"http://127.0.0.1:1/x\"\nallow_plaintext = true\nid = \"/id\"\nowner = \"/email\"\nattributes = { email = \"/email\" }\n\n[[rules]]\nid = \"opted-out\"\nkind = \"conflict\"\npolicy = \"x\"\nwhen = { sources = [\"directory\"] }\nmarked_by = { sources = [\"crm\"] }\nkey = \"owner\"\n";
    std::fs::write(dir.path().join("pw"), "secret\n").expect("pw");
    let (code, output) = check(ambiguous);
    assert_eq!(code, Some(3), "{output}");
    for expected in [
        "old.toml:12: source \"directory\": `owner_attribute` is gone",
        "old.toml:20: source \"crm\": `owner` is gone",
        "old.toml:29: rule \"opted-out\": `key = \"owner\"` would join on who acts on a record",
    ] {
        assert!(output.contains(expected), "{expected:?} in:\n{output}");
    }
    for both_keys in ["`identifiers`", "`custodian_attribute`", "`custodian`"] {
        assert!(
            output.contains(both_keys),
            "{both_keys} explained:\n{output}"
        );
    }
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

/// What a config example may still lack when one of its commented keys is
/// switched on alone: a required key of the same block, a secret file, or
/// the other half of a pair. Anything else (an unknown key, a value that does
/// not parse, a bad duration or schedule) is a mistake in the example.
const TOLERATED: [&str; 8] = [
    "is missing",
    "is not set",
    "missing field",
    "cannot read",
    "not both",
    "needs the identity index",
    "set [store] url too",
    "is no ldap source",
];

fn new_problems(text: &str, name: &str) -> Vec<String> {
    match tillsyn_config::parse_with(
        text,
        &std::path::Path::new("/nonexistent").join(name),
        tillsyn_config::Secrets::NONE,
    ) {
        Ok(_) => Vec::new(),
        Err(errors) => errors
            .issues
            .into_iter()
            .map(|issue| format!("line {:?}: {}", issue.line, issue.message))
            .filter(|message| {
                !TOLERATED
                    .iter()
                    .any(|tolerated| message.contains(tolerated))
            })
            .collect(),
    }
}

/// A commented-out `key = value` (a TOML assignment) written `# key = …`;
/// an indented one (`#     key = …`) is a description's example, not a key.
fn commented_assignment(line: &str) -> Option<&str> {
    let inner = line.strip_prefix('#')?;
    let inner = inner.strip_prefix(' ').unwrap_or(inner);
    if inner.starts_with(char::is_whitespace) {
        return None;
    }
    let inner = inner.trim();
    let key = inner.split('=').next()?.trim();
    let is_key = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '.');
    (is_key && inner.contains('=') && inner.parse::<toml::Table>().is_ok()).then_some(inner)
}

fn commented_header(line: &str) -> Option<&str> {
    let inner = line.strip_prefix('#')?.trim();
    let is_header = inner.starts_with('[')
        && inner.ends_with(']')
        && inner
            .trim_matches(['[', ']'])
            .chars()
            .all(|c| c.is_ascii_lowercase() || c == '_' || c == '.');
    is_header.then_some(inner)
}

/// Every quoted value in `text`, comments included, that is written as a
/// duration or a six-field schedule parses as one.
fn check_durations_and_schedules(text: &str, name: &str, problems: &mut Vec<String>) {
    let quoted = regex::Regex::new(r#""([^"\n]*)""#).expect("regex");
    let duration = regex::Regex::new(r"^\d+\s*\p{L}+(\s+\d+\s*\p{L}+)*$").expect("regex");
    let cron =
        regex::Regex::new(r"^[0-9*/,\-?LW#A-Za-z]+( [0-9*/,\-?LW#A-Za-z]+){5}$").expect("regex");
    for (number, line) in text.lines().enumerate() {
        for found in quoted.captures_iter(line) {
            let value = &found[1];
            if duration.is_match(value) && value.parse::<tillsyn_core::period::Period>().is_err() {
                problems.push(format!("{name}:{}: {value:?} is no duration", number + 1));
            }
            if cron.is_match(value) && tillsyn_core::schedule::Schedule::parse(value).is_err() {
                problems.push(format!("{name}:{}: {value:?} is no schedule", number + 1));
            }
        }
    }
}

/// Each commented-out key of `text` switched on alone (with its block's
/// commented `[section]` header, if it has one) still makes a config whose
/// only problems are [`TOLERATED`].
fn check_commented_keys(text: &str, name: &str, problems: &mut Vec<String>) {
    let lines: Vec<&str> = text.lines().collect();
    let mut block_header: Option<usize> = None;
    for (index, line) in lines.iter().enumerate() {
        if !line.trim().is_empty() && !line.trim_start().starts_with('#') {
            block_header = None;
        }
        if commented_header(line).is_some() {
            block_header = Some(index);
            continue;
        }
        let Some(assignment) = commented_assignment(line) else {
            continue;
        };
        let mut candidate = lines.clone();
        candidate[index] = assignment;
        if let Some(header) = block_header {
            candidate[header] = commented_header(lines[header]).unwrap_or("");
        }
        for problem in new_problems(&candidate.join("\n"), name) {
            problems.push(format!(
                "{name}:{}: `{assignment}` switched on: {problem}",
                index + 1
            ));
        }
    }
}

/// The shipped examples are checked as a user would use them:
/// `config.example.toml` and every file in `examples/` as they are, every
/// commented-out key in them switched on one at a time, every duration and
/// schedule they mention (in comments too), and every TOML config snippet of
/// the READMEs on top of a minimal config.
#[test]
fn every_example_key_duration_and_schedule_is_one_the_config_takes() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut problems = Vec::new();
    let mut files = vec![root.join("config.example.toml")];
    for folder in ["examples/policies", "examples/sources"] {
        for entry in std::fs::read_dir(root.join(folder)).expect("examples") {
            files.push(entry.expect("entry").path());
        }
    }
    const MINIMAL: &str = "[daemon]\nstate_dir = \"state\"\n";
    for file in &files {
        let text = std::fs::read_to_string(file).expect("example");
        let name = file
            .strip_prefix(root)
            .expect("inside")
            .display()
            .to_string();
        // A source example is one [[sources]] entry: checked inside a config.
        let whole = if name.starts_with("examples/sources") {
            format!("{MINIMAL}\n{text}")
        } else {
            text.clone()
        };
        for problem in new_problems(&whole, &name) {
            problems.push(format!("{name}: {problem}"));
        }
        check_durations_and_schedules(&text, &name, &mut problems);
        check_commented_keys(&whole, &name, &mut problems);
    }
    let mut snippets = 0;
    for readme in ["README.md", "systemd/README.md", "monitoring/README.md"] {
        let text = std::fs::read_to_string(root.join(readme)).expect("readme");
        for (block, snippet) in text.split("```toml\n").skip(1).enumerate() {
            let snippet = snippet.split("```").next().unwrap_or("");
            snippets += 1;
            let name = format!("{readme} snippet {}", block + 1);
            check_durations_and_schedules(snippet, &name, &mut problems);
            let whole = if snippet.contains("[daemon]") {
                snippet.to_owned()
            } else {
                format!("{MINIMAL}\n{snippet}")
            };
            for problem in new_problems(&whole, &name) {
                problems.push(format!("{name}: {problem}"));
            }
            check_commented_keys(&whole, &name, &mut problems);
        }
    }
    assert!(snippets >= 2, "the README's config snippets were found");
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// The checker above finds what it is for: an unknown key, an ambiguous
/// duration and a schedule of the wrong shape, commented out or not.
#[test]
fn the_example_checker_finds_a_bad_key_duration_and_schedule() {
    let text = "[daemon]\nstate_dir = \"state\"\n# retention = \"13m\"\n# retnetion = \"13 months\"\n\n[[sources]]\nname = \"s\"\ntype = \"fileshare\"\nroot = \"share\"\n# scan_timeout (\"30m\", \"6h\")\nschedule = \"0 0 2 * * *\"\n# schedule = \"0 2 * * * * *\"\n";
    let mut problems = Vec::new();
    check_durations_and_schedules(text, "bad.toml", &mut problems);
    check_commented_keys(text, "bad.toml", &mut problems);
    let joined = problems.join("\n");
    for expected in [
        "bad.toml:3: \"13m\" is no duration",
        "bad.toml:10: \"30m\" is no duration",
        "`retnetion = \"13 months\"` switched on",
        "`retention = \"13m\"` switched on",
        "`schedule = \"0 2 * * * * *\"` switched on",
    ] {
        assert!(joined.contains(expected), "{expected:?} in:\n{joined}");
    }
    assert_eq!(problems.len(), 5, "{joined}");
}
