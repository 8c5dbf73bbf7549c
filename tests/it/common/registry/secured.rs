//! What a test registry adds to the plain one: HTTPS with a certificate a
//! test CA signed, and who may use it (htpasswd basic auth, or bearer
//! tokens from a token server). Renders the registry's config for it and
//! the skopeo flags that reach it.

use std::path::PathBuf;

/// TLS and auth for [`super::Registry::start_secured`]; the default is
/// neither (plain HTTP, anyone).
#[derive(Debug, Clone, Default)]
pub struct Secured {
    pub tls: Option<Tls>,
    pub auth: Option<Auth>,
}

/// PEM files: the server's certificate and key, and the CA that signed
/// the certificate.
#[derive(Debug, Clone)]
pub struct Tls {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub ca: PathBuf,
}

#[derive(Debug, Clone)]
pub enum Auth {
    /// Basic auth against an htpasswd file (bcrypt entries) that lets in
    /// `user` with `password`.
    Htpasswd {
        file: PathBuf,
        user: String,
        password: String,
    },
    /// The bearer-token flow: tokens from `realm` (a URL), for `service`,
    /// signed by `issuer` with a key whose certificate `rootcertbundle`
    /// holds; `user`/`password` are what the token server accepts.
    Token {
        realm: String,
        service: String,
        issuer: String,
        rootcertbundle: PathBuf,
        user: String,
        password: String,
    },
}

impl Secured {
    /// The `http.tls` and `auth` parts of the registry's config.yml, to
    /// append to the rest (`http:` last, so `tls` nests under it).
    pub fn config(&self) -> String {
        let mut yaml = String::new();
        if let Some(tls) = &self.tls {
            yaml += &format!(
                "  tls:\n    certificate: {}\n    key: {}\n",
                tls.cert.display(),
                tls.key.display()
            );
        }
        match &self.auth {
            None => {}
            Some(Auth::Htpasswd { file, .. }) => {
                yaml += &format!(
                    "auth:\n  htpasswd:\n    realm: kiln-tests\n    path: {}\n",
                    file.display()
                );
            }
            Some(Auth::Token {
                realm,
                service,
                issuer,
                rootcertbundle,
                ..
            }) => {
                yaml += &format!(
                    "auth:\n  token:\n    realm: {realm}\n    service: {service}\n    \
                     issuer: {issuer}\n    rootcertbundle: {}\n",
                    rootcertbundle.display()
                );
            }
        }
        yaml
    }

    /// The URL scheme the registry answers on.
    pub fn scheme(&self) -> &'static str {
        match self.tls {
            Some(_) => "https",
            None => "http",
        }
    }

    /// skopeo's flags for the source (`prefix` "--src-") or the
    /// destination ("--dest-") of a copy, or for `inspect` ("--"): the CA
    /// (in a directory of its own, as `--cert-dir` wants) or no TLS, and
    /// the credentials.
    pub fn skopeo_flags(&self, prefix: &str, cert_dir: &std::path::Path) -> Vec<String> {
        let mut flags = Vec::new();
        match &self.tls {
            Some(_) => flags.push(format!("{prefix}cert-dir={}", cert_dir.display())),
            None => flags.push(format!("{prefix}tls-verify=false")),
        }
        let creds = match &self.auth {
            Some(Auth::Htpasswd { user, password, .. } | Auth::Token { user, password, .. }) => {
                Some(format!("{user}:{password}"))
            }
            None => None,
        };
        if let Some(creds) = creds {
            flags.push(format!("{prefix}creds={creds}"));
        }
        flags
    }
}
