//! The search itself: for each program, load what ld.so would load,
//! breadth first, and record every file and symlink on the way.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use super::elf::{self, ElfInfo};
use super::model::{Closure, Needed, NeededKind, Program, Root};
use super::rootfs::{Found, RootFs, normalize_image};
use super::{ClosureError, ldconf};

/// Resolves the closure of `programs` inside `root`, as the stage saw it.
///
/// The programs themselves are not in the result (they are copied anyway);
/// what they need is, keyed by its path in the image. Statically linked and
/// non-ELF programs need nothing.
pub fn resolve(root: &Root, programs: &[Program]) -> Result<Closure, ClosureError> {
    let fs = RootFs::of(root);
    // ld.so.conf is configuration, read where the host keeps it; the
    // directories it names are searched in what the stage saw.
    let conf = ldconf::dirs(&fs.unconfined())?;
    let mut closure = Closure::default();
    for program in programs {
        let Some(info) = elf::read(&program.file)?.filter(|i| i.is_native()) else {
            continue;
        };
        let mut loader = Loader {
            fs: &fs,
            conf: &conf,
            program,
            objects: Vec::new(),
            loaded: HashSet::new(),
            closure: &mut closure,
        };
        loader.load_program(info)?;
    }
    Ok(closure)
}

/// An object ld.so has loaded for one program.
struct Object {
    /// Its path in the image, and where its bytes are now.
    image: String,
    disk: PathBuf,
    /// Whether `disk` is in the root; if not, it sits beside a program and
    /// its `$ORIGIN` is looked up beside it on disk.
    in_root: bool,
    info: ElfInfo,
    /// The object whose DT_NEEDED loaded it; its RPATH is searched too.
    parent: Option<usize>,
    chain: Vec<String>,
}

/// A directory of a search path, expanded.
enum Dir {
    Root(String),
    Beside {
        image_dir: String,
        disk_dir: PathBuf,
        rel: String,
    },
}

struct Loader<'a> {
    fs: &'a RootFs,
    conf: &'a [String],
    program: &'a Program,
    objects: Vec<Object>,
    /// Names and sonames already loaded: ld.so does not search them again.
    loaded: HashSet<String>,
    closure: &'a mut Closure,
}

impl Loader<'_> {
    fn load_program(&mut self, info: ElfInfo) -> Result<(), ClosureError> {
        let image = self.program.image_path.clone();
        let interpreter = info.interpreter.clone();
        let program = info.clone();
        self.push(Object {
            image: image.clone(),
            disk: self.program.file.clone(),
            in_root: false,
            info,
            parent: None,
            chain: vec![image.clone()],
        });
        if let Some(interp) = interpreter {
            let Some(found) = self.fs.lookup(&interp)?.filter(|f| f.disk.is_file()) else {
                return Err(self.not_found(&interp, vec![interp.clone()]));
            };
            // The kernel maps only an ELF object for the program's machine;
            // anything else (a text file such as `/etc/shadow`) is refused
            // before a byte of it can go into the image.
            let info = match elf::read(&found.disk)? {
                Some(info) if (info.is_64, info.machine) == (program.is_64, program.machine) => {
                    info
                }
                _ => {
                    return Err(ClosureError::BadInterpreter {
                        program: image,
                        interpreter: interp,
                    });
                }
            };
            let chain = vec![image, format!("interpreter {interp}")];
            self.record(&found, &chain);
            self.push(Object::new(found, info, Some(0), chain));
        }
        // Breadth first, as ld.so loads: objects grows while we walk it.
        let mut next = 0;
        while next < self.objects.len() {
            for name in self.objects[next].info.needed.clone() {
                self.load_needed(next, &name)?;
            }
            next += 1;
        }
        Ok(())
    }

    fn load_needed(&mut self, loader: usize, name: &str) -> Result<(), ClosureError> {
        if self.loaded.contains(name) {
            return Ok(());
        }
        let mut searched = Vec::new();
        for dir in self.search_path(loader, name)? {
            searched.push(match name.contains('/') {
                true => name.to_owned(),
                false => dir.describe(),
            });
            let found = match &dir {
                Dir::Root(dir) => self.fs.lookup(&format!("{dir}/{name}"))?,
                Dir::Beside {
                    image_dir,
                    disk_dir,
                    rel,
                } => self.fs.lookup_beside(
                    &self.program.tree,
                    image_dir,
                    disk_dir,
                    &format!("{rel}/{name}"),
                )?,
            };
            let Some(found) = found.filter(|f| f.disk.is_file()) else {
                continue;
            };
            // ld.so skips what it cannot map (wrong class or machine, not ELF).
            let Ok(Some(info)) = elf::read(&found.disk) else {
                continue;
            };
            if !info.fits(&self.objects[loader].info) {
                continue;
            }
            let mut chain = self.objects[loader].chain.clone();
            chain.push(name.to_owned());
            self.loaded.insert(name.to_owned());
            // Even when the file is already loaded under another name, the
            // image needs the links ld.so will follow to find it by this one.
            self.record(&found, &chain);
            if !self.objects.iter().any(|o| o.image == found.image) {
                self.push(Object::new(found, info, Some(loader), chain));
            }
            return Ok(());
        }
        Err(self.not_found(name, searched))
    }

    /// Where ld.so looks for `name` needed by `loader`, in order.
    fn search_path(&self, loader: usize, name: &str) -> Result<Vec<Dir>, ClosureError> {
        if name.contains('/') {
            return Ok(vec![Dir::Root("/".to_owned())]);
        }
        let object = &self.objects[loader];
        let mut dirs = Vec::new();
        if object.info.runpath.is_empty() {
            let mut at = Some(loader);
            while let Some(i) = at {
                for entry in &self.objects[i].info.rpath {
                    dirs.push(self.expand(&self.objects[i], entry)?);
                }
                at = self.objects[i].parent;
            }
        }
        for entry in &object.info.runpath {
            dirs.push(self.expand(object, entry)?);
        }
        dirs.extend(self.conf.iter().cloned().map(Dir::Root));
        // ld.so's built-in system search path. Debian's (and Ubuntu's) puts
        // the multiarch directories first and has no /lib64; upstream
        // glibc's is /lib64 on 64-bit. A root without ld.so.conf (an image
        // made by kiln) relies on it, so both are searched, Debian's first:
        // a directory a root does not have finds nothing.
        let multiarch = multiarch_dirs();
        let defaults: &[&str] = if object.info.is_64 {
            &["/lib64", "/usr/lib64", "/lib", "/usr/lib"]
        } else {
            &["/lib", "/usr/lib"]
        };
        let multiarch = multiarch.iter().filter(|_| object.info.is_64).cloned();
        dirs.extend(multiarch.map(Dir::Root));
        dirs.extend(defaults.iter().map(|d| Dir::Root((*d).to_owned())));
        Ok(dirs)
    }

    /// Expands `$ORIGIN` in a search path entry of `object`.
    fn expand(&self, object: &Object, entry: &str) -> Result<Dir, ClosureError> {
        for token in ["$LIB", "${LIB}", "$PLATFORM", "${PLATFORM}"] {
            if entry.contains(token) {
                return Err(ClosureError::UnsupportedToken {
                    program: self.program.image_path.clone(),
                    object: object.image.clone(),
                    token: token.to_owned(),
                });
            }
        }
        let image_dir = normalize_image(&format!("{}/..", object.image));
        let rest = entry
            .strip_prefix("$ORIGIN")
            .or_else(|| entry.strip_prefix("${ORIGIN}"));
        Ok(match rest {
            Some(rel) if !object.in_root => Dir::Beside {
                image_dir,
                disk_dir: object
                    .disk
                    .parent()
                    .map(Path::to_path_buf)
                    .unwrap_or_default(),
                rel: rel.to_owned(),
            },
            Some(rel) => Dir::Root(normalize_image(&format!("{image_dir}/{rel}"))),
            // Elsewhere in the entry (rare) `$ORIGIN` is only text to replace.
            None => Dir::Root(normalize_image(
                &entry
                    .replace("${ORIGIN}", &image_dir)
                    .replace("$ORIGIN", &image_dir),
            )),
        })
    }

    fn push(&mut self, object: Object) {
        self.loaded.extend(object.info.soname.clone());
        self.objects.push(object);
    }

    fn record(&mut self, found: &Found, chain: &[String]) {
        for link in &found.links {
            let kind = NeededKind::Symlink {
                target: link.target.clone(),
            };
            self.closure
                .insert(link.image.clone(), needed(kind, &link.disk, chain));
        }
        self.closure.insert(
            found.image.clone(),
            needed(NeededKind::File, &found.disk, chain),
        );
    }

    fn not_found(&self, library: &str, searched: Vec<String>) -> ClosureError {
        ClosureError::NotFound {
            program: self.program.image_path.clone(),
            library: library.to_owned(),
            searched,
        }
    }
}

impl Object {
    fn new(found: Found, info: ElfInfo, parent: Option<usize>, chain: Vec<String>) -> Self {
        Object {
            image: found.image,
            disk: found.disk,
            in_root: found.in_root,
            info,
            parent,
            chain,
        }
    }
}

impl Dir {
    fn describe(&self) -> String {
        match self {
            Dir::Root(dir) => dir.clone(),
            Dir::Beside {
                image_dir,
                disk_dir,
                rel,
            } => format!(
                "{} (beside the program, in {})",
                normalize_image(&format!("{image_dir}/{rel}")),
                disk_dir.join(rel.trim_start_matches('/')).display()
            ),
        }
    }
}

fn needed(kind: NeededKind, source: &Path, chain: &[String]) -> Needed {
    Needed {
        kind,
        source: source.to_path_buf(),
        chain: chain.to_vec(),
    }
}

/// The multiarch library directories of this machine's 64-bit triplet
/// (`/lib/x86_64-linux-gnu`, `/usr/lib/x86_64-linux-gnu`).
fn multiarch_dirs() -> Vec<String> {
    let triplet = format!("{}-linux-gnu", std::env::consts::ARCH);
    vec![format!("/lib/{triplet}"), format!("/usr/lib/{triplet}")]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(image: &str, in_root: bool) -> Object {
        Object {
            image: image.to_owned(),
            disk: PathBuf::from("/store/out/lib/libx.so"),
            in_root,
            info: ElfInfo {
                is_64: true,
                machine: 62,
                is_shared: true,
                interpreter: None,
                needed: Vec::new(),
                soname: None,
                rpath: Vec::new(),
                runpath: Vec::new(),
            },
            parent: None,
            chain: Vec::new(),
        }
    }

    fn expand(object: &Object, entry: &str) -> Result<Dir, ClosureError> {
        let fs = RootFs::new(Path::new("/root"));
        let program = Program {
            file: PathBuf::from("/store/out/bin/prog"),
            image_path: "/app/bin/prog".to_owned(),
            tree: PathBuf::from("/store/out"),
        };
        let mut closure = Closure::default();
        let loader = Loader {
            fs: &fs,
            conf: &[],
            program: &program,
            objects: Vec::new(),
            loaded: HashSet::new(),
            closure: &mut closure,
        };
        loader.expand(object, entry)
    }

    #[test]
    fn origin_of_an_object_in_the_root_stays_a_root_path() {
        let dir = expand(
            &object("/usr/lib/app/libx.so", true),
            "${ORIGIN}/../private",
        )
        .expect("expand");
        assert!(matches!(dir, Dir::Root(d) if d == "/usr/lib/private"));
    }

    #[test]
    fn origin_of_a_copied_object_is_looked_up_beside_it() {
        let dir = expand(&object("/app/lib/libx.so", false), "$ORIGIN/sub").expect("expand");
        let Dir::Beside {
            image_dir,
            disk_dir,
            rel,
        } = dir
        else {
            panic!("expected a lookup beside the object");
        };
        assert_eq!((image_dir.as_str(), rel.as_str()), ("/app/lib", "/sub"));
        assert_eq!(disk_dir, PathBuf::from("/store/out/lib"));
    }

    #[test]
    fn lib_and_platform_tokens_are_refused_by_name() {
        let err = expand(&object("/usr/lib/libx.so", true), "/opt/$LIB")
            .err()
            .expect("refused");
        assert!(
            matches!(&err, ClosureError::UnsupportedToken { token, object, .. } if token == "$LIB" && object == "/usr/lib/libx.so"),
            "{err:?}"
        );
    }
}
