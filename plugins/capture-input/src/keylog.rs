//! Key log files for TLS decryption (`--input-raw-tls-keylog`): read whole when capture starts,
//! then tailed, so that secrets a client writes after its packets were captured are still used.
//!
//! A file may not exist yet (a client creates it at its first connection); one that shrinks was
//! rotated or truncated and is read again from its start. The contents never reach a log line:
//! malformed lines are reported by count only. A file that other users may read is warned
//! about, since it holds session secrets.

use shadowtap_capture::tls::KeyStore;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

/// How often the tailing thread looks for new lines.
const POLL_EVERY: Duration = Duration::from_millis(200);
/// Longest line kept while waiting for its end (a key log line is under 250 bytes).
const MAX_LINE: usize = 4096;
/// Bytes read from a file per look (the rest waits for the next look).
const READ_PER_POLL: u64 = 16 << 20;

/// The one store of every capture input configured with the same key log files (and the thread
/// that tails them, which ends with the store).
pub fn shared_store(paths: &[PathBuf]) -> Arc<KeyStore> {
    type Stores = Mutex<Vec<(Vec<PathBuf>, Weak<KeyStore>)>>;
    static STORES: OnceLock<Stores> = OnceLock::new();
    let mut stores = STORES
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    stores.retain(|(_, store)| store.strong_count() > 0);
    if let Some(store) = stores
        .iter()
        .find(|(known, _)| known == paths)
        .and_then(|(_, store)| store.upgrade())
    {
        return store;
    }
    let store = Arc::new(KeyStore::default());
    let mut tails: Vec<Tail> = paths.iter().map(|p| Tail::new(p.clone())).collect();
    for tail in &mut tails {
        tail.warn_if_shared();
        tail.poll(&store);
    }
    spawn_tailer(tails, Arc::downgrade(&store));
    stores.push((paths.to_vec(), Arc::downgrade(&store)));
    store
}

fn spawn_tailer(mut tails: Vec<Tail>, store: Weak<KeyStore>) {
    let spawned = std::thread::Builder::new()
        .name("keylog-tail".into())
        .spawn(move || loop {
            std::thread::sleep(POLL_EVERY);
            let Some(store) = store.upgrade() else {
                return;
            };
            for tail in &mut tails {
                tail.poll(&store);
            }
        });
    if let Err(e) = spawned {
        tracing::warn!("key logs are read once only: no thread to tail them ({e})");
    }
}

/// One key log file being tailed.
struct Tail {
    path: PathBuf,
    offset: u64,
    partial: Vec<u8>,
    line: u64,
    reported_missing: bool,
    reported_error: bool,
}

impl Tail {
    fn new(path: PathBuf) -> Tail {
        Tail {
            path,
            offset: 0,
            partial: Vec::new(),
            line: 0,
            reported_missing: false,
            reported_error: false,
        }
    }

    fn warn_if_shared(&self) {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = std::fs::metadata(&self.path) {
            let mode = meta.permissions().mode();
            if mode & 0o044 != 0 {
                tracing::warn!(
                    "TLS key log {} can be read by other users (mode {:o}): it holds session secrets; chmod 600 it",
                    self.path.display(),
                    mode & 0o777
                );
            }
        }
    }

    /// Reads what was appended since the last look and adds its complete lines.
    fn poll(&mut self, store: &KeyStore) {
        match self.read_new() {
            Ok(bytes) if !bytes.is_empty() => self.absorb(&bytes, store),
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if !self.reported_missing {
                    self.reported_missing = true;
                    tracing::info!(
                        "TLS key log {} does not exist yet; waiting for it",
                        self.path.display()
                    );
                }
            }
            Err(e) => {
                if !self.reported_error {
                    self.reported_error = true;
                    tracing::warn!("TLS key log {}: {e}", self.path.display());
                }
            }
        }
    }

    fn read_new(&mut self) -> std::io::Result<Vec<u8>> {
        let mut file = File::open(&self.path)?;
        let len = file.metadata()?.len();
        if len < self.offset {
            tracing::info!(
                "TLS key log {} shrank: reading it again from the start",
                self.path.display()
            );
            self.offset = 0;
            self.line = 0;
            self.partial.clear();
        }
        file.seek(SeekFrom::Start(self.offset))?;
        let mut bytes = Vec::new();
        file.take(READ_PER_POLL).read_to_end(&mut bytes)?;
        self.offset += bytes.len() as u64;
        self.reported_missing = false;
        Ok(bytes)
    }

    fn absorb(&mut self, bytes: &[u8], store: &KeyStore) {
        self.partial.extend_from_slice(bytes);
        let Some(last_newline) = last_newline(&self.partial) else {
            if self.partial.len() > MAX_LINE {
                self.report_malformed(1);
                self.partial.clear();
            }
            return;
        };
        let complete: Vec<u8> = self.partial.drain(..=last_newline).collect();
        let lines = complete.iter().filter(|&&b| b == b'\n').count() as u64;
        let added = store.add_text(&complete);
        self.line += lines;
        if added.malformed > 0 {
            self.report_malformed(added.malformed);
        }
    }

    fn report_malformed(&self, count: usize) {
        tracing::warn!(
            "TLS key log {}: {count} malformed line(s) ignored (up to line {})",
            self.path.display(),
            self.line
        );
    }
}

fn last_newline(bytes: &[u8]) -> Option<usize> {
    bytes.iter().rposition(|&b| b == b'\n')
}

#[cfg(test)]
mod tests {
    use super::*;
    use shadowtap_capture::tls::KeyLookup;
    use std::io::Write;

    const RANDOM: &str = "0101010101010101010101010101010101010101010101010101010101010101";

    fn line(label: &str, random: &str) -> String {
        format!("{label} {random} {}\n", "ab".repeat(48))
    }

    #[test]
    fn appended_lines_are_picked_up_and_partial_lines_wait() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys.log");
        let store = KeyStore::default();
        let mut tail = Tail::new(path.clone());
        tail.poll(&store);
        assert!(store.is_empty(), "a missing file is waited for");
        let mut file = File::create(&path).unwrap();
        let text = line("CLIENT_RANDOM", RANDOM);
        file.write_all(&text.as_bytes()[..20]).unwrap();
        tail.poll(&store);
        assert!(store.is_empty(), "half a line is not read yet");
        file.write_all(&text.as_bytes()[20..]).unwrap();
        tail.poll(&store);
        assert!(store.secrets(&[1; 32]).is_some());
    }

    #[test]
    fn a_truncated_file_is_read_again() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys.log");
        std::fs::write(&path, line("CLIENT_RANDOM", &"02".repeat(32)).repeat(3)).unwrap();
        let store = KeyStore::default();
        let mut tail = Tail::new(path.clone());
        tail.poll(&store);
        std::fs::write(&path, line("CLIENT_RANDOM", RANDOM)).unwrap();
        tail.poll(&store);
        assert!(store.secrets(&[1; 32]).is_some());
        assert!(store.secrets(&[2; 32]).is_some());
    }

    #[test]
    fn inputs_with_the_same_files_share_one_store() {
        let dir = tempfile::tempdir().unwrap();
        let paths = vec![dir.path().join("a.log")];
        let first = shared_store(&paths);
        let second = shared_store(&paths);
        assert!(Arc::ptr_eq(&first, &second));
        let other = shared_store(&[dir.path().join("b.log")]);
        assert!(!Arc::ptr_eq(&first, &other));
    }
}
