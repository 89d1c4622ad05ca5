//! The Debian package, built by `scripts/package` from the binary under test:
//! lintian reports no error; it holds what an admin expects (unit, conffile,
//! private credentials folder, man pages and completions for every command,
//! monitoring files, templates); it installs into a throwaway root with
//! dpkg's own `--root`, where the conffile checks out and `systemd-analyze
//! verify` accepts the installed unit; an edited conffile survives a
//! reinstall; and `/var/lib/tillsyn` goes on purge only.
//!
//! The maintainer scripts run outside the root (`--force-script-chrootless`,
//! with `DPKG_ROOT` set), which is how dpkg installs into a root that has no
//! shell of its own.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::text;

fn run(command: &mut Command) -> Output {
    let output = command.output().expect("run");
    let (stdout, stderr) = text(&output);
    assert!(
        output.status.success(),
        "{command:?} failed:\n{stdout}{stderr}"
    );
    output
}

/// `scripts/package` over the test binary; the path of the package.
fn build_package(out: &Path) -> PathBuf {
    let output = run(
        Command::new(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/package"))
            .args(["--binary", env!("CARGO_BIN_EXE_tillsyn"), "--out"])
            .arg(out),
    );
    let (stdout, _) = text(&output);
    let path = PathBuf::from(stdout.trim().lines().last().expect("package path"));
    assert!(path.exists(), "{path:?}");
    path
}

/// dpkg on the throwaway `root`.
fn dpkg(root: &Path, args: &[&str]) -> Output {
    run(Command::new("dpkg")
        .arg(format!("--root={}", root.display()))
        .args([
            "--force-script-chrootless",
            "--force-depends",
            "--log=/dev/null",
        ])
        .args(args))
}

/// An empty dpkg database under `root`.
fn throwaway_root(root: &Path) {
    let dpkg = root.join("var/lib/dpkg");
    for folder in ["info", "updates", "triggers"] {
        std::fs::create_dir_all(dpkg.join(folder)).expect("dpkg folders");
    }
    for file in ["status", "available"] {
        std::fs::write(dpkg.join(file), "").expect("dpkg files");
    }
}

#[test]
fn the_package_lints_installs_checks_out_and_purges_cleanly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let package = build_package(&dir.path().join("out"));

    // lintian: no errors (warnings are allowed; the one expected is
    // overridden in the package).
    let lint = Command::new("lintian")
        .args(["--tag-display-limit", "0"])
        .arg(&package)
        .output()
        .expect("lintian (Debian package lintian)");
    let (stdout, stderr) = text(&lint);
    let errors: Vec<&str> = stdout
        .lines()
        .filter(|line| line.starts_with("E: "))
        .collect();
    assert!(errors.is_empty(), "lintian errors:\n{stdout}{stderr}");
    assert!(
        !stdout.contains("non-standard-dir-perm"),
        "the credentials folder's override is missing:\n{stdout}"
    );

    // What it holds.
    let listing = text(&run(Command::new("dpkg-deb")
        .arg("--contents")
        .arg(&package)))
    .0;
    let has = |path: &str| listing.lines().any(|line| line.ends_with(path));
    for path in [
        "./usr/bin/tillsyn",
        "./lib/systemd/system/tillsyn.service",
        "./etc/tillsyn/config.toml",
        "./etc/tillsyn/credentials/",
        "./usr/share/doc/tillsyn/config.example.toml",
        "./usr/share/doc/tillsyn/copyright",
        "./usr/share/doc/tillsyn/changelog.gz",
        "./usr/share/tillsyn/monitoring/alerts.yml",
        "./usr/share/tillsyn/monitoring/dashboard.json",
        "./usr/share/tillsyn/reports/sv/report.html.hbs",
        "./usr/share/tillsyn/reports/en/report.txt.hbs",
        "./usr/share/man/man1/tillsyn.1.gz",
        "./usr/share/bash-completion/completions/tillsyn",
        "./usr/share/zsh/vendor-completions/_tillsyn",
        "./usr/share/fish/vendor_completions.d/tillsyn.fish",
    ] {
        assert!(has(path), "{path} missing from the package:\n{listing}");
    }
    // A man page for every command the CLI shows, none for hidden ones.
    let help = text(&run(
        Command::new(env!("CARGO_BIN_EXE_tillsyn")).arg("--help")
    ))
    .0;
    let commands: Vec<&str> = help
        .lines()
        .skip_while(|line| !line.starts_with("Commands:"))
        .skip(1)
        .take_while(|line| line.starts_with("  "))
        .filter_map(|line| line.split_whitespace().next())
        .filter(|name| *name != "help")
        .collect();
    assert!(commands.len() >= 10, "{help}");
    for command in &commands {
        let page = format!("./usr/share/man/man1/tillsyn-{command}.1.gz");
        assert!(has(&page), "{page} missing:\n{listing}");
    }
    assert!(
        !listing.contains("__generate"),
        "a hidden command got a page"
    );

    // Installed into a throwaway root.
    let root = dir.path().join("root");
    throwaway_root(&root);
    let installed = dpkg(&root, &["-i", &package.display().to_string()]);
    let (stdout, _) = text(&installed);
    assert!(
        stdout.contains("not started") && stdout.contains("systemctl enable --now tillsyn"),
        "the admin is told what to do next:\n{stdout}"
    );
    let credentials = root.join("etc/tillsyn/credentials");
    let mode = std::fs::metadata(&credentials)
        .expect("credentials folder")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o700, "{mode:o}");
    let binary = root.join("usr/bin/tillsyn");
    let config = root.join("etc/tillsyn/config.toml");
    let checked = Command::new(&binary)
        .arg("check-config")
        .arg("--config")
        .arg(&config)
        .output()
        .expect("installed tillsyn");
    let (stdout, stderr) = text(&checked);
    assert_eq!(checked.status.code(), Some(0), "{stdout}{stderr}");
    assert!(stdout.contains("OK"), "{stdout}");

    // The installed unit, with its binary where this root has it.
    let unit = std::fs::read_to_string(root.join("lib/systemd/system/tillsyn.service"))
        .expect("installed unit");
    assert!(unit.contains("ExecStart=/usr/bin/tillsyn run"), "{unit}");
    let units = dir.path().join("units");
    std::fs::create_dir_all(&units).expect("units");
    std::fs::write(
        units.join("tillsyn.service"),
        unit.replace("/usr/bin/tillsyn", &binary.display().to_string()),
    )
    .expect("unit");
    let verified = Command::new("systemd-analyze")
        .arg("verify")
        .arg(units.join("tillsyn.service"))
        .output()
        .expect("systemd-analyze (Debian package systemd)");
    let (stdout, stderr) = text(&verified);
    assert!(verified.status.success(), "{stdout}{stderr}");
    assert!(
        stdout.trim().is_empty() && stderr.trim().is_empty(),
        "systemd-analyze verify has remarks:\n{stdout}{stderr}"
    );

    // The admin's edit of the conffile survives a reinstall.
    let edited = std::fs::read_to_string(&config).expect("config") + "\n# edited by the admin\n";
    std::fs::write(&config, &edited).expect("edit");
    dpkg(&root, &["-i", &package.display().to_string()]);
    assert_eq!(std::fs::read_to_string(&config).expect("config"), edited);

    // The store goes on purge only.
    let store = root.join("var/lib/tillsyn/findings.sqlite");
    std::fs::create_dir_all(store.parent().expect("state")).expect("state");
    std::fs::write(&store, "findings").expect("store");
    dpkg(&root, &["--remove", "tillsyn"]);
    assert!(store.exists(), "remove deleted the store");
    assert!(config.exists(), "remove deleted the conffile");
    assert!(!binary.exists(), "remove left the binary");
    dpkg(&root, &["--purge", "tillsyn"]);
    assert!(!store.exists(), "purge left the store");
    assert!(!config.exists(), "purge left the conffile");
    assert!(!credentials.exists(), "purge left the credentials folder");
}
