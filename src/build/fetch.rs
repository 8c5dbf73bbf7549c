//! Fixed-output fetches: the one step that may use the network, and only
//! because its result is pinned by a sha256 checked before it is stored.

use std::io::{BufReader, Read};
use std::path::Path;

use crate::hash::{Digest, Sha256Writer};
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
    let reader: Box<dyn Read> = match url.strip_prefix("file://") {
        Some(path) => Box::new(fs_err::File::open(path).map_err(io)?),
        None => {
            let response = ureq::get(url).call().map_err(|e| FetchError::Http {
                url: url.to_owned(),
                source: Box::new(e),
            })?;
            Box::new(response.into_body().into_reader())
        }
    };
    let file = fs_err::File::create(&dest).map_err(io)?;
    let mut hashing = Sha256Writer::new(file);
    // 64 KiB pieces: `io::copy` reads through a `BufReader`'s own buffer.
    let mut reader = BufReader::with_capacity(64 << 10, reader);
    std::io::copy(&mut reader, &mut hashing).map_err(io)?;
    let (_, actual, _) = hashing.finish();
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
