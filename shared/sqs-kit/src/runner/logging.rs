//! Log set-up: JSON lines for CloudWatch in Lambda, readable lines on stderr locally.
//!
//! Logged values come from messages (order and customer ids, message ids, reasons quoting a
//! body), so a body could otherwise write a line break and a fake log line, or a terminal
//! escape sequence, into the readable format. Its field formatter therefore escapes control
//! characters in every value and in the message itself: no call site has to remember to. The
//! JSON format needs nothing more: JSON strings cannot hold a raw control character.

#[cfg(feature = "local")]
mod readable;

use tracing::Subscriber;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

#[cfg(feature = "local")]
pub(crate) use readable::Escaped;

pub(crate) enum Mode {
    Lambda,
    /// The local modes' readable lines; only they write them.
    #[cfg(feature = "local")]
    Local,
}

/// The level comes from `LOG_LEVEL` (as the template sets it) or `RUST_LOG`, default `info`: a
/// level, or comma-separated `target=level` directives (`info,sqs_kit=debug`). A `Targets`
/// filter, not an `EnvFilter`: the latter's span and field directives need a regex engine,
/// which would make every function's `bootstrap.zip` larger.
fn filter() -> Targets {
    use crate::env::{var, LOG_LEVEL, RUST_LOG};
    let directive = var(LOG_LEVEL).or_else(|| var(RUST_LOG)).map_or_else(|| "info".to_owned(), |level| level.to_lowercase());
    targets(&directive).unwrap_or_else(|| Targets::new().with_default(tracing::level_filters::LevelFilter::INFO))
}

/// `directive` as a filter, or `None` when it is not one.
fn targets(directive: &str) -> Option<Targets> {
    directive.parse().ok()
}

pub(crate) fn init(mode: Mode) {
    let _ = match mode {
        // Lambda captures stdout; CloudWatch Logs Insights parses the JSON fields.
        Mode::Lambda => subscriber(mode, filter(), std::io::stdout, false),
        // stdout is reserved for the command's result.
        #[cfg(feature = "local")]
        Mode::Local => subscriber(mode, filter(), std::io::stderr, std::io::IsTerminal::is_terminal(&std::io::stderr())),
    }
    .try_init();
}

/// The subscriber of a mode, writing to `writer` (colours only with `ansi`, and only locally).
fn subscriber<W>(mode: Mode, filter: Targets, writer: W, ansi: bool) -> Box<dyn Subscriber + Send + Sync>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    // The JSON format never writes escape sequences, whatever `ansi` says. The builder's own
    // level (INFO unless told) lets everything through: `filter` decides.
    let builder = tracing_subscriber::fmt().with_max_level(tracing::level_filters::LevelFilter::TRACE).with_writer(writer).with_ansi(ansi);
    match mode {
        Mode::Lambda => Box::new(builder.json().with_current_span(true).with_span_list(false).finish().with(filter)),
        #[cfg(feature = "local")]
        Mode::Local => Box::new(builder.fmt_fields(readable::EscapedFields).finish().with(filter)),
    }
}

/// Everything a subscriber wrote, for tests to read.
#[cfg(test)]
#[derive(Clone, Default)]
struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

#[cfg(test)]
impl Captured {
    fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

#[cfg(test)]
impl std::io::Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
impl<'w> MakeWriter<'w> for Captured {
    type Writer = Captured;

    fn make_writer(&'w self) -> Self::Writer {
        self.clone()
    }
}

/// The JSON lines Lambda mode's subscriber, filtered by `filter`, writes while `run` runs on
/// this thread.
#[cfg(test)]
pub(crate) fn lambda_lines(filter: &str, run: impl FnOnce()) -> Vec<serde_json::Value> {
    let captured = Captured::default();
    let filter = targets(filter).expect("the test's filter is a directive");
    tracing::subscriber::with_default(subscriber(Mode::Lambda, filter, captured.clone(), false), run);
    captured.text().lines().map(|line| serde_json::from_str(line).expect("Lambda mode writes JSON lines")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A line break, a fake line, a colour, BEL, DEL, C1 (NEL, CSI), bidi, a line separator, a tab.
    const FORGED: &str =
        "ORD-1\n2026-01-01T00:00:00Z  INFO fake line\r\x1b[31mred\x1b[0m\u{7}\u{7f}\u{85}\u{9b}\u{202e}\u{2066}\u{2028}\ttab";

    #[test]
    fn control_and_bidi_characters_are_escaped_and_the_rest_kept() {
        assert_eq!(
            Escaped(FORGED).to_string(),
            r"ORD-1\n2026-01-01T00:00:00Z  INFO fake line\r\u{1b}[31mred\u{1b}[0m\u{7}\u{7f}\u{85}\u{9b}\u{202e}\u{2066}\u{2028}\ttab"
        );
        let plain = "주문 ORD-1001 für Łukasz — 10% \\ \"quoted\" 🎉";
        assert_eq!(Escaped(plain).to_string(), plain);
        assert_eq!(Escaped("").to_string(), "");
    }

    /// The lines `mode` writes for a record span and an event, each carrying `value` the ways
    /// call sites log it: Display, Debug, a string, an error, and inside the message.
    fn log_lines(mode: Mode, ansi: bool, value: &str) -> String {
        let captured = Captured::default();
        let subscriber = subscriber(mode, targets("info").unwrap(), captured.clone(), ansi);
        tracing::subscriber::with_default(subscriber, || {
            let error = std::io::Error::other(value.to_owned());
            let span = tracing::error_span!("record", message_id = %value);
            let _entered = span.enter();
            let error = &error as &dyn std::error::Error;
            tracing::info!(order_id = %value, customer_id = ?value, reason = value, error, "order {value} placed");
        });
        captured.text()
    }

    #[test]
    fn the_readable_format_escapes_every_value_and_the_message() {
        for ansi in [false, true] {
            let text = log_lines(Mode::Local, ansi, FORGED);
            assert_eq!(text.lines().count(), 1, "one event, one line: {text:?}");
            assert!(text.ends_with('\n'));
            let line = text.trim_end_matches('\n');
            for bad in ['\r', '\u{85}', '\u{9b}', '\u{202e}', '\u{2066}', '\u{2028}', '\u{7}', '\t'] {
                assert!(!line.contains(bad), "{bad:?} in {line:?}");
            }
            // Display, Debug (already escaped by Debug), the error, the span field, the message.
            assert_eq!(line.matches(r"fake line\r\u{1b}[31m").count(), 6, "{line:?}");
            if ansi {
                // The formatter's own styles are kept; the value's red (an INFO line has none) is not.
                assert!(line.contains("\x1b[3morder_id\x1b[0m"), "{line:?}");
                assert!(!line.contains("\x1b[31m"), "{line:?}");
            } else {
                assert!(!line.contains('\x1b'), "{line:?}");
                assert!(line.contains(r"order_id=ORD-1\n2026-01-01T00:00:00Z  INFO fake line\r\u{1b}[31m"), "{line:?}");
            }
        }
    }

    #[test]
    fn the_readable_format_is_unchanged_for_ordinary_values() {
        let line = log_lines(Mode::Local, false, "ORD-1001");
        assert!(
            line.contains(
                r#"record{message_id=ORD-1001}: sqs_kit::runner::logging::tests: order ORD-1001 placed order_id=ORD-1001 customer_id="ORD-1001" reason="ORD-1001" error=ORD-1001"#
            ),
            "{line:?}"
        );
    }

    #[test]
    fn the_level_takes_target_directives_and_a_bad_one_is_refused() {
        let lines = lambda_lines("warn,sqs_kit=debug", || {
            tracing::debug!(target: "sqs_kit::batch", "kept");
            tracing::debug!(target: "hyper", "dropped");
            tracing::warn!(target: "hyper", "kept too");
        });
        let messages: Vec<&str> = lines.iter().map(|line| line["fields"]["message"].as_str().unwrap()).collect();
        assert_eq!(messages, ["kept", "kept too"]);
        assert!(targets("sqs_kit=loud").is_none());
    }

    #[test]
    fn the_json_format_keeps_values_exact_on_one_line() {
        let text = log_lines(Mode::Lambda, false, FORGED);
        assert_eq!(text.lines().count(), 1, "one event, one line: {text:?}");
        assert!(!text.contains(['\x1b', '\r', '\u{7}']), "{text:?}");
        let line: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(line["fields"]["order_id"], FORGED);
        assert_eq!(line["fields"]["message"], format!("order {FORGED} placed"));
        assert_eq!(line["span"]["message_id"], FORGED);
    }
}
