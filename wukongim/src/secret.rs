//! Secrets: files that must be private to the service user (a token or key file readable by
//! group or others is refused at startup, naming the file and its mode) and constant-time
//! comparison of tokens, so a response time never tells how much of a guess was right.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// Equality of two secrets in time that depends only on their lengths.
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    // Keep the optimiser from turning the fold into an early exit.
    std::hint::black_box(diff) == 0
}

/// Refuses a secret file that group or others can read or write; `key` is the config key
/// naming it. The message names the file, its mode and the fix.
pub fn check_private(path: &Path, key: &str) -> Result<(), String> {
    let meta = std::fs::metadata(path).map_err(|e| format!("{key} {}: {e}", path.display()))?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(format!(
            "{key} {} has mode {mode:04o}: a secret file must not be accessible by group or \
             others (chmod 600 {})",
            path.display(),
            path.display()
        ));
    }
    Ok(())
}

/// Reads a private secret file (see [`check_private`]), trimmed of surrounding whitespace.
pub fn read_private(path: &Path, key: &str) -> Result<Vec<u8>, String> {
    check_private(path, key)?;
    let raw = std::fs::read(path).map_err(|e| format!("{key} {}: {e}", path.display()))?;
    Ok(raw.trim_ascii().to_vec())
}

/// Reads a private token file as text (see [`read_private`]): trimmed, UTF-8 or an error
/// naming `key` and the file. May be empty; callers decide what that means.
pub fn read_token_file(path: &Path, key: &str) -> Result<String, String> {
    String::from_utf8(read_private(path, key)?)
        .map_err(|_| format!("{key} {}: not UTF-8 text", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ct_eq_is_equality() {
        assert!(ct_eq(b"", b""));
        assert!(ct_eq(b"secret", b"secret"));
        assert!(!ct_eq(b"secret", b"secreT"));
        assert!(!ct_eq(b"secret", b"secret2"));
        assert!(!ct_eq(b"s", b""));
    }

    #[test]
    fn group_or_world_access_is_refused_with_file_and_mode() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("token");
        std::fs::write(&f, " t0k3n\n").unwrap();
        for mode in [0o640, 0o604, 0o660, 0o644, 0o602] {
            std::fs::set_permissions(&f, std::fs::Permissions::from_mode(mode)).unwrap();
            let e = read_private(&f, "cluster.auth.tokenFile").unwrap_err();
            assert!(
                e.contains("cluster.auth.tokenFile")
                    && e.contains(&f.display().to_string())
                    && e.contains(&format!("{mode:04o}")),
                "{e}"
            );
        }
        for mode in [0o600, 0o400] {
            std::fs::set_permissions(&f, std::fs::Permissions::from_mode(mode)).unwrap();
            assert_eq!(read_private(&f, "k").unwrap(), b"t0k3n");
        }
        assert!(read_private(&dir.path().join("missing"), "k").is_err());
    }
}
