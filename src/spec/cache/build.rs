//! Which build of kiln is running, for the spec cache's key: its version,
//! the GNU build-id the linker wrote into it (read from the loaded program
//! headers, so no IO, and right under valgrind, where `/proc/self/exe` is
//! valgrind's), and its executable file's identity (device, inode, size,
//! mtime, ctime: a rebuilt or replaced kiln gets a new file; this alone
//! when a linker wrote no build-id). Stats `/proc/self/exe`, which names
//! the running file even if its path was replaced since.

use std::ffi::{c_int, c_void};
use std::os::unix::fs::MetadataExt;

use crate::hash::{KeyWriter, StableHash};

pub(super) struct Build {
    version: &'static str,
    build_id: Option<Vec<u8>>,
    file: [u64; 7],
}

impl Build {
    /// The running build, or `None` when its file cannot be stat'ed.
    pub(super) fn running() -> Option<Build> {
        let meta = std::fs::metadata("/proc/self/exe").ok()?;
        let file = [
            meta.dev(),
            meta.ino(),
            meta.size(),
            meta.mtime() as u64,
            meta.mtime_nsec() as u64,
            meta.ctime() as u64,
            meta.ctime_nsec() as u64,
        ];
        Some(Build {
            version: env!("CARGO_PKG_VERSION"),
            build_id: build_id(),
            file,
        })
    }
}

impl StableHash for Build {
    fn write_key(&self, w: &mut KeyWriter) {
        let Build {
            version,
            build_id,
            file,
        } = self;
        w.field("version", *version);
        let id = build_id.as_deref().map(|id| *blake3::hash(id).as_bytes());
        w.field("build-id", &id);
        w.field("file", &file[..]);
    }
}

/// The `NT_GNU_BUILD_ID` note of the executable (the first object the
/// dynamic loader reports), if it has one.
fn build_id() -> Option<Vec<u8>> {
    let mut found: Option<Vec<u8>> = None;
    // SAFETY: the callback only reads the program headers and the note
    // segments the loader reports as mapped, and writes `found`, which
    // outlives the call.
    unsafe {
        libc::dl_iterate_phdr(Some(of_executable), (&raw mut found).cast::<c_void>());
    }
    found
}

unsafe extern "C" fn of_executable(
    info: *mut libc::dl_phdr_info,
    _size: usize,
    data: *mut c_void,
) -> c_int {
    // SAFETY: `dl_iterate_phdr` passes a valid `info` whose `dlpi_phdr`
    // holds `dlpi_phnum` headers, and `data` is `build_id`'s `found`.
    let (info, found) = unsafe { (&*info, &mut *data.cast::<Option<Vec<u8>>>()) };
    for i in 0..usize::from(info.dlpi_phnum) {
        // SAFETY: `i` is below `dlpi_phnum`.
        let header = unsafe { &*info.dlpi_phdr.add(i) };
        if header.p_type != libc::PT_NOTE {
            continue;
        }
        let start = (info.dlpi_addr as usize).wrapping_add(header.p_vaddr as usize);
        // SAFETY: a PT_NOTE segment of a loaded object is mapped, readable,
        // `p_memsz` bytes long.
        let notes =
            unsafe { std::slice::from_raw_parts(start as *const u8, header.p_memsz as usize) };
        let align = if header.p_align == 8 { 8 } else { 4 };
        if let Some(id) = gnu_build_id(notes, align) {
            *found = Some(id.to_vec());
            break;
        }
    }
    // Non-zero: stop after the first object, the executable.
    1
}

/// The descriptor of the `GNU` note of type 3 (`NT_GNU_BUILD_ID`) among
/// `notes` (ELF note records: name size, descriptor size, type, then the
/// name and the descriptor, each padded to `align`).
fn gnu_build_id(mut notes: &[u8], align: usize) -> Option<&[u8]> {
    const NT_GNU_BUILD_ID: u32 = 3;
    let word = |b: &[u8], at: usize| -> Option<u32> {
        Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
    };
    while notes.len() >= 12 {
        let name_len = word(notes, 0)? as usize;
        let desc_len = word(notes, 4)? as usize;
        let kind = word(notes, 8)?;
        let desc_at = 12 + name_len.next_multiple_of(align);
        let next = desc_at + desc_len.next_multiple_of(align);
        let desc = notes.get(desc_at..desc_at + desc_len)?;
        if kind == NT_GNU_BUILD_ID && notes.get(12..12 + name_len)? == b"GNU\0" {
            return Some(desc);
        }
        notes = notes.get(next..)?;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_running_build_has_a_build_id_and_it_is_stable() {
        let id = build_id().expect("the linker writes a GNU build-id");
        assert!(id.len() >= 16, "{id:?}");
        assert_eq!(build_id(), Some(id));
    }

    #[test]
    fn notes_are_walked_to_the_build_id() {
        let mut notes = Vec::new();
        for (kind, name, desc) in [
            (1u32, &b"GNU\0"[..], &[7u8; 16][..]),
            (3, b"GNU\0", &[9; 20]),
        ] {
            notes.extend((name.len() as u32).to_ne_bytes());
            notes.extend((desc.len() as u32).to_ne_bytes());
            notes.extend(kind.to_ne_bytes());
            notes.extend(name);
            notes.extend(desc);
        }
        assert_eq!(gnu_build_id(&notes, 4), Some(&[9u8; 20][..]));
        assert_eq!(gnu_build_id(&notes[..40], 4), None);
    }
}
