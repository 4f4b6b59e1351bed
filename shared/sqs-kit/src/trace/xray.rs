//! The X-Ray tracing header SQS carries in a message's `AWSTraceHeader` system attribute:
//! `Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1`, fields in any
//! order, `Root` required, `Parent` and `Sampled` optional, others (`Lineage`, `Self`) allowed.
//!
//! The producer writes it, so it is parsed strictly: a header that does not follow the format
//! is ignored whole rather than half believed, and no input makes the parser panic.

use std::fmt;

/// Root, Parent, Sampled and a Lineage take about 120 bytes; a header far longer than any X-Ray
/// writes is not read at all, so a forged one costs nothing to turn down.
const MAX_HEADER_LEN: usize = 1024;

/// What a well-formed tracing header says about the producer's span.
///
/// `Parent` and `Sampled` are checked in every build (a header with a bad one is no header),
/// but only the OpenTelemetry link reads them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(not(feature = "opentelemetry"), allow(dead_code))]
pub(crate) struct TraceHeader {
    /// The trace id: `Root`'s 8-digit epoch and 24-digit unique part as one 128-bit number,
    /// which is OpenTelemetry's trace id of the same trace. Never zero.
    pub(crate) trace_id: u128,
    /// `Parent`: the producer's span (segment) id. Never zero.
    pub(crate) parent_id: Option<u64>,
    /// `Sampled=1`: the producer recorded its trace. `0`, `?` (not decided) and no field say no.
    pub(crate) sampled: bool,
}

impl TraceHeader {
    /// The header's fields; `None` when it is longer than [`MAX_HEADER_LEN`], has no valid
    /// `Root`, repeats a field, or has a field that is not `key=value` in visible ASCII.
    pub(crate) fn parse(header: &str) -> Option<Self> {
        if header.len() > MAX_HEADER_LEN {
            return None;
        }
        let (mut root, mut parent, mut sampled) = (None, None, None);
        // Spaces around a field and an empty field (a trailing `;`) are tolerated: some
        // producers write them, and they change no value.
        for field in header.split(';').map(|field| field.trim_matches(' ')).filter(|field| !field.is_empty()) {
            let (key, value) = field.split_once('=')?;
            match key {
                "Root" => set_once(&mut root, parse_root(value)?)?,
                "Parent" => set_once(&mut parent, parse_span_id(value)?)?,
                "Sampled" => set_once(&mut sampled, parse_sampled(value)?)?,
                _ if is_key(key) && value.bytes().all(|byte| byte.is_ascii_graphic()) => {}
                _ => return None,
            }
        }
        Some(Self { trace_id: root?, parent_id: parent, sampled: sampled.unwrap_or(false) })
    }

    /// The trace id in X-Ray's form, `1-<epoch>-<unique>`: what the producer's own lines and
    /// X-Ray show, so what a query joins on.
    pub(crate) fn root(&self) -> impl fmt::Display {
        XrayTraceId(self.trace_id)
    }
}

struct XrayTraceId(u128);

impl fmt::Display for XrayTraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "1-{:08x}-{:024x}", self.0 >> 96, self.0 & UNIQUE_MASK)
    }
}

/// The 96 bits of a trace id after the epoch.
const UNIQUE_MASK: u128 = (1 << 96) - 1;

/// Fills `slot`; `None` when it was filled already (a field given twice).
fn set_once<T>(slot: &mut Option<T>, value: T) -> Option<()> {
    match slot {
        Some(_) => None,
        None => {
            *slot = Some(value);
            Some(())
        }
    }
}

/// `1-` (the format's only version), 8 hex digits, `-`, 24 hex digits.
fn parse_root(value: &str) -> Option<u128> {
    let bytes = value.as_bytes();
    if bytes.len() != 35 || !bytes.starts_with(b"1-") || bytes[10] != b'-' {
        return None;
    }
    let trace_id = hex(&bytes[2..10])? << 96 | hex(&bytes[11..])?;
    (trace_id != 0).then_some(trace_id)
}

fn parse_span_id(value: &str) -> Option<u64> {
    let bytes = value.as_bytes();
    if bytes.len() != 16 {
        return None;
    }
    u64::try_from(hex(bytes)?).ok().filter(|&id| id != 0)
}

fn parse_sampled(value: &str) -> Option<bool> {
    match value {
        "1" => Some(true),
        "0" | "?" => Some(false),
        _ => None,
    }
}

fn is_key(key: &str) -> bool {
    !key.is_empty() && key.bytes().all(|byte| byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_')
}

/// Lower-case hex digits, as X-Ray writes them, at most 32 of them; anything else is `None`.
/// (`from_str_radix` would also take a sign and upper case.)
fn hex(digits: &[u8]) -> Option<u128> {
    if digits.len() > 32 {
        return None;
    }
    digits.iter().try_fold(0u128, |number, &digit| {
        let value = match digit {
            b'0'..=b'9' => digit - b'0',
            b'a'..=b'f' => digit - b'a' + 10,
            _ => return None,
        };
        Some(number << 4 | u128::from(value))
    })
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const EXAMPLE: &str = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1";

    #[test]
    fn the_documented_example_is_read_whole() {
        let header = TraceHeader::parse(EXAMPLE).unwrap();
        assert_eq!(header.trace_id, 0x5759e988_bd862e3fe1be46a994272793);
        assert_eq!(header.parent_id, Some(0x53995c3f42cd8ad8));
        assert!(header.sampled);
        assert_eq!(header.root().to_string(), "1-5759e988-bd862e3fe1be46a994272793");
    }

    #[test]
    fn parent_sampled_and_other_fields_are_optional() {
        let root_only = TraceHeader::parse("Root=1-5759e988-bd862e3fe1be46a994272793").unwrap();
        assert_eq!((root_only.parent_id, root_only.sampled), (None, false));
        let with_lineage =
            "Sampled=?; Lineage=a87bd80c:1|68fd508a:5 ;Root=1-5759e988-bd862e3fe1be46a994272793;Self=1-67891233-abcdef012345678912345678;";
        let header = TraceHeader::parse(with_lineage).unwrap();
        assert_eq!((header.trace_id, header.parent_id, header.sampled), (0x5759e988_bd862e3fe1be46a994272793, None, false));
        // Leading zeros are kept in X-Ray's form.
        let small = TraceHeader::parse("Root=1-00000001-000000000000000000000002").unwrap();
        assert_eq!(small.root().to_string(), "1-00000001-000000000000000000000002");
    }

    #[test]
    fn a_malformed_header_is_ignored_whole() {
        for header in [
            "",
            "Parent=53995c3f42cd8ad8;Sampled=1",
            "Root=2-5759e988-bd862e3fe1be46a994272793",
            "Root=1-5759E988-bd862e3fe1be46a994272793",
            "Root=1-5759e988-bd862e3fe1be46a99427279",
            "Root=1-5759e988-bd862e3fe1be46a9942727931",
            "Root=1-5759e988+bd862e3fe1be46a994272793",
            "Root=1-+759e988-bd862e3fe1be46a994272793",
            "Root=1-00000000-000000000000000000000000",
            "Root=1-5759e988-bd862e3fe1be46a9942727\u{e9}",
            "root=1-5759e988-bd862e3fe1be46a994272793",
            "Root=1-5759e988-bd862e3fe1be46a994272793;Root=1-5759e988-bd862e3fe1be46a994272793",
            "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=0000000000000000",
            "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad",
            "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Parent=53995c3f42cd8ad8",
            "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=2",
            "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1;Sampled=0",
            "Root=1-5759e988-bd862e3fe1be46a994272793;Lineage",
            "Root=1-5759e988-bd862e3fe1be46a994272793;=value",
            "Root=1-5759e988-bd862e3fe1be46a994272793;Lineage=a b",
            "Root=1-5759e988-bd862e3fe1be46a994272793;Lineage=a\nInjected=1",
            "Root=1-5759e988-bd862e3fe1be46a994272793;Caf\u{e9}=1",
        ] {
            assert_eq!(TraceHeader::parse(header), None, "{header:?}");
        }
    }

    #[test]
    fn a_header_longer_than_the_limit_is_not_read() {
        let root = "Root=1-5759e988-bd862e3fe1be46a994272793";
        let at_limit = format!("{root};Pad={}", "x".repeat(MAX_HEADER_LEN - root.len() - ";Pad=".len()));
        assert_eq!(at_limit.len(), MAX_HEADER_LEN);
        assert!(TraceHeader::parse(&at_limit).is_some());
        assert_eq!(TraceHeader::parse(&format!("{at_limit}x")), None);
    }

    /// A header's fields as a producer may write them: in `order`, with another field between.
    fn header_text(trace_id: u128, parent_id: Option<u64>, sampled: Option<&str>, lineage: bool, order: &[usize]) -> String {
        let fields = [
            Some(format!("Root=1-{:08x}-{:024x}", trace_id >> 96, trace_id & UNIQUE_MASK)),
            parent_id.map(|id| format!("Parent={id:016x}")),
            sampled.map(|flag| format!("Sampled={flag}")),
            lineage.then(|| "Lineage=a87bd80c:1|68fd508a:5".to_owned()),
        ];
        order.iter().filter_map(|&index| fields[index].clone()).collect::<Vec<_>>().join(";")
    }

    proptest! {
        #[test]
        fn every_well_formed_header_reads_back_its_fields(
            trace_id in 1u128..,
            parent_id in proptest::option::of(1u64..),
            sampled in proptest::option::of(prop_oneof![Just("0"), Just("1"), Just("?")]),
            lineage: bool,
            order in Just(vec![0usize, 1, 2, 3]).prop_shuffle(),
        ) {
            let text = header_text(trace_id, parent_id, sampled, lineage, &order);
            let header = TraceHeader::parse(&text);
            prop_assert_eq!(header, Some(TraceHeader { trace_id, parent_id, sampled: sampled == Some("1") }), "{}", text);
            let root = header.unwrap().root().to_string();
            prop_assert!(text.contains(&format!("Root={root};")) || text.ends_with(&format!("Root={root}")), "{} has no {}", text, root);
        }

        #[test]
        fn no_string_makes_the_parser_panic_and_a_root_read_was_in_the_header(
            text in prop_oneof![
                any::<String>(),
                // Near misses in the header's own alphabet, so that some of them parse.
                "(Root=1-[0-9a-fA-F]{8}-[0-9a-f]{22,26}|Parent=[0-9a-f]{15,17}|Sampled=[01?2]|[A-Za-z]{0,6}=[ -~]{0,8}|[ ;=\u{e9}])(;[ -~\u{e9}]{0,40}){0,4}",
            ],
        ) {
            if let Some(header) = TraceHeader::parse(&text) {
                prop_assert!(text.contains(&format!("Root={}", header.root())), "{:?} read as {:?}", text, header);
            }
        }

        #[test]
        fn a_changed_character_of_root_or_parent_is_turned_down(position in 0usize..51, replacement in "[g-zA-Z+ _;.\u{e9}]") {
            // The Root value is bytes 5..40 of the example, the Parent value bytes 48..64.
            let index = if position < 35 { 5 + position } else { 48 + position - 35 };
            let mut changed = EXAMPLE.to_owned();
            changed.replace_range(index..index + 1, &replacement);
            prop_assert_eq!(TraceHeader::parse(&changed), None, "{:?}", changed);
        }
    }
}
