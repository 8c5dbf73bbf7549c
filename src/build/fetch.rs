//! Fixed-output fetches: the one step that may use the network, and only
//! because its result is pinned by a sha256 checked before it is stored.

use std::io::{Read, Write};
use std::path::Path;

use sha2::Digest as _;

use crate::hash::Digest;
use crate::spec::Fetch;

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("Downloaded `{url}` has {actual}, expected {expected}")]
    Mismatch {
        url: String,
        expected: Digest,
        actual: Digest,
    },
    #[error("Failed to download `{url}`")]
    Http {
        url: String,
        #[source]
        source: Box<ureq::Error>,
    },
    #[error("Failed to write or read `{}`", path.display())]
    Io {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Downloads `fetch.url` into `out_dir/<last path segment>`, hashing as it
/// writes; the file stays only if its sha256 is the declared one.
pub fn fetch(fetch: &Fetch, out_dir: &Path) -> Result<(), FetchError> {
    let url = fetch.url.value.as_str();
    let file_name = crate::eval::fetch_file_name(url);
    let dest = out_dir.join(file_name);
    let io = |source| FetchError::Io {
        path: dest.clone(),
        source,
    };
    let mut reader: Box<dyn Read> = match url.strip_prefix("file://") {
        Some(path) => Box::new(fs_err::File::open(path).map_err(io)?),
        None => {
            let response = ureq::get(url).call().map_err(|e| FetchError::Http {
                url: url.to_owned(),
                source: Box::new(e),
            })?;
            Box::new(response.into_body().into_reader())
        }
    };
    let mut file = fs_err::File::create(&dest).map_err(io)?;
    let mut hasher = sha2::Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = reader.read(&mut buf).map_err(io)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        file.write_all(&buf[..n]).map_err(io)?;
    }
    let actual = Digest::from_bytes(hasher.finalize().into());
    if actual != fetch.sha256.value {
        let _ = fs_err::remove_file(&dest);
        return Err(FetchError::Mismatch {
            url: url.to_owned(),
            expected: fetch.sha256.value,
            actual,
        });
    }
    Ok(())
}
