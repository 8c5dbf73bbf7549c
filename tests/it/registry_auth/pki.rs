//! Test certificates and password files, made with the real tools in a
//! test's temp dir: a CA and a server certificate for `127.0.0.1` it signs
//! (`openssl`), a self-signed token-signing certificate, and a bcrypt
//! htpasswd file (`htpasswd -Bbn`).

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::registry::Tls;

/// A CA (certificate and key, PEM) in `dir`, files named `NAME.crt` and
/// `NAME.key`.
pub struct Ca {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl Ca {
    pub fn new(dir: &Path, name: &str) -> Ca {
        let (cert, key) = (
            dir.join(format!("{name}.crt")),
            dir.join(format!("{name}.key")),
        );
        openssl(&[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            &format!("/CN=kiln test CA {name}"),
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
            "-keyout",
            path(&key),
            "-out",
            path(&cert),
        ]);
        Ca { cert, key }
    }

    /// A server certificate for IP 127.0.0.1 (its SAN: what a client
    /// checks) signed by this CA, with its key, in `dir`.
    pub fn server_cert(&self, dir: &Path) -> Tls {
        let (cert, key, csr, ext) = (
            dir.join("server.crt"),
            dir.join("server.key"),
            dir.join("server.csr"),
            dir.join("server.ext"),
        );
        std::fs::write(
            &ext,
            "subjectAltName=IP:127.0.0.1\nbasicConstraints=critical,CA:FALSE\n\
             keyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n",
        )
        .expect("write the extensions");
        openssl(&[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
            path(&key),
            "-out",
            path(&csr),
        ]);
        openssl(&[
            "x509",
            "-req",
            "-days",
            "2",
            "-in",
            path(&csr),
            "-CA",
            path(&self.cert),
            "-CAkey",
            path(&self.key),
            "-CAcreateserial",
            "-extfile",
            path(&ext),
            "-out",
            path(&cert),
        ]);
        Tls {
            cert,
            key,
            ca: self.cert.clone(),
        }
    }
}

/// A self-signed certificate and its RSA key for signing tokens
/// (`token.crt`, `token.key` in `dir`).
pub fn token_signer(dir: &Path) -> (PathBuf, PathBuf) {
    let (cert, key) = (dir.join("token.crt"), dir.join("token.key"));
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=kiln test token issuer",
        "-keyout",
        path(&key),
        "-out",
        path(&cert),
    ]);
    (cert, key)
}

/// `cert` (PEM) as DER.
pub fn der(cert: &Path) -> Vec<u8> {
    openssl(&["x509", "-in", path(cert), "-outform", "DER"])
}

/// An htpasswd file in `dir` letting in `user` with `password` (bcrypt,
/// the only hash distribution accepts).
pub fn htpasswd(dir: &Path, user: &str, password: &str) -> PathBuf {
    let out = Command::new("htpasswd")
        .args(["-Bbn", user, password])
        .output()
        .expect("run htpasswd");
    assert!(
        out.status.success(),
        "htpasswd: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let file = dir.join("htpasswd");
    std::fs::write(&file, &out.stdout).expect("write htpasswd");
    file
}

/// `openssl ARGS…`, panicking with its stderr when it fails; its stdout.
pub fn openssl(args: &[&str]) -> Vec<u8> {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn path(p: &Path) -> &str {
    p.to_str().expect("a UTF-8 temp path")
}
