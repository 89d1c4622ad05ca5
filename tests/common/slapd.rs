//! A real OpenLDAP slapd for the LDAP tests: its own temp dir, a small test schema
//! (customer status, end date, marketing opt-out: the kind of attributes
//! organisations add), entries bulk-loaded with slapadd, size limits so that a
//! non-admin bind needs paging past 500 entries, ldaps with the test CA, and its
//! own process group.
#![allow(dead_code)]

use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};

use super::process::{free_port, kill_group};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::dovecot::{make_ca, make_server_cert};

pub const SUFFIX: &str = "dc=example,dc=se";
pub const SERVICE_DN: &str = "cn=tillsyn,ou=services,dc=example,dc=se";
pub const SERVICE_PASSWORD: &str = "tillsyn-pw";

/// One person in the directory.
pub struct Person {
    pub uid: String,
    pub status: &'static str,
    /// `YYYYMMDDhhmmssZ`, when the customer relationship ended.
    pub ended: Option<String>,
    pub opt_out: bool,
}

impl Person {
    pub fn dn(&self) -> String {
        format!("uid={},ou=people,{SUFFIX}", self.uid)
    }
}

pub struct Slapd {
    pub dir: tempfile::TempDir,
    pub port: u16,
    pub tls_port: u16,
    child: Option<Child>,
}

fn binary(name: &str) -> String {
    ["/usr/sbin/", "/usr/local/sbin/", "/usr/bin/"]
        .iter()
        .map(|dir| format!("{dir}{name}"))
        .find(|path| Path::new(path).exists())
        .unwrap_or_else(|| name.to_owned())
}

const SCHEMA: &str = "\
attributetype ( 1.3.6.1.4.1.32473.1.1 NAME 'customerStatus' EQUALITY caseIgnoreMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 SINGLE-VALUE )
attributetype ( 1.3.6.1.4.1.32473.1.2 NAME 'customerEndDate' EQUALITY generalizedTimeMatch ORDERING generalizedTimeOrderingMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.24 SINGLE-VALUE )
attributetype ( 1.3.6.1.4.1.32473.1.3 NAME 'marketingOptOut' EQUALITY booleanMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.7 SINGLE-VALUE )
attributetype ( 1.3.6.1.4.1.32473.1.4 NAME 'customerEndText' DESC 'an end date kept as free text, as some directories do' EQUALITY caseIgnoreMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 SINGLE-VALUE )
attributetype ( 1.3.6.1.4.1.32473.1.5 NAME 'accountExpires' DESC 'as Active Directory keeps it: FILETIME, 100 ns ticks since 1601' EQUALITY integerMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.27 SINGLE-VALUE )
objectclass ( 1.3.6.1.4.1.32473.2.1 NAME 'tillsynContact' AUXILIARY MAY ( customerStatus $ customerEndDate $ marketingOptOut $ customerEndText $ accountExpires ) )
";

impl Slapd {
    /// Start slapd holding `people` under ou=people.
    pub fn start(people: &[Person]) -> Slapd {
        Slapd::start_with(people, "")
    }

    /// Start with `people` and more entries (`extra`, LDIF without
    /// `changetype`), all bulk-loaded, all last modified on 2 January 2025.
    pub fn start_with(people: &[Person], extra: &str) -> Slapd {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        make_ca(path, "ca");
        make_ca(path, "other-ca");
        make_server_cert(path, "ca");
        std::fs::write(path.join("tillsyn-test.schema"), SCHEMA).expect("schema");
        std::fs::create_dir_all(path.join("db")).expect("db");
        let config = format!(
            "include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/nis.schema
include /etc/ldap/schema/inetorgperson.schema
include {dir}/tillsyn-test.schema
pidfile {dir}/slapd.pid
argsfile {dir}/slapd.args
modulepath /usr/lib/ldap
moduleload back_mdb
TLSCACertificateFile {dir}/ca.pem
TLSCertificateFile {dir}/server.pem
TLSCertificateKeyFile {dir}/server.key
sizelimit size.soft=500 size.hard=unlimited size.pr=1000 size.prtotal=unlimited
database mdb
suffix \"{SUFFIX}\"
rootdn \"cn=admin,{SUFFIX}\"
rootpw admin-secret
directory {dir}/db
dbnosync
maxsize 2147483648
access to attrs=userPassword by self write by anonymous auth by * none
access to * by users read by * none
",
            dir = path.display()
        );
        std::fs::write(path.join("slapd.conf"), config).expect("config");
        let mut ldif = format!(
            "dn: {SUFFIX}\nobjectClass: dcObject\nobjectClass: organization\ndc: example\no: Example AB\n\n\
             dn: ou=people,{SUFFIX}\nobjectClass: organizationalUnit\nou: people\n\n\
             dn: ou=services,{SUFFIX}\nobjectClass: organizationalUnit\nou: services\n\n\
             dn: {SERVICE_DN}\nobjectClass: person\nobjectClass: simpleSecurityObject\ncn: tillsyn\nsn: tillsyn\n\
             userPassword: {SERVICE_PASSWORD}\n\n"
        );
        for person in people {
            ldif.push_str(&format!(
                "dn: {}\nobjectClass: inetOrgPerson\nobjectClass: tillsynContact\nuid: {}\ncn: {}\nsn: {}\n\
                 mail: {}@kund.se\ncustomerStatus: {}\nmarketingOptOut: {}\n\
                 modifyTimestamp: 20250102030405Z\n",
                person.dn(),
                person.uid,
                person.uid,
                person.uid,
                person.uid,
                person.status,
                if person.opt_out { "TRUE" } else { "FALSE" }
            ));
            if let Some(ended) = &person.ended {
                ldif.push_str(&format!("customerEndDate: {ended}\n"));
            }
            ldif.push('\n');
        }
        ldif.push_str(extra);
        std::fs::write(path.join("data.ldif"), ldif).expect("ldif");
        let output = Command::new(binary("slapadd"))
            .args(["-q", "-f"])
            .arg(path.join("slapd.conf"))
            .arg("-l")
            .arg(path.join("data.ldif"))
            .output()
            .expect("slapadd (Debian package slapd)");
        assert!(
            output.status.success(),
            "slapadd: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let mut slapd = Slapd {
            dir,
            port: free_port(),
            tls_port: free_port(),
            child: None,
        };
        slapd.launch();
        slapd
    }

    fn launch(&mut self) {
        let urls = format!(
            "ldap://127.0.0.1:{}/ ldaps://127.0.0.1:{}/",
            self.port, self.tls_port
        );
        let child = Command::new(binary("slapd"))
            .arg("-f")
            .arg(self.dir.path().join("slapd.conf"))
            .args(["-h", &urls, "-d", "0"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("start slapd");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "slapd did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn kill(&mut self) {
        kill_group(&mut self.child);
    }

    /// Stop and start again (the data stays).
    pub fn restart(&mut self) {
        self.kill();
        self.launch();
    }

    /// Change the directory online as its administrator (`ldapmodify` with
    /// `changetype` records), as people and systems do between scans.
    pub fn modify(&self, ldif: &str) {
        let path = self.dir.path().join("change.ldif");
        std::fs::write(&path, ldif).expect("ldif");
        let output = Command::new("ldapmodify")
            // -M (ManageDsaIT): a referral object is changed as an entry,
            // not followed.
            .args(["-x", "-M", "-H", &format!("ldap://127.0.0.1:{}", self.port)])
            .args([
                "-D",
                &format!("cn=admin,{SUFFIX}"),
                "-w",
                "admin-secret",
                "-f",
            ])
            .arg(&path)
            .output()
            .expect("ldapmodify (Debian package ldap-utils)");
        assert!(
            output.status.success(),
            "ldapmodify: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

impl Drop for Slapd {
    fn drop(&mut self) {
        self.kill();
    }
}
