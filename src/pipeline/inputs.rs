//! What may be a step input: regular files and directories. A FIFO or a device (`/dev/zero`) would make
//! hashing the input read for ever, so they are refused before anything reads them.

use std::os::unix::fs::FileTypeExt;
use std::path::Path;

/// What `path` is when it exists and is neither a regular file nor a directory (symlinks followed).
pub fn special_kind(path: &Path) -> Option<&'static str> {
    let t = std::fs::metadata(path).ok()?.file_type();
    if t.is_file() || t.is_dir() {
        None
    } else if t.is_fifo() {
        Some("a FIFO")
    } else if t.is_char_device() {
        Some("a character device")
    } else if t.is_block_device() {
        Some("a block device")
    } else if t.is_socket() {
        Some("a socket")
    } else {
        Some("not a regular file")
    }
}

/// The one-line reason an input at `shown` (as the user wrote or matched it) cannot be used.
pub fn refusal(shown: &str, kind: &str) -> String {
    format!(
        "input `{shown}` is {kind}: only regular files and directories can be inputs (reading it might never end)"
    )
}

/// Whether a pattern has glob syntax, so which files it names is known only when it is expanded.
pub fn is_glob(pattern: &str) -> bool {
    pattern.contains(['*', '?', '['])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("f");
        std::fs::write(&f, "x").unwrap();
        assert_eq!(special_kind(&f), None);
        assert_eq!(special_kind(dir.path()), None);
        assert_eq!(special_kind(&dir.path().join("missing")), None);
        assert_eq!(
            special_kind(Path::new("/dev/zero")),
            Some("a character device")
        );
        let fifo = dir.path().join("p");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
        assert_eq!(special_kind(&fifo), Some("a FIFO"));
        assert!(is_glob("data/*.csv") && !is_glob("data/a.csv"));
    }
}
