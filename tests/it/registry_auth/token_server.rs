//! A bearer-token server for a test registry (`auth.token`): std
//! `TcpListener` on 127.0.0.1, one thread, HTTP/1.0 answers. It checks
//! basic credentials and answers `{"token": JWT}`, a JWT as distribution
//! 2.8 verifies it: RS256, the signing certificate in the `x5c` header
//! (distribution checks it against its `rootcertbundle`, and so needs no
//! libtrust key id), and claims iss/sub/aud/exp/nbf/iat/jti/access
//! granting what the request's `scope`s ask. Signing shells out to
//! `openssl dgst -sha256 -sign` (RS256 is PKCS#1 v1.5 over SHA-256, which
//! is what that writes), as the certificates are made with openssl too.
//!
//! Stopped when dropped: a flag, then a connection of its own wakes the
//! blocked `accept`, and the thread is joined.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};

pub struct TokenServer {
    port: u16,
    stop: Arc<AtomicBool>,
    /// Tokens handed out so far.
    issued: Arc<AtomicUsize>,
    thread: Option<JoinHandle<()>>,
}

/// Who the server accepts and how it signs.
#[derive(Clone)]
pub struct Issuer {
    pub user: String,
    pub password: String,
    pub service: String,
    pub issuer: String,
    /// The signing certificate (DER) and its key (PEM file).
    pub cert_der: Vec<u8>,
    pub key: PathBuf,
}

impl TokenServer {
    pub fn start(issuer: Issuer) -> TokenServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the token server");
        let port = listener.local_addr().expect("its address").port();
        let stop = Arc::new(AtomicBool::new(false));
        let issued = Arc::new(AtomicUsize::new(0));
        let (stop2, issued2) = (stop.clone(), issued.clone());
        let thread = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(conn) = conn else { continue };
                // A client that hangs up mid-request is its own problem.
                if let Ok(true) = serve(conn, &issuer) {
                    issued2.fetch_add(1, Ordering::SeqCst);
                }
            }
        });
        TokenServer {
            port,
            stop,
            issued,
            thread: Some(thread),
        }
    }

    /// The `realm` a registry sends clients to.
    pub fn realm(&self) -> String {
        format!("http://127.0.0.1:{}/token", self.port)
    }

    pub fn issued(&self) -> usize {
        self.issued.load(Ordering::SeqCst)
    }
}

impl Drop for TokenServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Answers one request; whether it handed out a token.
fn serve(conn: TcpStream, issuer: &Issuer) -> std::io::Result<bool> {
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    let mut authorization = None;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line == "\r\n" || line == "\n" {
            break;
        }
        if let Some((name, value)) = line.split_once(':')
            && name.eq_ignore_ascii_case("authorization")
        {
            authorization = Some(value.trim().to_owned());
        }
    }
    let target = request_line.split_whitespace().nth(1).unwrap_or_default();
    let query = target.split_once('?').map(|(_, q)| q).unwrap_or_default();
    let user = authorization
        .as_deref()
        .and_then(|a| a.strip_prefix("Basic "))
        .and_then(|b| STANDARD.decode(b).ok())
        .and_then(|b| String::from_utf8(b).ok())
        .filter(|creds| *creds == format!("{}:{}", issuer.user, issuer.password));
    let (status, body) = match user {
        None => (
            "401 Unauthorized",
            r#"{"details":"bad credentials"}"#.to_owned(),
        ),
        Some(_) => {
            let scopes: Vec<String> = (query.split('&'))
                .filter_map(|kv| kv.split_once('='))
                .filter(|(k, _)| *k == "scope")
                .map(|(_, v)| percent_decode(v))
                .collect();
            let token = sign(issuer, &scopes);
            ("200 OK", serde_json::json!({ "token": token }).to_string())
        }
    };
    let mut conn = conn;
    write!(
        conn,
        "HTTP/1.0 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )?;
    conn.flush()?;
    Ok(status.starts_with("200"))
}

/// A JWT granting each `repository:NAME:ACTIONS` scope.
fn sign(issuer: &Issuer, scopes: &[String]) -> String {
    let access: Vec<serde_json::Value> = (scopes.iter())
        .filter_map(|s| {
            let (kind, rest) = s.split_once(':')?;
            let (name, actions) = rest.rsplit_once(':')?;
            Some(serde_json::json!({
                "type": kind,
                "name": name,
                "actions": actions.split(',').collect::<Vec<_>>(),
            }))
        })
        .collect();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs();
    let header = serde_json::json!({
        "typ": "JWT",
        "alg": "RS256",
        "x5c": [STANDARD.encode(&issuer.cert_der)],
    });
    let claims = serde_json::json!({
        "iss": issuer.issuer,
        "sub": issuer.user,
        "aud": issuer.service,
        "exp": now + 300,
        "nbf": now - 10,
        "iat": now,
        "jti": format!("kiln-test-{now}-{}", scopes.len()),
        "access": access,
    });
    let signed = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let mut child = Command::new("openssl")
        .args(["dgst", "-sha256", "-sign"])
        .arg(&issuer.key)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run openssl dgst");
    (child.stdin.take().expect("stdin"))
        .write_all(signed.as_bytes())
        .expect("write to openssl");
    let out = child.wait_with_output().expect("openssl dgst");
    assert!(out.status.success(), "openssl dgst -sign failed");
    format!("{signed}.{}", URL_SAFE_NO_PAD.encode(out.stdout))
}

/// `%XX` and `+` decoded (the query of a token request).
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 3;
                        continue;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
