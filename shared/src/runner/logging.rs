//! Log set-up: JSON lines for CloudWatch in Lambda, readable lines on stderr locally.
//!
//! Logged values come from messages (order and customer ids, message ids, reasons quoting a
//! body), so a body could otherwise write a line break and a fake log line, or a terminal
//! escape sequence, into the readable format. Its field formatter therefore escapes control
//! characters in every value and in the message itself: no call site has to remember to. The
//! JSON format needs nothing more: JSON strings cannot hold a raw control character.

use std::fmt::{self, Write as _};

use tracing::field::{Field, Visit};
use tracing::Subscriber;
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FormatFields, MakeWriter};
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::EnvFilter;

pub(crate) enum Mode {
    Lambda,
    Local,
}

/// The level comes from `LOG_LEVEL` (as the template sets it) or `RUST_LOG`, default `info`.
fn filter() -> EnvFilter {
    let directive = std::env::var("LOG_LEVEL")
        .or_else(|_| std::env::var("RUST_LOG"))
        .map(|level| level.to_lowercase())
        .unwrap_or_else(|_| "info".to_owned());
    EnvFilter::try_new(&directive).unwrap_or_else(|_| EnvFilter::new("info"))
}

pub(crate) fn init(mode: Mode) {
    let _ = match mode {
        // Lambda captures stdout; CloudWatch Logs Insights parses the JSON fields.
        Mode::Lambda => subscriber(mode, filter(), std::io::stdout, false),
        // stdout is reserved for the command's result.
        Mode::Local => subscriber(mode, filter(), std::io::stderr, std::io::IsTerminal::is_terminal(&std::io::stderr())),
    }
    .try_init();
}

/// The subscriber of a mode, writing to `writer` (colours only with `ansi`, and only locally).
fn subscriber<W>(mode: Mode, filter: EnvFilter, writer: W, ansi: bool) -> Box<dyn Subscriber + Send + Sync>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(writer);
    match mode {
        Mode::Lambda => Box::new(builder.json().with_current_span(true).with_span_list(false).finish()),
        Mode::Local => Box::new(builder.with_ansi(ansi).fmt_fields(EscapedFields).finish()),
    }
}

/// The readable format's fields, laid out like tracing-subscriber's default (the message, then
/// `name=value` pairs), with every value and the message passed through [`Escaped`]. Span
/// fields are formatted by it too.
struct EscapedFields;

impl<'writer> FormatFields<'writer> for EscapedFields {
    fn format_fields<R: RecordFields>(&self, writer: Writer<'writer>, fields: R) -> fmt::Result {
        let mut visitor = EscapingVisitor { writer, first: true, result: Ok(()) };
        fields.record(&mut visitor);
        visitor.result
    }
}

struct EscapingVisitor<'writer> {
    writer: Writer<'writer>,
    first: bool,
    result: fmt::Result,
}

impl EscapingVisitor<'_> {
    fn write(&mut self, field: &Field, value: fmt::Arguments<'_>) {
        let name = field.name();
        // Metadata of `log` records, which the event line already shows.
        if self.result.is_err() || name.starts_with("log.") {
            return;
        }
        let separator = if std::mem::take(&mut self.first) { "" } else { " " };
        let name = name.strip_prefix("r#").unwrap_or(name);
        self.result = match name {
            "message" => write!(self.writer, "{separator}{}", Escaped(value)),
            // The default format's styles: italic name, dimmed `=`.
            _ if self.writer.has_ansi_escapes() => {
                write!(self.writer, "{separator}\x1b[3m{name}\x1b[0m\x1b[2m=\x1b[0m{}", Escaped(value))
            }
            _ => write!(self.writer, "{separator}{name}={}", Escaped(value)),
        };
    }
}

impl Visit for EscapingVisitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.write(field, format_args!("{value}"));
        } else {
            self.write(field, format_args!("{value:?}"));
        }
    }

    fn record_error(&mut self, field: &Field, error: &(dyn std::error::Error + 'static)) {
        self.write(field, format_args!("{}", ErrorChain(error)));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.write(field, format_args!("{value:?}"));
    }
}

/// An error and its causes, `error: cause: cause`.
struct ErrorChain<'e>(&'e (dyn std::error::Error + 'static));

impl fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(cause) = source {
            write!(f, ": {cause}")?;
            source = cause.source();
        }
        Ok(())
    }
}

/// Displays a value with the characters that could forge or hide log text escaped: control
/// characters (C0 including line breaks and ESC, DEL, C1) as `\n`, `\r`, `\t` or `\u{1b}`, the
/// Unicode line and paragraph separators, and the bidirectional embeddings, overrides and
/// isolates (U+202A to U+202E, U+2066 to U+2069), which can make a line read backwards.
pub(crate) struct Escaped<T>(pub T);

impl<T: fmt::Display> fmt::Display for Escaped<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(Escaping(f), "{}", self.0)
    }
}

fn needs_escape(c: char) -> bool {
    c.is_control() || matches!(c, '\u{2028}' | '\u{2029}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// A writer that escapes what it passes on (see [`Escaped`]).
struct Escaping<'a, W: fmt::Write + ?Sized>(&'a mut W);

impl<W: fmt::Write + ?Sized> fmt::Write for Escaping<'_, W> {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        let mut rest = text;
        while let Some((at, c)) = rest.char_indices().find(|&(_, c)| needs_escape(c)) {
            self.0.write_str(&rest[..at])?;
            match c {
                '\n' => self.0.write_str("\\n")?,
                '\r' => self.0.write_str("\\r")?,
                '\t' => self.0.write_str("\\t")?,
                c => write!(self.0, "\\u{{{:x}}}", u32::from(c))?,
            }
            rest = &rest[at + c.len_utf8()..];
        }
        self.0.write_str(rest)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

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

    /// Everything a subscriber wrote.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'w> MakeWriter<'w> for Captured {
        type Writer = Captured;

        fn make_writer(&'w self) -> Self::Writer {
            self.clone()
        }
    }

    /// The lines `mode` writes for a record span and an event, each carrying `value` the ways
    /// call sites log it: Display, Debug, a string, an error, and inside the message.
    fn log_lines(mode: Mode, ansi: bool, value: &str) -> String {
        let captured = Captured::default();
        let subscriber = subscriber(mode, EnvFilter::new("info"), captured.clone(), ansi);
        tracing::subscriber::with_default(subscriber, || {
            let error = std::io::Error::other(value.to_owned());
            let span = tracing::error_span!("record", message_id = %value);
            let _entered = span.enter();
            let error = &error as &dyn std::error::Error;
            tracing::info!(order_id = %value, customer_id = ?value, reason = value, error, "order {value} placed");
        });
        let bytes = captured.0.lock().unwrap().clone();
        String::from_utf8(bytes).unwrap()
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
