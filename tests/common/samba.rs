//! A real Active Directory for the AD tests: Samba's domain controller,
//! provisioned in a temp dir (realm `TILLSYN.TEST`, no DNS), loaded with the
//! test's LDIF before it starts, serving LDAP on 127.0.0.1:389 (Samba's DC has
//! no other port), with simple binds allowed without TLS for the loopback
//! test. One at a time: only `tests/ad.rs` starts it.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const BASE: &str = "DC=tillsyn,DC=test";
pub const ADMIN_DN: &str = "CN=Administrator,CN=Users,DC=tillsyn,DC=test";
pub const ADMIN_PASSWORD: &str = "Tillsyn-Test-1!";

pub struct SambaAd {
    dir: tempfile::TempDir,
    child: Child,
}

fn run(command: &mut Command) {
    let output = command.output().expect("run");
    assert!(
        output.status.success(),
        "{command:?} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

impl SambaAd {
    /// Provision a domain, load `ldif` into it, and start the DC.
    pub fn start(ldif: &str) -> SambaAd {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path();
        run(Command::new("samba-tool")
            .args([
                "domain",
                "provision",
                "--realm=TILLSYN.TEST",
                "--domain=TILLSYN",
                "--server-role=dc",
                "--dns-backend=NONE",
                &format!("--adminpass={ADMIN_PASSWORD}"),
                &format!("--targetdir={}", path.display()),
                "--option=interfaces=lo",
                "--option=bind interfaces only=yes",
            ])
            .current_dir(path));
        // Only LDAP; its own pid and log files; simple binds without TLS
        // (loopback only).
        let config = path.join("etc/smb.conf");
        let text = std::fs::read_to_string(&config)
            .expect("smb.conf")
            .replacen(
                "[global]\n",
                &format!(
                    "[global]\n\tserver services = ldap\n\tldap server require strong auth = no\n\
                 \tpid directory = {dir}/run\n\tlog file = {dir}/log.%m\n",
                    dir = path.display()
                ),
                1,
            );
        std::fs::write(&config, text).expect("smb.conf");
        std::fs::create_dir_all(path.join("run")).expect("run dir");
        std::fs::write(path.join("data.ldif"), ldif).expect("ldif");
        run(Command::new("ldbadd")
            .arg("-H")
            .arg(path.join("private/sam.ldb"))
            .arg(path.join("data.ldif")));
        let child = Command::new("samba")
            .args(["-i", "-M", "single", "-s"])
            .arg(&config)
            .stdout(Stdio::from(
                std::fs::File::create(path.join("samba.out")).expect("log"),
            ))
            .stderr(Stdio::from(
                std::fs::File::create(path.join("samba.err")).expect("log"),
            ))
            .spawn()
            .expect("samba");
        let server = SambaAd { dir, child };
        let started = Instant::now();
        while !server.answers() {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "Samba did not answer: {}",
                std::fs::read_to_string(server.path("samba.err")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        server
    }

    fn answers(&self) -> bool {
        ldap_tool("ldapsearch")
            .args(["-b", BASE, "-s", "base", "1.1"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success())
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Apply an LDIF of changes over LDAP.
    pub fn modify(&self, ldif: &str) {
        let file = self.path("change.ldif");
        std::fs::write(&file, ldif).expect("ldif");
        run(ldap_tool("ldapmodify").arg("-f").arg(&file));
    }
}

/// An OpenLDAP client tool bound to the test DC as its administrator.
fn ldap_tool(program: &str) -> Command {
    let mut command = Command::new(program);
    command.args([
        "-x",
        "-H",
        "ldap://127.0.0.1:389",
        "-D",
        ADMIN_DN,
        "-w",
        ADMIN_PASSWORD,
    ]);
    command
}

impl Drop for SambaAd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
