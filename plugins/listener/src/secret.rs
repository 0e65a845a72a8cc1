//! Shared tokens: where they come from and how they are compared.

use std::fmt;
use std::path::{Path, PathBuf};
use subtle::ConstantTimeEq;

/// A secret that could not be loaded; names the flag and file, never the content.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// Both the value flag (or its environment variable) and the file flag were given.
    #[error("{flag} and {flag}-file are exclusive")]
    Both {
        /// The value flag.
        flag: String,
    },
    /// The file could not be read.
    #[error("{flag}-file {}: {source}", path.display())]
    Read {
        /// The value flag.
        flag: String,
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The secret is empty.
    #[error("{flag}: the secret is empty")]
    Empty {
        /// The value flag.
        flag: String,
    },
}

/// A token or password. Its `Debug` and `Display` never show it.
#[derive(Clone)]
pub struct Secret(Vec<u8>);

impl Secret {
    /// The secret given by `flag` (`value`, from the flag or its environment variable) or
    /// by `flag-file` (`file`: its content without the final line end); `None` if neither.
    pub fn load(
        flag: &str,
        value: Option<&str>,
        file: Option<&Path>,
    ) -> Result<Option<Secret>, SecretError> {
        let bytes = match (value, file) {
            (None, None) => return Ok(None),
            (Some(_), Some(_)) => return Err(SecretError::Both { flag: flag.into() }),
            (Some(value), None) => value.as_bytes().to_vec(),
            (None, Some(path)) => read_secret_file(flag, path)?,
        };
        if bytes.is_empty() {
            return Err(SecretError::Empty { flag: flag.into() });
        }
        Ok(Some(Secret(bytes)))
    }

    /// Whether `presented` is this secret, in time independent of where they differ.
    pub fn matches(&self, presented: &[u8]) -> bool {
        self.0.ct_eq(presented).into()
    }

    /// The secret's bytes (to send it).
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

fn read_secret_file(flag: &str, path: &Path) -> Result<Vec<u8>, SecretError> {
    let mut bytes = std::fs::read(path).map_err(|source| SecretError::Read {
        flag: flag.into(),
        path: path.into(),
        source,
    })?;
    while bytes.last().is_some_and(|b| matches!(b, b'\n' | b'\r')) {
        bytes.pop();
    }
    Ok(bytes)
}

/// `url` with the password of its `user:pass@` part replaced by `***`, to log or put in an
/// error; a URL without one is returned as it is. Works without a scheme too (`user:pass@host`).
pub fn redact_url(url: &str) -> String {
    let start = url.find("://").map_or(0, |i| i + 3);
    let rest = &url[start..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let Some(at) = rest[..authority_end].rfind('@') else {
        return url.to_string();
    };
    let Some(colon) = rest[..at].find(':') else {
        return url.to_string();
    };
    format!("{}{}:***{}", &url[..start], &rest[..colon], &rest[at..])
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_passwords_in_urls() {
        assert_eq!(redact_url("http://u:p@h:1/x"), "http://u:***@h:1/x");
        assert_eq!(redact_url("u:p:q@h/i"), "u:***@h/i");
        assert_eq!(redact_url("https://u@h/"), "https://u@h/");
        assert_eq!(redact_url("http://h/a:b@c"), "http://h/a:b@c");
        assert_eq!(redact_url("http://u:p@w@h"), "http://u:***@h");
    }

    #[test]
    fn loads_from_value_or_file_and_hides_itself() {
        let secret = Secret::load("--t", Some("s3cret"), None).unwrap().unwrap();
        assert!(secret.matches(b"s3cret"));
        assert!(!secret.matches(b"s3cre"));
        assert!(!secret.matches(b"s3cret!"));
        assert_eq!(format!("{secret:?} {secret}"), "*** ***");
        let path = std::env::temp_dir().join(format!("secret-{}", std::process::id()));
        std::fs::write(&path, "from-file\n").unwrap();
        let secret = Secret::load("--t", None, Some(&path)).unwrap().unwrap();
        assert!(secret.matches(b"from-file"));
        std::fs::remove_file(&path).unwrap();
        let err = Secret::load("--t", None, Some(&path))
            .unwrap_err()
            .to_string();
        assert!(err.contains("--t-file"), "{err}");
        assert!(Secret::load("--t", Some("a"), Some(&path)).is_err());
        assert!(Secret::load("--t", Some(""), None).is_err());
        assert!(Secret::load("--t", None, None).unwrap().is_none());
    }
}
