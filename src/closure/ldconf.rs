//! The library directories of a root's `/etc/ld.so.conf`, as ldconfig(8)
//! reads them: one directory per line (or several, split by spaces, commas
//! or colons), `#` comments, and `include PATTERN…` lines whose globs are
//! resolved inside the root, relative to the including file's directory
//! when not absolute, matched files read in sorted order. Wildcards are
//! supported in the last path component only, which is every real layout
//! (`/etc/ld.so.conf.d/*.conf`). `hwcap` lines are ignored.

use super::ClosureError;
use super::rootfs::{RootFs, normalize_image};
use crate::fsx::IoContext;

/// ldconfig's own limit on nested includes, which also stops cycles.
const MAX_DEPTH: usize = 16;

/// The directories listed by `/etc/ld.so.conf` in `fs`, in order, without
/// duplicates. A root without the file has none.
pub(super) fn dirs(fs: &RootFs) -> Result<Vec<String>, ClosureError> {
    let mut dirs = Vec::new();
    read_file(fs, "/etc/ld.so.conf", 0, &mut dirs)?;
    Ok(dirs)
}

fn read_file(
    fs: &RootFs,
    path: &str,
    depth: usize,
    dirs: &mut Vec<String>,
) -> Result<(), ClosureError> {
    if depth > MAX_DEPTH {
        return Ok(());
    }
    let Some(found) = fs.lookup(path)? else {
        return Ok(());
    };
    if !found.disk.is_file() {
        return Ok(());
    }
    let text = std::fs::read(&found.disk).at(&found.disk)?;
    let text = String::from_utf8_lossy(&text);
    let here = normalize_image(&format!("{}/..", found.image));
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or_default().trim();
        if let Some(patterns) = line
            .strip_prefix("include")
            .filter(|rest| rest.starts_with([' ', '\t']))
        {
            for pattern in patterns.split_whitespace() {
                let pattern = normalize_image(&absolute(&here, pattern));
                for file in glob(fs, &pattern)? {
                    read_file(fs, &file, depth + 1, dirs)?;
                }
            }
        } else if !line.starts_with("hwcap") {
            for dir in line.split([' ', '\t', ',', ':']).filter(|d| !d.is_empty()) {
                // libc5-era `dir=TYPE` suffixes name a library type, not a path.
                let dir = normalize_image(dir.split('=').next().unwrap_or_default());
                if !dirs.contains(&dir) {
                    dirs.push(dir);
                }
            }
        }
    }
    Ok(())
}

fn absolute(here: &str, path: &str) -> String {
    if path.starts_with('/') {
        path.to_owned()
    } else {
        format!("{here}/{path}")
    }
}

/// The in-root paths matching `pattern` (wildcards in its last component).
fn glob(fs: &RootFs, pattern: &str) -> Result<Vec<String>, ClosureError> {
    let (dir, name) = pattern.rsplit_once('/').unwrap_or(("", pattern));
    if !name.contains(['*', '?', '[']) {
        return Ok(vec![pattern.to_owned()]);
    }
    let Ok(matcher) = globset::Glob::new(name).map(|g| g.compile_matcher()) else {
        // glob(3) matches nothing for a malformed pattern; neither does ldconfig.
        return Ok(Vec::new());
    };
    let Some(found) = fs.lookup(if dir.is_empty() { "/" } else { dir })? else {
        return Ok(Vec::new());
    };
    let Ok(entries) = std::fs::read_dir(&found.disk) else {
        return Ok(Vec::new());
    };
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.at(&found.disk)?;
        if let Some(name) = entry.file_name().to_str().filter(|n| !n.starts_with('.'))
            && matcher.is_match(name)
        {
            names.push(format!("{}/{name}", found.image.trim_end_matches('/')));
        }
    }
    names.sort();
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(root: &std::path::Path, path: &str, text: &str) {
        let path = root.join(path);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, text).expect("write");
    }

    #[test]
    fn includes_are_followed_in_sorted_order_inside_the_root() {
        let dir = tempfile::tempdir().expect("tempdir");
        write(
            dir.path(),
            "etc/ld.so.conf",
            "# comment\n/opt/first\ninclude /etc/ld.so.conf.d/*.conf\ninclude rel.d/*.conf\n",
        );
        write(
            dir.path(),
            "etc/ld.so.conf.d/b.conf",
            "/b/lib # trailing\n/opt/first\n",
        );
        write(dir.path(), "etc/ld.so.conf.d/a.conf", "/a/lib:/a/lib2\n");
        write(dir.path(), "etc/ld.so.conf.d/a.txt", "/not/matched\n");
        write(
            dir.path(),
            "etc/rel.d/x.conf",
            "/rel/lib\nhwcap 0 nosegneg\n",
        );
        let dirs = dirs(&RootFs::new(dir.path())).expect("dirs");
        assert_eq!(
            dirs,
            ["/opt/first", "/a/lib", "/a/lib2", "/b/lib", "/rel/lib"]
        );
    }

    #[test]
    fn a_root_without_ld_so_conf_has_no_dirs() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(dirs(&RootFs::new(dir.path())).expect("dirs").is_empty());
    }

    #[test]
    fn include_cycles_stop() {
        let dir = tempfile::tempdir().expect("tempdir");
        write(
            dir.path(),
            "etc/ld.so.conf",
            "/x\ninclude /etc/ld.so.conf\n",
        );
        assert_eq!(dirs(&RootFs::new(dir.path())).expect("dirs"), ["/x"]);
    }
}
