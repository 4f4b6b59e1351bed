//! RFC 5322 / MIME messages for the local outbox: a `multipart/alternative` mail with a
//! `text/plain` and a `text/html` part, and the reading back of its headers for `email outbox`.
//!
//! Written by hand because the format is small and fixed, and a mail crate would be the
//! function's largest dependency for one local file. Bodies are quoted-printable, so that the
//! file stays readable for ASCII text and no line exceeds 76 characters whatever a customer
//! typed; header values from the event are RFC 2047 encoded when they are not plain ASCII, so
//! that a CR or LF in an order id cannot add a header.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};

use crate::domain::{sender_address, Mail};

/// Custom headers that name what a mail is about, so the outbox can be listed from the files.
pub const KIND_HEADER: &str = "X-Mail-Kind";
pub const ORDER_HEADER: &str = "X-Order-Id";
pub const EVENT_HEADER: &str = "X-Event-Id";

/// The whole message, CRLF line endings as RFC 5322 requires.
pub fn message(mail: &Mail, date: SystemTime) -> String {
    let mut out = String::new();
    let mut header = |name: &str, value: &str| {
        let _ = write!(out, "{name}: {value}\r\n");
    };
    header("From", &mail.from);
    header("To", &mail.to);
    header("Subject", &encode_header(&mail.subject, "\r\n "));
    header("Date", &rfc5322_date(date));
    header("Message-ID", &message_id(&mail.event_id, &mail.from));
    header("MIME-Version", "1.0");
    header(KIND_HEADER, mail.kind.as_str());
    header(ORDER_HEADER, &encode_header(&mail.order_id, "\r\n "));
    header(EVENT_HEADER, &encode_header(&mail.event_id, "\r\n "));
    // "=_" never occurs in quoted-printable text, so the boundary cannot collide with a body.
    let boundary = format!("=_order-mail_{}", &hex_digest(&mail.event_id)[..24]);
    header("Content-Type", &format!("multipart/alternative; boundary=\"{boundary}\""));
    out.push_str("\r\nThis is a multi-part message in MIME format.\r\n");
    for (content_type, body) in [("text/plain", &mail.text), ("text/html", &mail.html)] {
        let _ = write!(
            out,
            "\r\n--{boundary}\r\nContent-Type: {content_type}; charset=UTF-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n{}\r\n",
            quoted_printable(body)
        );
    }
    let _ = write!(out, "\r\n--{boundary}--\r\n");
    out
}

/// `<eventId@sender-domain>`: one id per event, so that a receiving system can also see two
/// copies as one mail. An event id that is not safe in a message id is hashed.
fn message_id(event_id: &str, sender: &str) -> String {
    let domain = sender_address(sender).rsplit_once('@').map_or("localhost", |(_, domain)| domain);
    let safe = |text: &str| {
        !text.is_empty()
            && !text.starts_with('.')
            && !text.ends_with('.')
            && !text.contains("..")
            && text.chars().all(|c| c.is_ascii_alphanumeric() || "-._".contains(c))
    };
    let local = if safe(event_id) { event_id.to_owned() } else { hex_digest(event_id)[..32].to_owned() };
    let domain = if safe(domain) { domain } else { "localhost" };
    format!("<{local}@{domain}>")
}

pub fn hex_digest(text: &str) -> String {
    Sha256::digest(text.as_bytes()).iter().fold(String::with_capacity(64), |mut hex, byte| {
        let _ = write!(hex, "{byte:02x}");
        hex
    })
}

/// A header value as is when it is printable ASCII of a sane length; otherwise RFC 2047
/// encoded words (UTF-8, base64), joined by `separator` (folding whitespace in a file, a
/// space where the value must stay on one line).
pub fn encode_header(value: &str, separator: &str) -> String {
    // Spaces at either end are encoded too: a reader trims them off a plain value.
    let plain =
        value.len() <= 900 && value.chars().all(|c| c == ' ' || c.is_ascii_graphic()) && !value.contains("=?") && value.trim() == value;
    if plain {
        return value.to_owned();
    }
    // 45 bytes of UTF-8 make 60 base64 characters: an encoded word of 72, under RFC 2047's 75.
    let mut words = Vec::new();
    let mut chunk = String::new();
    for c in value.chars() {
        if chunk.len() + c.len_utf8() > 45 {
            words.push(format!("=?UTF-8?B?{}?=", base64(chunk.as_bytes())));
            chunk.clear();
        }
        chunk.push(c);
    }
    if !chunk.is_empty() || words.is_empty() {
        words.push(format!("=?UTF-8?B?{}?=", base64(chunk.as_bytes())));
    }
    words.join(separator)
}

/// The value [`encode_header`] encoded, from an unfolded header value.
pub fn decode_header(value: &str) -> String {
    let words: Vec<&str> = value.split_whitespace().collect();
    let encoded = |word: &&str| word.starts_with("=?") && word.ends_with("?=");
    if words.is_empty() || !words.iter().all(encoded) {
        return value.trim().to_owned();
    }
    let mut bytes = Vec::new();
    for word in words {
        let inner = &word[2..word.len() - 2];
        let mut parts = inner.splitn(3, '?');
        let (charset, encoding, text) = (parts.next(), parts.next(), parts.next());
        match (charset, encoding, text.and_then(unbase64)) {
            (Some(charset), Some(encoding), Some(decoded))
                if charset.eq_ignore_ascii_case("UTF-8") && encoding.eq_ignore_ascii_case("B") =>
            {
                bytes.extend(decoded)
            }
            _ => return value.trim().to_owned(),
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

/// The headers of a message (up to the first empty line), unfolded, by lower-case name.
pub fn read_headers(message: &str) -> HashMap<String, String> {
    let mut headers: HashMap<String, String> = HashMap::new();
    let mut current: Option<String> = None;
    for line in message.split('\n') {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.is_empty() {
            break;
        }
        if line.starts_with([' ', '\t']) {
            if let Some(value) = current.as_ref().and_then(|name| headers.get_mut(name)) {
                value.push_str(line);
            }
            continue;
        }
        if let Some((name, value)) = line.split_once(':') {
            let name = name.trim().to_ascii_lowercase();
            headers.insert(name.clone(), value.trim().to_owned());
            current = Some(name);
        }
    }
    headers
}

/// Quoted-printable (RFC 2045 §6.7) of UTF-8 text, CRLF line breaks, lines of at most 76.
pub fn quoted_printable(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + text.len() / 8);
    let lines: Vec<&str> = text.split('\n').collect();
    for (index, line) in lines.iter().enumerate() {
        let line = line.strip_suffix('\r').unwrap_or(line);
        let bytes = line.as_bytes();
        let mut width = 0;
        for (i, &byte) in bytes.iter().enumerate() {
            let last = i + 1 == bytes.len();
            let literal = matches!(byte, b'!'..=b'<' | b'>'..=b'~') || (matches!(byte, b' ' | b'\t') && !last);
            let piece = if literal { (byte as char).to_string() } else { format!("={byte:02X}") };
            // Keep room for the soft break "=" within the 76 columns.
            if width + piece.len() > 75 {
                out.push_str("=\r\n");
                width = 0;
            }
            out.push_str(&piece);
            width += piece.len();
        }
        if index + 1 < lines.len() {
            out.push_str("\r\n");
        }
    }
    out
}

/// Decodes [`quoted_printable`] output (for tests and tools that read the outbox).
#[cfg(test)]
pub fn decode_quoted_printable(text: &str) -> String {
    let mut bytes = Vec::new();
    let text = text.replace("=\r\n", "").replace("\r\n", "\n");
    let raw = text.as_bytes();
    let mut i = 0;
    while i < raw.len() {
        if raw[i] == b'=' && i + 2 < raw.len() {
            let hex = std::str::from_utf8(&raw[i + 1..i + 3]).unwrap();
            bytes.push(u8::from_str_radix(hex, 16).unwrap());
            i += 3;
        } else {
            bytes.push(raw[i]);
            i += 1;
        }
    }
    String::from_utf8(bytes).unwrap()
}

const BASE64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

pub fn base64(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |n, (i, &b)| n | (b as u32) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(BASE64[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn unbase64(text: &str) -> Option<Vec<u8>> {
    let text = text.trim_end_matches('=');
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut buffer, mut bits) = (0u32, 0);
    for c in text.bytes() {
        let value = BASE64.iter().position(|&b| b == c)? as u32;
        buffer = buffer << 6 | value;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
            buffer &= (1 << bits) - 1;
        }
    }
    Some(out)
}

/// `Tue, 24 Nov 2026 09:41:00 +0000`.
pub fn rfc5322_date(time: SystemTime) -> String {
    let secs = time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()) as i64;
    let (days, rest) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (year, month, day) = civil_from_days(days);
    const WEEKDAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    format!(
        "{}, {day:02} {} {year} {:02}:{:02}:{:02} +0000",
        WEEKDAYS[days.rem_euclid(7) as usize],
        MONTHS[(month - 1) as usize],
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

/// Year, month (1–12), day of the proleptic Gregorian calendar for days since 1970-01-01
/// (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::MailKind;
    use std::time::Duration;

    #[test]
    fn dates_are_rfc5322() {
        assert_eq!(rfc5322_date(UNIX_EPOCH), "Thu, 01 Jan 1970 00:00:00 +0000");
        assert_eq!(rfc5322_date(UNIX_EPOCH + Duration::from_secs(1_795_513_260)), "Tue, 24 Nov 2026 09:41:00 +0000");
        assert_eq!(rfc5322_date(UNIX_EPOCH + Duration::from_secs(951_782_400)), "Tue, 29 Feb 2000 00:00:00 +0000");
    }

    #[test]
    fn base64_round_trips() {
        for text in ["", "f", "fo", "foo", "foob", "fooba", "foobar", "주문 ORD-1"] {
            assert_eq!(unbase64(&base64(text.as_bytes())).unwrap(), text.as_bytes());
        }
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
        assert_eq!(base64(b"fooba"), "Zm9vYmE=");
    }

    #[test]
    fn headers_are_encoded_only_when_needed() {
        assert_eq!(encode_header("ORD-1001", " "), "ORD-1001");
        for value in ["ORD-서울-1", "ORD-1\r\nBcc: x", &"긴".repeat(40), "=?UTF-8?B?x?=", "", " ORD-1 "] {
            let encoded = encode_header(value, "\r\n ");
            assert!(encoded.is_ascii(), "{encoded}");
            assert!(encoded.split("\r\n ").all(|word| word.len() <= 75), "{encoded}");
            let unfolded = encoded.replace("\r\n", "");
            let expected = if value.is_empty() { "" } else { value };
            assert_eq!(decode_header(&unfolded), expected);
        }
    }

    #[test]
    fn quoted_printable_keeps_lines_short_and_round_trips() {
        let text = format!("plain line\nend space \n{}\n김민지 = 1\n", "x".repeat(200));
        let encoded = quoted_printable(&text);
        assert!(encoded.split("\r\n").all(|line| line.len() <= 76), "{encoded}");
        assert!(encoded.starts_with("plain line\r\nend space=20\r\n"));
        assert_eq!(decode_quoted_printable(&encoded), text);
    }

    #[test]
    fn messages_have_the_listing_headers_and_both_parts() {
        let mail = Mail {
            from: "Shop <orders@example.com>".into(),
            to: "minji@example.com".into(),
            subject: "Your order ORD-1 is confirmed".into(),
            text: "Hello".into(),
            html: "<p>Hello</p>".into(),
            kind: MailKind::Confirmation,
            order_id: "ORD-1".into(),
            event_id: "e-1".into(),
        };
        let message = message(&mail, UNIX_EPOCH);
        let headers = read_headers(&message);
        assert_eq!(headers["message-id"], "<e-1@example.com>");
        assert_eq!(headers["x-order-id"], "ORD-1");
        assert_eq!(headers["x-mail-kind"], "confirmation");
        assert!(headers["content-type"].starts_with("multipart/alternative; boundary=\"=_order-mail_"));
        assert!(message.contains("Content-Type: text/plain; charset=UTF-8\r\n"));
        assert!(message.contains("Content-Type: text/html; charset=UTF-8\r\n"));
        assert!(message.ends_with("--\r\n"));
    }
}
