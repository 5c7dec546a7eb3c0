//! Judge0's `additional_files`: a base64 zip whose files join the program's. The archive is the
//! client's, so it is read as hostile, in the api's memory, before anything runs:
//!
//! - only stored or deflated regular files at the top level (no directories, no symlinks or other
//!   special entries, no encryption), each name a plain file name (`file_names::check`: no `..`,
//!   no `/`, no control characters), no name twice, none that shadows the program's own file;
//! - at most [`MAX_ENTRIES`] entries and [`MAX_EXTRACT_BYTES`] in all, counted while inflating
//!   (a zip bomb's declared sizes are not believed: inflation stops one byte past the bound).
//!
//! Nothing is written to disk: the files travel in the job like any other.

use rce_protocol::file_names;
use std::io::Read;

/// Most entries an archive may hold (the job's other files count against `MAX_FILES` too).
pub const MAX_ENTRIES: usize = 30;
/// Most bytes the entries may inflate to, together (Judge0's `MAX_EXTRACT_SIZE`, 10240 KB).
pub const MAX_EXTRACT_BYTES: u64 = 10240 * 1024;

/// Unix file types in the upper bits of a zip entry's external attributes.
const S_IFMT: u32 = 0o170000;
const S_IFREG: u32 = 0o100000;

/// The archive's files, `(name, bytes)` in archive order, or why it is refused.
pub fn extract(zip_bytes: &[u8], program_file: &str) -> Result<Vec<(String, Vec<u8>)>, String> {
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(zip_bytes))
        .map_err(|e| format!("is not a zip archive: {e}"))?;
    if archive.len() > MAX_ENTRIES {
        return Err(format!(
            "holds {} entries; at most {MAX_ENTRIES} are allowed",
            archive.len()
        ));
    }
    let mut files: Vec<(String, Vec<u8>)> = Vec::new();
    let mut total: u64 = 0;
    for i in 0..archive.len() {
        let mut entry = archive
            .by_index(i)
            .map_err(|e| format!("entry {i} cannot be read: {e}"))?;
        let name = String::from_utf8(entry.name_raw().to_vec())
            .map_err(|_| format!("entry {i}'s name is not UTF-8"))?;
        if entry.is_dir() || name.ends_with('/') {
            return Err(format!(
                "entry {name:?} is a directory; only files at the archive's top level are supported"
            ));
        }
        if entry.encrypted() {
            return Err(format!("entry {name:?} is encrypted"));
        }
        if let Some(mode) = entry.unix_mode() {
            if mode & S_IFMT != 0 && mode & S_IFMT != S_IFREG {
                return Err(format!(
                    "entry {name:?} is not a regular file (a symlink or a special file)"
                ));
            }
        }
        file_names::check(&name).map_err(|e| format!("entry name {name:?} {e}"))?;
        if name == program_file {
            return Err(format!(
                "entry {name:?} has the name of the program's own file"
            ));
        }
        if files.iter().any(|(n, _)| *n == name) {
            return Err(format!("entry {name:?} appears twice"));
        }
        // Inflated under the running total's bound, whatever the entry claims its size is.
        let room = MAX_EXTRACT_BYTES - total;
        let mut bytes = Vec::new();
        (&mut entry)
            .take(room + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| format!("entry {name:?} cannot be inflated: {e}"))?;
        total += bytes.len() as u64;
        if total > MAX_EXTRACT_BYTES {
            return Err(format!("inflates to more than {MAX_EXTRACT_BYTES} bytes"));
        }
        files.push((name, bytes));
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use zip::write::SimpleFileOptions;

    fn archive(entries: &[(&str, &[u8])], options: SimpleFileOptions) -> Vec<u8> {
        let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        for (name, data) in entries {
            w.start_file(*name, options).unwrap();
            w.write_all(data).unwrap();
        }
        w.finish().unwrap().into_inner()
    }

    fn deflated() -> SimpleFileOptions {
        SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated)
    }

    #[test]
    fn plain_files_come_out_in_order() {
        let zip = archive(
            &[("a.txt", b"alpha"), ("b.h", b"#define B 2\n")],
            deflated(),
        );
        let files = extract(&zip, "main.c").unwrap();
        assert_eq!(
            files,
            vec![
                ("a.txt".into(), b"alpha".to_vec()),
                ("b.h".into(), b"#define B 2\n".to_vec())
            ]
        );
    }

    #[test]
    fn hostile_archives_are_refused() {
        let err = |zip: Vec<u8>| extract(&zip, "main.c").unwrap_err();
        assert!(
            err(archive(&[("../escape", b"x")], deflated())).contains("directory reference")
                || err(archive(&[("../escape", b"x")], deflated())).contains("path separator")
        );
        assert!(err(archive(&[("/etc/passwd", b"x")], deflated())).contains("path separator"));
        assert!(err(archive(&[("dir/file", b"x")], deflated())).contains("path separator"));
        // Two entries of one name (the writer refuses to make that: rename one in the bytes): the
        // reader keeps one of them, or refuses; never two files of one name.
        let mut dup = archive(&[("dupAA", b"1"), ("dupBB", b"2")], deflated());
        for at in 0..dup.len() - 5 {
            if &dup[at..at + 5] == b"dupBB" {
                dup[at..at + 5].copy_from_slice(b"dupAA");
            }
        }
        let kept = extract(&dup, "main.c");
        assert!(
            kept.as_ref().is_err() || kept.as_ref().is_ok_and(|f| f.len() == 1),
            "{kept:?}"
        );
        assert!(err(archive(&[("main.c", b"int x;")], deflated())).contains("program's own"));
        assert!(err(archive(&[(".tmp", b"x")], deflated())).contains("reserved"));
        assert!(err(archive(&[("-rf", b"x")], deflated())).contains("option"));
        assert!(err(b"not a zip".to_vec()).contains("not a zip"));
        // A symlink entry.
        let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        w.add_symlink("link", "/etc/shadow", SimpleFileOptions::default())
            .unwrap();
        assert!(err(w.finish().unwrap().into_inner()).contains("not a regular file"));
        // A directory entry.
        let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        w.add_directory("sub/", SimpleFileOptions::default())
            .unwrap();
        assert!(err(w.finish().unwrap().into_inner()).contains("directory"));
        // Too many entries.
        let names: Vec<String> = (0..=MAX_ENTRIES).map(|i| format!("f{i}")).collect();
        let entries: Vec<(&str, &[u8])> = names.iter().map(|n| (n.as_str(), &b"x"[..])).collect();
        assert!(err(archive(&entries, deflated())).contains("entries"));
    }

    #[test]
    fn bombs_are_stopped_while_inflating() {
        // 11 MiB of zeros deflates to a few KB: inflation stops at the bound.
        let zeros = vec![0u8; 11 << 20];
        assert!(extract(&archive(&[("z", &zeros)], deflated()), "main.c")
            .unwrap_err()
            .contains("more than"));
        // 2 MiB of zeros (test data that compresses well) is fine.
        let fine = vec![0u8; 2 << 20];
        assert_eq!(
            extract(&archive(&[("z", &fine)], deflated()), "main.c").unwrap()[0]
                .1
                .len(),
            2 << 20
        );
        // Stored (no compression) past the total: refused by the count, whatever is declared.
        let big = vec![7u8; (MAX_EXTRACT_BYTES as usize) + 1];
        let stored =
            SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
        assert!(extract(&archive(&[("big", &big)], stored), "main.c")
            .unwrap_err()
            .contains("more than"));
        // Several entries each under the bound, together over it.
        let part = vec![1u8; (MAX_EXTRACT_BYTES as usize) / 2 + 1];
        assert!(extract(&archive(&[("p1", &part), ("p2", &part)], stored), "main.c").is_err());
    }
}
