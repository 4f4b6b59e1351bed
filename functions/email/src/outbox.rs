//! The local adapter: each mail is an `.eml` file in `<state>/outbox/`, named after its event.
//!
//! A file appears whole or not at all (written to a temporary name, synced, then linked into
//! place), and never twice for one event: the link fails if `<eventId>.eml` exists. That
//! matters after a crash between writing the mail and completing the idempotency record: the
//! claim lapses, the retry runs the handler again, and finds the mail already there.

use std::fs::{self, File};
use std::io::{ErrorKind, Write as _};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use sqs_kit::RecordError;

use crate::domain::{Delivery, Mail, MailKind, Mailer, SentMail};
use crate::mime;

/// The outbox folder inside the state directory.
pub const OUTBOX_DIR: &str = "outbox";

pub struct OutboxMailer {
    dir: PathBuf,
}

impl OutboxMailer {
    pub fn new(state_dir: &Path) -> Self {
        // Absolute, so that the path in the idempotency result still means something when
        // read from another directory.
        let state_dir = std::path::absolute(state_dir).unwrap_or_else(|_| state_dir.to_path_buf());
        Self { dir: state_dir.join(OUTBOX_DIR) }
    }
}

#[async_trait]
impl Mailer for OutboxMailer {
    async fn send(&self, mail: &Mail) -> Result<Delivery, RecordError> {
        let message = mime::message(mail, SystemTime::now());
        let dir = self.dir.clone();
        let name = file_name(&mail.event_id);
        let written = tokio::task::spawn_blocking(move || write_once(&dir, &name, message.as_bytes()))
            .await
            .map_err(|e| RecordError::transient(format!("writing the mail to the outbox was interrupted: {e}")))?;
        let (path, new) = written.map_err(|e| {
            RecordError::transient(format!(
                "could not write the mail for event {} to the outbox {}: {e}; check that the state directory is writable and has space",
                mail.event_id,
                self.dir.display()
            ))
        })?;
        if !new {
            tracing::info!(event_id = %mail.event_id, path = %path.display(), "the outbox already has this event's mail; not writing a second one");
        }
        Ok(Delivery::Outbox { path: path.display().to_string() })
    }
}

/// `<eventId>.eml`, or a name derived from it when the id is not a safe file name (a `/` or
/// `..` in an event id must not write outside the outbox).
fn file_name(event_id: &str) -> String {
    let safe = !event_id.is_empty()
        && event_id.len() <= 200
        && !event_id.starts_with('.')
        && event_id.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    if safe {
        format!("{event_id}.eml")
    } else {
        format!("event-{}.eml", &mime::hex_digest(event_id)[..40])
    }
}

/// Writes `bytes` as `dir/name` unless that file exists; the path, and whether it was written.
fn write_once(dir: &Path, name: &str, bytes: &[u8]) -> std::io::Result<(PathBuf, bool)> {
    fs::create_dir_all(dir)?;
    let path = dir.join(name);
    if path.exists() {
        return Ok((path, false));
    }
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    // A dot name without the .eml extension: `email outbox` never lists a half-written file.
    let temporary = dir.join(format!(".{name}.{}-{nanos}.tmp", std::process::id()));
    let result = (|| {
        let mut file = File::create_new(&temporary)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        match fs::hard_link(&temporary, &path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(false),
            // Some file systems have no hard links; the idempotency claim already keeps two
            // handlers of one event apart, so checking then renaming is enough there.
            Err(_) if !path.exists() => fs::rename(&temporary, &path).map(|()| true),
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
    result.map(|new| (path, new))
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
        let text = fs::read(&path).map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
        let headers = mime::read_headers(&String::from_utf8_lossy(&text));
        let header = |name: &str| headers.get(&name.to_ascii_lowercase()).map(|value| mime::decode_header(value));
        let kind = header(mime::KIND_HEADER).and_then(|kind| MailKind::parse(&kind));
        match (header(mime::EVENT_HEADER), header(mime::ORDER_HEADER), kind) {
            (Some(event_id), Some(order_id), Some(kind)) => mails.push(SentMail {
                event_id,
                order_id,
                kind,
                delivery: Delivery::Outbox { path: path.display().to_string() },
            }),
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
    fn unsafe_event_ids_get_derived_file_names() {
        assert_eq!(file_name("18312976-aa10-5747-a479-1cc7bbd9a7e7"), "18312976-aa10-5747-a479-1cc7bbd9a7e7.eml");
        for id in ["../../etc/passwd", ".hidden", "a/b", "x".repeat(300).as_str(), "주문"] {
            let name = file_name(id);
            assert!(name.starts_with("event-") && name.ends_with(".eml") && !name.contains('/'), "{name}");
        }
        assert_ne!(file_name("a/b"), file_name("a/c"));
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
        let names: Vec<_> = fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, ["e.eml"], "no temporary file is left behind");
    }
}
