//! Helpers for the items of a function's own DynamoDB tables: attribute values from Rust values,
//! typed reads of an item's attributes, and an SDK error in one line.
//!
//! The readers are lenient: an attribute that is missing and one of another type both read as
//! `None`, and the caller decides what that means (a default, or an item it cannot read).

use std::collections::HashMap;

use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::AttributeValue;

/// An item as the SDK returns and takes it: attribute names to values.
pub type Item = HashMap<String, AttributeValue>;

/// A string attribute (`S`).
pub fn s(value: &str) -> AttributeValue {
    AttributeValue::S(value.to_owned())
}

/// A number attribute (`N`).
pub fn n(value: i64) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

/// The string attribute `name` of `item`; `None` when it is missing or not a string.
pub fn text<'a>(item: &'a Item, name: &str) -> Option<&'a str> {
    item.get(name).and_then(|value| value.as_s().ok()).map(String::as_str)
}

/// The number attribute `name` of `item`; `None` when it is missing, not a number, or not an
/// integer an `i64` holds (a DynamoDB number has up to 38 digits and may have decimals).
pub fn number(item: &Item, name: &str) -> Option<i64> {
    item.get(name).and_then(|value| value.as_n().ok()).and_then(|value| value.parse().ok())
}

/// An SDK error in one line: the service's code and message, or for a request that never got an
/// answer (endpoint down, timeout) the chain of causes. The SDK's own debug form dumps the raw
/// HTTP response, which buries the one useful sentence.
pub fn sdk_error<E, R>(error: &SdkError<E, R>) -> String
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    if let Some(service) = error.as_service_error() {
        return format!("{}: {}", service.code().unwrap_or("unknown error"), service.message().unwrap_or("no message"));
    }
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use aws_sdk_dynamodb::error::ErrorMetadata;
    use aws_sdk_dynamodb::operation::get_item::GetItemError;

    use super::*;

    fn item(attributes: &[(&str, AttributeValue)]) -> Item {
        attributes.iter().map(|(name, value)| ((*name).to_owned(), value.clone())).collect()
    }

    #[test]
    fn what_is_written_reads_back() {
        let item = item(&[("name", s("Minji")), ("count", n(-42)), ("largest", n(i64::MAX))]);
        assert_eq!(text(&item, "name"), Some("Minji"));
        assert_eq!(number(&item, "count"), Some(-42));
        assert_eq!(number(&item, "largest"), Some(i64::MAX));
    }

    #[test]
    fn a_missing_attribute_reads_as_none() {
        let empty = Item::new();
        assert_eq!(text(&empty, "name"), None);
        assert_eq!(number(&empty, "count"), None);
    }

    #[test]
    fn an_attribute_of_another_type_reads_as_none() {
        let item = item(&[("digits", s("7")), ("count", n(7)), ("flag", AttributeValue::Bool(true))]);
        assert_eq!(number(&item, "digits"), None, "a string of digits is not a number");
        assert_eq!(text(&item, "count"), None, "a number is not a string");
        assert_eq!(text(&item, "flag"), None);
        assert_eq!(number(&item, "flag"), None);
    }

    #[test]
    fn a_number_an_i64_cannot_hold_reads_as_none() {
        let item = item(&[
            ("past_the_largest", AttributeValue::N("9223372036854775808".into())),
            ("fraction", AttributeValue::N("1.5".into())),
            ("exponent", AttributeValue::N("1E3".into())),
        ]);
        for name in ["past_the_largest", "fraction", "exponent"] {
            assert_eq!(number(&item, name), None, "{name}");
        }
    }

    #[test]
    fn a_service_error_is_its_code_and_message() {
        let refusal = GetItemError::generic(
            ErrorMetadata::builder().code("ResourceNotFoundException").message("Requested resource not found").build(),
        );
        let error: SdkError<GetItemError, ()> = SdkError::service_error(refusal, ());
        assert_eq!(sdk_error(&error), "ResourceNotFoundException: Requested resource not found");

        let bare: SdkError<GetItemError, ()> = SdkError::service_error(GetItemError::generic(ErrorMetadata::builder().build()), ());
        assert_eq!(sdk_error(&bare), "unknown error: no message");
    }

    #[test]
    fn an_unanswered_request_is_its_chain_of_causes() {
        let error: SdkError<GetItemError, ()> = SdkError::timeout_error("no answer within 3 s");
        assert_eq!(sdk_error(&error), "request has timed out: no answer within 3 s");
    }
}
