//! A private PostgreSQL cluster for tests that need one of their own
//! (password rotation, TLS, restarts): initdb and pg_ctl from
//! /usr/lib/postgresql/*/bin run as the `postgres` OS user, scram-sha-256
//! over TCP on a free loopback port.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::{free_port, unique};

/// Directory holding PostgreSQL's server programs (initdb, pg_ctl, psql).
pub fn pg_bin_dir() -> PathBuf {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL server binaries under /usr/lib/postgresql")
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|p| p.join("initdb").exists())
        .collect();
    dirs.sort();
    dirs.pop().expect("initdb under /usr/lib/postgresql/*/bin")
}

/// A private PostgreSQL cluster with scram-sha-256 over TCP, run as the
/// `postgres` OS user; stopped (and its directory removed) on drop.
pub struct Cluster {
    /// The cluster's directory (data, log, socket).
    pub dir: tempfile::TempDir,
    /// Its TCP port on 127.0.0.1.
    pub port: u16,
    /// The `postgres` superuser's password (made at run time).
    pub superuser_pw: String,
}

/// Runs a PostgreSQL program as the `postgres` OS user.
pub fn as_postgres(bin: &Path, args: &[String]) -> std::process::Output {
    let mut cmd = Command::new("runuser");
    cmd.args(["-u", "postgres", "--"]).arg(bin).args(args);
    cmd.output().unwrap()
}

/// A test CA and a server certificate it signed (PEM), made at test time.
pub struct TestPki {
    /// The CA certificate.
    pub ca_pem: String,
    /// The server certificate.
    pub server_cert_pem: String,
    /// The server's private key.
    pub server_key_pem: String,
}

impl TestPki {
    /// A fresh CA and a server certificate for `names` (DNS names or IPs).
    pub fn new(names: &[&str]) -> TestPki {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, unique("coffer test CA"));
        ca_params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
        ];
        let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut params = rcgen::CertificateParams::new(names).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "coffer test postgres");
        let cert = params.signed_by(&key, &ca).unwrap();
        TestPki {
            ca_pem: ca.pem(),
            server_cert_pem: cert.pem(),
            server_key_pem: key.serialize_pem(),
        }
    }
}

impl Cluster {
    /// A cluster over plain TCP (scram-sha-256).
    pub fn start() -> Cluster {
        Self::start_with(None)
    }

    /// A cluster that accepts TCP only over TLS (`hostssl`, scram-sha-256;
    /// `hostnossl` rejected), serving `pki`'s server certificate.
    pub fn start_tls(pki: &TestPki) -> Cluster {
        Self::start_with(Some(pki))
    }

    fn start_with(tls: Option<&TestPki>) -> Cluster {
        let bin = pg_bin_dir();
        let dir = tempfile::Builder::new()
            .prefix("coffer-pg-")
            .tempdir_in("/tmp")
            .unwrap();
        let st = Command::new("chown")
            .args(["postgres:postgres"])
            .arg(dir.path())
            .status()
            .unwrap();
        assert!(st.success(), "chown the cluster directory to postgres");
        let superuser_pw = unique("Su");
        let pwfile = dir.path().join("pwfile");
        std::fs::write(&pwfile, &superuser_pw).unwrap();
        Command::new("chown")
            .args(["postgres:postgres"])
            .arg(&pwfile)
            .status()
            .unwrap();
        let data = dir.path().join("data");
        let out = as_postgres(
            &bin.join("initdb"),
            &[
                "-D".into(),
                data.display().to_string(),
                "-U".into(),
                "postgres".into(),
                "--auth-host=scram-sha-256".into(),
                "--auth-local=trust".into(),
                format!("--pwfile={}", pwfile.display()),
            ],
        );
        assert!(
            out.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        if let Some(pki) = tls {
            let owned_by_postgres = |name: &str, text: &str| {
                let path = data.join(name);
                std::fs::write(&path, text).unwrap();
                let st = Command::new("chown")
                    .arg("postgres:postgres")
                    .arg(&path)
                    .status()
                    .unwrap();
                assert!(st.success());
                let st = Command::new("chmod")
                    .arg("600")
                    .arg(&path)
                    .status()
                    .unwrap();
                assert!(st.success());
            };
            owned_by_postgres("server.crt", &pki.server_cert_pem);
            owned_by_postgres("server.key", &pki.server_key_pem);
            owned_by_postgres(
                "pg_hba.conf",
                "local all all trust\n\
                 hostssl all all 127.0.0.1/32 scram-sha-256\n\
                 hostnossl all all 127.0.0.1/32 reject\n",
            );
            let conf = data.join("postgresql.conf");
            let mut text = std::fs::read_to_string(&conf).unwrap();
            text.push_str(
                "\nssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n",
            );
            std::fs::write(&conf, text).unwrap();
        }
        let port = free_port();
        let cluster = Cluster {
            dir,
            port,
            superuser_pw,
        };
        cluster.start_again();
        cluster
    }

    /// Starts the (stopped) cluster on its port, waiting until it accepts
    /// connections.
    pub fn start_again(&self) {
        let data = self.dir.path().join("data");
        let out = as_postgres(
            &pg_bin_dir().join("pg_ctl"),
            &[
                "-D".into(),
                data.display().to_string(),
                "-l".into(),
                self.dir.path().join("log").display().to_string(),
                "-o".into(),
                format!(
                    "-p {} -c listen_addresses=127.0.0.1 -k {}",
                    self.port,
                    self.dir.path().display()
                ),
                "-w".into(),
                "start".into(),
            ],
        );
        assert!(
            out.status.success(),
            "pg_ctl start: {} {}",
            String::from_utf8_lossy(&out.stdout),
            std::fs::read_to_string(self.dir.path().join("log")).unwrap_or_default()
        );
    }

    /// Stops the cluster at once (`-m immediate`: open sessions are cut, as
    /// when the database host fails).
    pub fn stop(&self) {
        let data = self.dir.path().join("data");
        let _ = as_postgres(
            &pg_bin_dir().join("pg_ctl"),
            &[
                "-D".into(),
                data.display().to_string(),
                "-m".into(),
                "immediate".into(),
                "-w".into(),
                "stop".into(),
            ],
        );
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.stop();
    }
}
