//! File names: GoReplay's template tokens and chunk numbering (`name_N.ext`).

use chrono::{Datelike, Local, Timelike};
use rand::Rng;
use shadowtap_api::Message;
use std::path::{Path, PathBuf};

/// The 8-letter id `%i` expands to, chosen once per process.
#[derive(Clone, Debug)]
pub struct InstanceId(String);

impl InstanceId {
    /// A random id of 8 lowercase letters.
    pub fn random() -> Self {
        let mut rng = rand::rng();
        InstanceId(
            (0..8)
                .map(|_| rng.random_range(b'a'..=b'z') as char)
                .collect(),
        )
    }
}

/// A `--output-file` value with its tokens.
#[derive(Clone, Debug)]
pub struct Template {
    text: String,
    instance: InstanceId,
}

impl Template {
    /// Wraps a template.
    pub fn new(text: &str, instance: InstanceId) -> Self {
        Template {
            text: text.to_string(),
            instance,
        }
    }

    /// The name for `msg`, written now.
    pub fn render(&self, msg: &Message) -> PathBuf {
        if !self.text.contains('%') {
            return PathBuf::from(&self.text);
        }
        let now = Local::now();
        let mut out = String::with_capacity(self.text.len() + 16);
        let mut rest = self.text.as_str();
        while let Some(at) = rest.find('%') {
            out.push_str(&rest[..at]);
            rest = &rest[at..];
            let (expansion, used) = match rest.get(1..3).unwrap_or_default() {
                "NS" => (now.nanosecond().to_string(), 3),
                _ => match rest.as_bytes().get(1) {
                    Some(b'Y') => (format!("{:04}", now.year()), 2),
                    Some(b'm') => (format!("{:02}", now.month()), 2),
                    Some(b'd') => (format!("{:02}", now.day()), 2),
                    Some(b'H') => (format!("{:02}", now.hour()), 2),
                    Some(b'M') => (format!("{:02}", now.minute()), 2),
                    Some(b'S') => (format!("{:02}", now.second()), 2),
                    Some(b'r') => (sanitize(msg.id()), 2),
                    Some(b't') => ((msg.kind().as_byte() as char).to_string(), 2),
                    Some(b'i') => (self.instance.0.clone(), 2),
                    _ => ("%".to_string(), 1),
                },
            };
            out.push_str(&expansion);
            rest = &rest[used..];
        }
        out.push_str(rest);
        PathBuf::from(out)
    }
}

/// Ids come from the traffic: never let one name another directory. Path separators, NUL
/// and control characters become `_`, and so does every `.` of a `..`.
pub fn sanitize(id: &str) -> String {
    let safe: String = id
        .chars()
        .map(|c| match c {
            '/' | '\\' => '_',
            c if c.is_control() => '_',
            c => c,
        })
        .collect();
    safe.replace("..", "__")
}

/// `dir/stem_N.ext` for chunk `index` of `name` (GoReplay: `/tmp/logs.gz`, 1 → `/tmp/logs_1.gz`).
pub fn chunk_path(name: &Path, index: u64) -> PathBuf {
    let (stem, ext) = split_extension(name);
    let file = format!("{stem}_{index}{ext}");
    name.with_file_name(file)
}

fn split_extension(name: &Path) -> (String, String) {
    let file = name
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default();
    match file.rfind('.') {
        Some(dot) if dot > 0 => (file[..dot].to_string(), file[dot..].to_string()),
        _ => (file, String::new()),
    }
}

/// The index in `stem_N.ext`, if `candidate` is a chunk of `name`.
fn chunk_index(name: &Path, candidate: &Path) -> Option<u64> {
    let (stem, ext) = split_extension(name);
    let file = candidate.file_name()?.to_str()?;
    let middle = file
        .strip_prefix(&stem)?
        .strip_suffix(&ext)?
        .strip_prefix('_')?;
    middle.parse().ok()
}

/// The next chunk to write for `name`: after `current` when rotating, else after the highest
/// chunk already on disk (so a restart never overwrites), else chunk 0.
pub fn next_chunk(name: &Path, current: Option<&Path>) -> PathBuf {
    if let Some(index) = current.and_then(|c| chunk_index(name, c)) {
        return chunk_path(name, index + 1);
    }
    let dir = match name.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let highest = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| chunk_index(name, &entry.path()))
        .max();
    chunk_path(name, highest.map_or(0, |h| h + 1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use shadowtap_api::{Kind, Meta};

    #[test]
    fn chunk_names_follow_goreplay() {
        assert_eq!(
            chunk_path(Path::new("/tmp/logs.gz"), 1),
            Path::new("/tmp/logs_1.gz")
        );
        assert_eq!(
            chunk_path(Path::new("/tmp/logs_underscores.gz"), 10),
            Path::new("/tmp/logs_underscores_10.gz")
        );
        assert_eq!(
            chunk_path(Path::new("requests"), 0),
            Path::new("requests_0")
        );
        assert_eq!(
            chunk_index(Path::new("/t/a.gor"), Path::new("/t/a_12.gor")),
            Some(12)
        );
        assert_eq!(
            chunk_index(Path::new("/t/a.gor"), Path::new("/t/a_x.gor")),
            None
        );
    }

    #[test]
    fn restart_continues_after_highest_chunk() {
        let dir = tempfile::tempdir().unwrap();
        let name = dir.path().join("r.gor");
        std::fs::write(dir.path().join("r_0.gor"), "").unwrap();
        std::fs::write(dir.path().join("r_7.gor"), "").unwrap();
        assert_eq!(next_chunk(&name, None), dir.path().join("r_8.gor"));
        assert_eq!(
            next_chunk(&name, Some(&dir.path().join("r_8.gor"))),
            dir.path().join("r_9.gor")
        );
    }

    #[test]
    fn tokens_expand() {
        let template = Template::new("/x/%t-%r-%i-%Y.gor", InstanceId("abcdefgh".into()));
        let msg = Message::new(Meta::new(Kind::Response, "a/b", 1, 0).unwrap(), "x");
        let name = template.render(&msg).to_string_lossy().into_owned();
        assert!(name.starts_with("/x/2-a_b-abcdefgh-20"), "{name}");
        for hostile in ["../../etc/x", "..", "a\0b", "a\tb\n", "..\\..\\x", "..."] {
            let safe = sanitize(hostile);
            assert!(
                !safe.contains("..") && !safe.contains(['/', '\\']),
                "{hostile:?} -> {safe:?}"
            );
            assert!(
                !safe.chars().any(char::is_control),
                "{hostile:?} -> {safe:?}"
            );
        }
        let plain = Template::new("100%.gor", InstanceId("i".into()));
        assert_eq!(plain.render(&msg), Path::new("100%.gor"));
    }
}
