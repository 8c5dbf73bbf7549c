//! The few facts of an ELF file the dynamic loader acts on.

use std::io::Read;
use std::path::Path;

use goblin::elf::Elf;
use goblin::elf::header::{ET_DYN, ET_EXEC};

use super::ClosureError;
use crate::fsx::IoContext;

/// What ld.so reads from an object's headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct ElfInfo {
    pub is_64: bool,
    pub machine: u16,
    /// ET_DYN: only a shared object (or PIE) can satisfy a DT_NEEDED.
    pub is_shared: bool,
    pub interpreter: Option<String>,
    pub needed: Vec<String>,
    pub soname: Option<String>,
    /// DT_RPATH and DT_RUNPATH entries, split on `:`, tokens unexpanded.
    pub rpath: Vec<String>,
    pub runpath: Vec<String>,
}

impl ElfInfo {
    /// Whether this machine can run it at all. A program for another
    /// machine (test fixtures in a source tree, say) is data: it has no
    /// closure here.
    pub(super) fn is_native(&self) -> bool {
        use goblin::elf::header::{EM_386, EM_AARCH64, EM_ARM, EM_X86_64};
        let native = match std::env::consts::ARCH {
            "x86_64" => (EM_X86_64, true),
            "x86" => (EM_386, false),
            "aarch64" => (EM_AARCH64, true),
            "arm" => (EM_ARM, false),
            // Unknown to kiln: trust the file rather than refuse it.
            _ => return true,
        };
        (self.machine, self.is_64) == native
    }

    /// Whether ld.so would accept `self` as a library for `loader`.
    pub(super) fn fits(&self, loader: &ElfInfo) -> bool {
        self.is_shared && self.is_64 == loader.is_64 && self.machine == loader.machine
    }
}

/// Reads `path`: `None` when it is not an ELF executable or shared object
/// (a script, a data file, a relocatable object), which needs nothing.
pub(super) fn read(path: &Path) -> Result<Option<ElfInfo>, ClosureError> {
    let mut file = std::fs::File::open(path).at(path)?;
    let mut magic = [0u8; 4];
    match file.read_exact(&mut magic) {
        Ok(()) if magic == *b"\x7fELF" => {}
        Ok(()) => return Ok(None),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(ClosureError::io(path)(e)),
    }
    // Mapped, not read: a Go toolchain's programs are tens of megabytes, and
    // the loader needs only their headers and dynamic section.
    // SAFETY: the map is read-only and dropped before this returns; a file
    // truncated meanwhile can at worst make the parse fail (data, then).
    let bytes = unsafe { memmap2::Mmap::map(&file) }.at(path)?;
    // ld.so cannot load what does not parse either: a truncated or corrupt
    // file that starts like an ELF (a test fixture, say) is data.
    let Ok(elf) = Elf::parse(&bytes) else {
        return Ok(None);
    };
    if !matches!(elf.header.e_type, ET_DYN | ET_EXEC) {
        return Ok(None);
    }
    Ok(Some(ElfInfo {
        is_64: elf.is_64,
        machine: elf.header.e_machine,
        is_shared: elf.header.e_type == ET_DYN,
        interpreter: elf.interpreter.map(str::to_owned),
        needed: elf.libraries.iter().map(|s| (*s).to_owned()).collect(),
        soname: elf.soname.map(str::to_owned),
        rpath: split_paths(&elf.rpaths),
        runpath: split_paths(&elf.runpaths),
    }))
}

fn split_paths(entries: &[&str]) -> Vec<String> {
    entries
        .iter()
        .flat_map(|entry| entry.split(':'))
        .filter(|dir| !dir.is_empty())
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_elf_files_need_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let script = dir.path().join("run.sh");
        std::fs::write(&script, "#!/bin/sh\necho hi\n").expect("write");
        let tiny = dir.path().join("tiny");
        std::fs::write(&tiny, "ab").expect("write");
        assert_eq!(read(&script).expect("read"), None);
        assert_eq!(read(&tiny).expect("read"), None);
    }

    #[test]
    fn a_truncated_elf_is_data_not_a_program() {
        let dir = tempfile::tempdir().expect("tempdir");
        let bad = dir.path().join("bad");
        std::fs::write(&bad, b"\x7fELF\x02\x01\x01").expect("write");
        assert_eq!(read(&bad).expect("read"), None);
    }

    #[test]
    fn the_host_libc_is_a_shared_object_with_a_soname() {
        // Every machine kiln builds on has a dynamic loader; find libc through it.
        let Some(libc) = [
            "/lib/x86_64-linux-gnu/libc.so.6",
            "/lib/aarch64-linux-gnu/libc.so.6",
        ]
        .into_iter()
        .map(Path::new)
        .find(|p| p.exists()) else {
            return;
        };
        let info = read(libc).expect("read").expect("elf");
        assert!(info.is_shared);
        assert_eq!(info.soname.as_deref(), Some("libc.so.6"));
    }
}
