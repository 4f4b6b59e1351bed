//! The local adapter: each mail is an `.eml` file in `<state>/outbox/`, named after its event.
//!
//! A file appears whole or not at all (written to a temporary name, synced, then linked into
//! place), and never twice for one event: the link fails if the event's file exists. That
//! matters after a crash between writing the mail and completing the idempotency record: the
//! claim lapses, the retry runs the handler again, and finds the mail already there. A file
//! found there counts as the event's mail only if its `X-Event-Id` names that event.
//!
//! A crash between creating the temporary file and linking it leaves the customer's mail in a
//! dot file; the next run removes it when it opens the outbox.

use std::fs::{self, File};
use std::io::{ErrorKind, Write as _};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use sqs_kit::RecordError;

use crate::domain::{Delivery, Mail, MailKind, Mailer, SentMail};
use crate::mime;

/// The outbox folder inside the state directory.
pub const OUTBOX_DIR: &str = "outbox";

/// The longest file name stem before a hash stands in for the id: with `.eml` and the
/// temporary file's affixes, names stay under the common 255-byte limit.
const MAX_STEM: usize = 200;

pub struct OutboxMailer {
    dir: PathBuf,
}

impl OutboxMailer {
    /// The outbox of `state_dir`, rid of the temporary files earlier runs left behind.
    pub fn open(state_dir: &Path) -> Self {
        // Absolute, so that the path in the idempotency result still means something when
        // read from another directory.
        let state_dir = std::path::absolute(state_dir).unwrap_or_else(|_| state_dir.to_path_buf());
        let dir = state_dir.join(OUTBOX_DIR);
        remove_stale_temporaries(&dir, SystemTime::now());
        Self { dir }
    }
}

#[async_trait]
impl Mailer for OutboxMailer {
    /// No deadline to keep: a retry finds the file this wrote, however late it was written.
    async fn send(&self, mail: &Mail, _time_left: Duration) -> Result<Delivery, RecordError> {
        let message = mime::message(mail, SystemTime::now());
        let dir = self.dir.clone();
        let name = file_name(&mail.event_id);
        let written = tokio::task::spawn_blocking(move || {
            let (path, new) = write_once(&dir, &name, message.as_bytes())?;
            let owner = if new { None } else { event_of(&path)? };
            Ok::<_, std::io::Error>((path, new, owner))
        })
        .await
        .map_err(|e| RecordError::transient(format!("writing the mail to the outbox was interrupted: {e}")))?;
        let (path, new, owner) = written.map_err(|e| {
            RecordError::transient(format!(
                "could not write the mail for event {} to the outbox {}: {e}; check that the state directory is writable and has space",
                mail.event_id,
                self.dir.display()
            ))
        })?;
        if !new {
            // Only a hash collision of two long ids, a case-insensitive file system or a file
            // put there by hand can make the event's file another's; taking it would report
            // this event mailed with the other's mail.
            if owner.as_deref() != Some(mail.event_id.as_str()) {
                let holder = owner.map_or_else(|| "no X-Event-Id".to_owned(), |owner| format!("the mail of event {owner}"));
                return Err(RecordError::permanent(format!(
                    "the outbox file {} for event {} holds {holder}; move that file out of the outbox and replay the event",
                    path.display(),
                    mail.event_id
                )));
            }
            tracing::info!(event_id = %mail.event_id, path = %path.display(), "the outbox already has this event's mail; not writing a second one");
        }
        Ok(Delivery::Outbox { path: path.display().to_string() })
    }
}

/// The file name of an event's mail; no two event ids share one:
/// - `<eventId>.eml` for an id of ASCII letters, digits, `-`, `_` and `.` that does not start
///   with `.` (so no `/`, and no `..` that could write outside the outbox);
/// - `%<percent-encoded id>.eml` for any other id: only these names contain a `%`;
/// - `+<SHA-256 of the id>.eml` when either would be longer than [`MAX_STEM`]: only these
///   start with a `+`. Two ids sharing this name would need a SHA-256 collision, and the
///   file's `X-Event-Id` is checked before it is taken as an event's mail.
fn file_name(event_id: &str) -> String {
    let kept = |byte: u8| byte.is_ascii_alphanumeric() || b"-_.".contains(&byte);
    let stem = if !event_id.is_empty() && !event_id.starts_with('.') && event_id.bytes().all(kept) {
        event_id.to_owned()
    } else {
        event_id.bytes().fold(String::from("%"), |mut stem, byte| {
            if kept(byte) {
                stem.push(char::from(byte));
            } else {
                stem.push_str(&format!("%{byte:02X}"));
            }
            stem
        })
    };
    if stem.len() <= MAX_STEM {
        format!("{stem}.eml")
    } else {
        format!("+{}.eml", mime::hex_digest(event_id))
    }
}

/// Whether `name` is one of the temporary files [`write_once`] creates.
fn is_temporary(name: &str) -> bool {
    name.starts_with('.') && name.ends_with(".tmp")
}

/// Removes the temporary files of `dir` last written before `opened`: a run that crashed
/// mid-write left them, and they hold a customer's address and order. A run writing at the
/// same time may lose a temporary file it wrote just before; it writes it again
/// (see [`write_once`]).
fn remove_stale_temporaries(dir: &Path, opened: SystemTime) {
    // No outbox yet: nothing to remove, and nothing is created.
    let Ok(entries) = fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let temporary = entry.file_name().to_str().is_some_and(is_temporary);
        // `<=`: on file systems with coarse timestamps a file of the previous second may carry
        // the same time as this open.
        if temporary && entry.metadata().and_then(|m| m.modified()).is_ok_and(|written| written <= opened) {
            match fs::remove_file(entry.path()) {
                Ok(()) => tracing::info!(path = %entry.path().display(), "removed a temporary outbox file an interrupted run left behind"),
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) => {
                    tracing::warn!(path = %entry.path().display(), error = %e, "could not remove a temporary outbox file an interrupted run left behind; it holds a customer's mail, delete it by hand")
                }
            }
        }
    }
}

/// Writes `bytes` as `dir/name` unless that file exists; the path, and whether it was written.
fn write_once(dir: &Path, name: &str, bytes: &[u8]) -> std::io::Result<(PathBuf, bool)> {
    fs::create_dir_all(dir)?;
    let path = dir.join(name);
    match link_new(dir, name, &path, bytes) {
        // Another run opening the outbox took the temporary file for a crashed run's.
        Err(e) if e.kind() == ErrorKind::NotFound => link_new(dir, name, &path, bytes),
        result => result,
    }
    .map(|new| (path, new))
}

fn link_new(dir: &Path, name: &str, path: &Path, bytes: &[u8]) -> std::io::Result<bool> {
    if path.exists() {
        return Ok(false);
    }
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    // A dot name without the .eml extension: `email outbox` never lists a half-written file.
    let temporary = dir.join(format!(".{name}.{}-{nanos}.tmp", std::process::id()));
    let result = (|| {
        let mut file = File::create_new(&temporary)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        match fs::hard_link(&temporary, path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(false),
            // Some file systems have no hard links; the idempotency claim already keeps two
            // handlers of one event apart, so checking then renaming is enough there.
            Err(_) if !path.exists() => fs::rename(&temporary, path).map(|()| true),
            Err(e) => Err(e),
        }
    })();
    let _ = fs::remove_file(&temporary);
    if result.as_ref().is_ok_and(|new| *new) {
        // Make the new name durable too; not every platform can open a directory, hence `ok()`.
        if let Ok(directory) = File::open(dir) {
            let _ = directory.sync_all();
        }
    }
    result
}

/// The event id in the `X-Event-Id` header of the mail at `path`.
fn event_of(path: &Path) -> std::io::Result<Option<String>> {
    Ok(listing_headers(path)?(mime::EVENT_HEADER))
}

/// The decoded headers of the mail at `path`, by name.
fn listing_headers(path: &Path) -> std::io::Result<impl Fn(&str) -> Option<String>> {
    let headers = mime::read_headers(&String::from_utf8_lossy(&fs::read(path)?));
    Ok(move |name: &str| headers.get(&name.to_ascii_lowercase()).map(|value| mime::decode_header(value)))
}

/// The mails in the outbox of `state_dir`, by path. Files that are not mails of this function
/// (no listing headers) are skipped with a warning.
pub fn list(state_dir: &Path) -> anyhow::Result<Vec<SentMail>> {
    let state_dir = std::path::absolute(state_dir).unwrap_or_else(|_| state_dir.to_path_buf());
    let dir = state_dir.join(OUTBOX_DIR);
    let entries = match fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => anyhow::bail!("cannot read the outbox {}: {e}", dir.display()),
    };
    let mut paths = Vec::new();
    for entry in entries {
        let path = entry.map_err(|e| anyhow::anyhow!("cannot read the outbox {}: {e}", dir.display()))?.path();
        let visible = path.file_name().and_then(|n| n.to_str()).is_some_and(|n| !n.starts_with('.') && n.ends_with(".eml"));
        if visible && path.is_file() {
            paths.push(path);
        }
    }
    paths.sort();
    let mut mails = Vec::with_capacity(paths.len());
    for path in paths {
        let header = listing_headers(&path).map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
        let kind = header(mime::KIND_HEADER).and_then(|kind| MailKind::parse(&kind));
        match (header(mime::EVENT_HEADER), header(mime::ORDER_HEADER), kind) {
            (Some(event_id), Some(order_id), Some(kind)) => {
                mails.push(SentMail { event_id, order_id, kind, delivery: Delivery::Outbox { path: path.display().to_string() } })
            }
            _ => tracing::warn!(
                path = %path.display(),
                "skipping a file without {}, {} and {} headers: not a mail of this function",
                mime::EVENT_HEADER,
                mime::ORDER_HEADER,
                mime::KIND_HEADER
            ),
        }
    }
    Ok(mails)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_event_id_gets_a_file_name_of_its_own() {
        assert_eq!(file_name("18312976-aa10-5747-a479-1cc7bbd9a7e7"), "18312976-aa10-5747-a479-1cc7bbd9a7e7.eml");
        assert_eq!(file_name("a/b"), "%a%2Fb.eml");
        let long = "x".repeat(MAX_STEM + 1);
        let lookalikes = [
            // "a/b" was event-<its hash>.eml, and this id named that very file.
            format!("event-{}", &mime::hex_digest("a/b")[..40]),
            format!("+{}", mime::hex_digest(&long)),
            "x".repeat(MAX_STEM),
            format!("{long}y"),
            "주문".to_owned(),
            "../../etc/passwd".to_owned(),
        ];
        // Every id of up to four characters drawn from the letters that the three kinds of
        // name are made of.
        let mut ids = vec![String::new()];
        for _ in 0..4 {
            let longer: Vec<String> = ids.iter().flat_map(|id| "a.%/2F+E".chars().map(move |c| format!("{id}{c}"))).collect();
            ids.extend(longer);
        }
        ids.sort();
        ids.dedup();
        ids.extend(lookalikes.iter().cloned());
        ids.extend(["a/b", long.as_str()].map(str::to_owned));
        let names: std::collections::HashSet<String> = ids.iter().map(|id| file_name(id)).collect();
        assert_eq!(names.len(), ids.len(), "two event ids share a file name");
        for name in &names {
            // 255 bytes with the temporary file's affixes: `.`, `.<pid>-<nanos>.tmp`.
            assert!(name.len() + 1 + 1 + 10 + 1 + 20 + 4 <= 255, "{name}");
            assert!(name.ends_with(".eml") && !name.starts_with('.') && !name.contains('/'), "{name}");
        }
    }

    #[test]
    fn only_temporary_files_written_before_the_outbox_was_opened_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["e.eml", ".e.eml.7-1.tmp", "notes.tmp"] {
            fs::write(dir.path().join(name), "To: minji@example.com").unwrap();
        }
        remove_stale_temporaries(dir.path(), UNIX_EPOCH);
        assert_eq!(names(dir.path()), [".e.eml.7-1.tmp", "e.eml", "notes.tmp"], "a run opened earlier may still be writing it");
        remove_stale_temporaries(dir.path(), SystemTime::now());
        assert_eq!(names(dir.path()), ["e.eml", "notes.tmp"]);
        remove_stale_temporaries(&dir.path().join("missing"), SystemTime::now());
        assert!(!dir.path().join("missing").exists());
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        names.sort();
        names
    }

    #[test]
    fn a_second_write_keeps_the_first_file() {
        let dir = tempfile::tempdir().unwrap();
        let (path, new) = write_once(dir.path(), "e.eml", b"first").unwrap();
        assert!(new);
        let (again, new) = write_once(dir.path(), "e.eml", b"second").unwrap();
        assert!(!new);
        assert_eq!(path, again);
        assert_eq!(fs::read(&path).unwrap(), b"first");
        assert_eq!(names(dir.path()), ["e.eml"], "no temporary file is left behind");
    }
}
