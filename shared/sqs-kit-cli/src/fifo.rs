//! The ids of a FIFO message, taken from its body where the operator points (`--group-by`,
//! `--dedup-by`): what `publish` sends and what `event` writes into its records.

use clap::Args;
use serde_json::Value;

use super::aws::sha256_hex;

/// The message group of a FIFO message whose body gives none: without `--group-by`, every
/// message is in it, and so in one ordered sequence.
pub(super) const DEFAULT_GROUP: &str = "default";

#[derive(Clone, Debug, Args)]
pub(super) struct FifoArgs {
    /// FIFO only: the field of each body that is its MessageGroupId, as a JSON Pointer such as
    /// /customerId or /order/tenant (a string or a number). A body without it, or not JSON, and
    /// every body without this flag: the group "default".
    #[arg(long, value_name = "POINTER", value_parser = Pointer::parse)]
    group_by: Option<Pointer>,
    /// FIFO only: the field of each body that is its MessageDeduplicationId, as a JSON Pointer
    /// such as /eventId. A body without it, and every body without this flag: the SHA-256 of
    /// the body.
    #[arg(long, value_name = "POINTER", value_parser = Pointer::parse)]
    dedup_by: Option<Pointer>,
}

/// A message's `MessageGroupId` and `MessageDeduplicationId`.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct FifoIds {
    pub group: String,
    pub deduplication: String,
}

impl FifoArgs {
    /// The ids of the message with body `text`.
    pub(super) fn ids(&self, text: &str) -> FifoIds {
        let pointed = self.group_by.is_some() || self.dedup_by.is_some();
        let body: Option<Value> = pointed.then(|| serde_json::from_str(text).ok()).flatten();
        let field = |pointer: &Option<Pointer>| body.as_ref().zip(pointer.as_ref()).and_then(|(body, pointer)| pointer.id_in(body));
        FifoIds {
            group: field(&self.group_by).unwrap_or_else(|| DEFAULT_GROUP.to_owned()),
            deduplication: field(&self.dedup_by).unwrap_or_else(|| sha256_hex(text.as_bytes())),
        }
    }
}

/// A JSON Pointer (RFC 6901) to a field of a message body.
#[derive(Clone, Debug)]
pub(super) struct Pointer(String);

impl Pointer {
    /// The flags' value parser: a pointer to a field, so not the empty pointer (the whole body),
    /// and `~` only in the escapes `~0` and `~1`.
    fn parse(text: &str) -> Result<Pointer, String> {
        let expected = "expected a JSON Pointer to a field of the body, such as /customerId";
        if !text.starts_with('/') {
            return Err(format!("{expected}: it starts with /"));
        }
        if text.split('~').skip(1).any(|after| !after.starts_with(['0', '1'])) {
            return Err(format!("{expected}: ~ stands only in ~0 (for ~) and ~1 (for /)"));
        }
        Ok(Pointer(text.to_owned()))
    }

    /// The field as a FIFO id: a string or a number of 1 to 128 characters, alphanumeric or
    /// punctuation, as SQS and SNS take them.
    fn id_in(&self, body: &Value) -> Option<String> {
        let value = match body.pointer(&self.0)? {
            Value::String(text) => text.clone(),
            Value::Number(number) => number.to_string(),
            _ => return None,
        };
        let usable = !value.is_empty() && value.len() <= 128 && value.chars().all(|c| c.is_ascii_graphic());
        usable.then_some(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(group_by: Option<&str>, dedup_by: Option<&str>) -> FifoArgs {
        let pointer = |text: Option<&str>| text.map(|text| Pointer::parse(text).unwrap());
        FifoArgs { group_by: pointer(group_by), dedup_by: pointer(dedup_by) }
    }

    #[test]
    fn ids_come_from_the_fields_pointed_at_or_fall_back() {
        let order = r#"{"eventId": "e-1", "customerId": "CUST-42", "tenant": {"id": 7, "a/b": "slash", "m~n": "tilde"}}"#;
        let ids = |group, dedup| args(group, dedup).ids(order);
        assert_eq!(ids(Some("/customerId"), Some("/eventId")), FifoIds { group: "CUST-42".into(), deduplication: "e-1".into() });
        assert_eq!(ids(Some("/tenant/id"), None).group, "7");
        assert_eq!(ids(Some("/tenant/a~1b"), None).group, "slash");
        assert_eq!(ids(Some("/tenant/m~0n"), None).group, "tilde");
        let fallback = FifoIds { group: DEFAULT_GROUP.into(), deduplication: sha256_hex(order.as_bytes()) };
        assert_eq!(ids(None, None), fallback, "without the flags: one group, the body's hash");
        assert_eq!(ids(Some("/missing"), Some("/missing")), fallback);
        assert_eq!(ids(Some("/tenant"), Some("/tenant/a~1b/deeper")), fallback, "an object is no id");

        let per_customer = args(Some("/customerId"), Some("/eventId"));
        assert_eq!(per_customer.ids("not json").group, DEFAULT_GROUP);
        assert_eq!(per_customer.ids("not json").deduplication, sha256_hex(b"not json"));
        assert_eq!(per_customer.ids(r#"{"customerId": "has space"}"#).group, DEFAULT_GROUP);
        assert_eq!(per_customer.ids(r#"{"customerId": ""}"#).group, DEFAULT_GROUP);
        assert_eq!(per_customer.ids(&format!(r#"{{"customerId": "{}"}}"#, "x".repeat(129))).group, DEFAULT_GROUP);
        assert_eq!(per_customer.ids(r#"{"customerId": true}"#).group, DEFAULT_GROUP);
    }

    #[test]
    fn a_pointer_names_a_field() {
        for good in ["/customerId", "/a/0/b", "/a~0b", "/a~1b", "/"] {
            assert!(Pointer::parse(good).is_ok(), "{good}");
        }
        for (bad, why) in [("customerId", "it starts with /"), ("", "it starts with /"), ("/a~2", "~0 (for ~)"), ("/a~", "~1 (for /)")] {
            let error = Pointer::parse(bad).unwrap_err();
            assert!(error.starts_with("expected a JSON Pointer to a field of the body, such as /customerId"), "{bad}: {error}");
            assert!(error.contains(why), "{bad}: {error}");
        }
    }
}
