//! What may be a step input: regular files and directories. A FIFO or a device (`/dev/zero`) would make
//! hashing the input read for ever, so they are refused before anything reads them.

pub use crate::util::special_file_kind as special_kind;

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
    use std::path::Path;

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
