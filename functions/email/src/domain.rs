//! The e-mail function's business rules, written once against [`Mailer`].
//!
//! One mail per event id comes from the idempotency layer in claim mode: the claim is taken
//! before [`Email::handle`] runs, and completed with its [`SentMail`] after. Between the two
//! the mail is out but not yet recorded; the adapters decide what a retry does there (the
//! outbox finds the file it wrote, SES cannot tell, see [`crate::ses`]). What the handler
//! returns is stored as the idempotency result and printed by `replay`, so it names the order,
//! the event and where the mail went (the SES message id), never the recipient's address.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use orders::{EventType, OrderEvent};
use serde::{Deserialize, Serialize};
use sqs_kit::{RecordContext, RecordError, RecordHandler};

use crate::templates;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MailKind {
    /// For `OrderPlaced`.
    Confirmation,
    /// For `OrderCancelled`.
    Cancellation,
}

impl MailKind {
    pub fn of(event_type: EventType) -> Self {
        match event_type {
            EventType::OrderPlaced => MailKind::Confirmation,
            EventType::OrderCancelled => MailKind::Cancellation,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            MailKind::Confirmation => "confirmation",
            MailKind::Cancellation => "cancellation",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [MailKind::Confirmation, MailKind::Cancellation].into_iter().find(|kind| kind.as_str() == text)
    }
}

/// A mail ready to go, whatever carries it.
#[derive(Clone, PartialEq, Eq)]
pub struct Mail {
    pub from: String,
    pub to: String,
    pub subject: String,
    pub text: String,
    pub html: String,
    pub kind: MailKind,
    pub order_id: String,
    pub event_id: String,
}

/// Leaves the addresses out, so that a `{mail:?}` in a log line cannot leak them.
impl fmt::Debug for Mail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mail")
            .field("kind", &self.kind)
            .field("order_id", &self.order_id)
            .field("event_id", &self.event_id)
            .field("subject", &self.subject)
            .finish_non_exhaustive()
    }
}

/// Where a mail went.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Delivery {
    /// Written to the local outbox.
    Outbox { path: String },
    /// Accepted by SES.
    Ses {
        #[serde(rename = "messageId")]
        message_id: String,
    },
}

/// One mail sent for one order event: the handler's output, the idempotency result, and a row
/// of `email outbox`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SentMail {
    pub event_id: String,
    pub order_id: String,
    pub kind: MailKind,
    #[serde(flatten)]
    pub delivery: Delivery,
}

/// Something that sends mail.
///
/// Adapters decide the failure kind, because only they know what their errors mean: a full
/// disk or a throttled API is transient, a message the service refuses is permanent. Their
/// reasons end up in logs and must not contain addresses (see [`sqs_kit::redact::email_addresses`]).
#[async_trait]
pub trait Mailer: Send + Sync + 'static {
    /// Sends `mail`; `time_left` runs until the invocation's deadline, when the claim on the
    /// event lapses and another delivery may send it.
    async fn send(&self, mail: &Mail, time_left: Duration) -> Result<Delivery, RecordError>;
}

pub struct Email {
    mailer: Arc<dyn Mailer>,
    sender: String,
}

impl Email {
    pub fn new(mailer: Arc<dyn Mailer>, sender: String) -> Self {
        Self { mailer, sender }
    }
}

impl RecordHandler for Email {
    type Body = OrderEvent;
    type Output = SentMail;

    async fn handle(&self, order: OrderEvent, cx: RecordContext) -> Result<SentMail, RecordError> {
        let kind = MailKind::of(order.event_type);
        check_recipient(&order.customer_email).map_err(|problem| {
            RecordError::permanent(format!(
                "customerEmail of order {} cannot receive mail: {problem}; the producer must send a plain ASCII address, without a display name or spaces",
                order.order_id
            ))
        })?;
        let rendered = templates::render(kind, &order);
        let mail = Mail {
            from: self.sender.clone(),
            to: order.customer_email,
            subject: rendered.subject,
            text: rendered.text,
            html: rendered.html,
            kind,
            order_id: order.order_id,
            event_id: order.event_id,
        };
        let delivery = self.mailer.send(&mail, cx.invocation.remaining()).await?;
        match &delivery {
            Delivery::Outbox { path } => {
                tracing::info!(kind = kind.as_str(), order_id = %mail.order_id, event_id = %mail.event_id, path, "mail written to the outbox")
            }
            Delivery::Ses { message_id } => {
                tracing::info!(kind = kind.as_str(), order_id = %mail.order_id, event_id = %mail.event_id, message_id, "mail sent through SES")
            }
        }
        Ok(SentMail { event_id: mail.event_id, order_id: mail.order_id, kind, delivery })
    }
}

/// Whether `address` is a plain `local@domain` that both the outbox (as a header) and SES
/// accept. SES takes ASCII addresses only, and a CR or LF would let a customer inject headers
/// into the outbox file. The problem is described without repeating the address.
pub fn check_recipient(address: &str) -> Result<(), &'static str> {
    const SPECIALS: &[char] = &['<', '>', '(', ')', '[', ']', ',', ';', ':', '"', '\\'];
    if address.len() > 254 {
        return Err("it is longer than 254 characters");
    }
    if !address.chars().all(|c| c.is_ascii_graphic()) {
        return Err("it contains spaces, control or non-ASCII characters");
    }
    if address.contains(SPECIALS) {
        return Err("it contains characters that are not allowed in an address");
    }
    let Some((local, domain)) = address.split_once('@') else { return Err("it has no @") };
    if local.is_empty() || domain.is_empty() || domain.contains('@') {
        return Err("it is not of the form local@domain");
    }
    if domain.starts_with('.') || domain.ends_with('.') || domain.contains("..") {
        return Err("its domain is malformed");
    }
    Ok(())
}

/// Checks `EMAIL_SENDER` (`orders@example.com` or `Shop <orders@example.com>`) before the
/// first mail, so that a bad value stops the function at start-up rather than failing every
/// record. The message does not repeat the value.
pub fn check_sender(sender: &str) -> anyhow::Result<()> {
    let address = sender_address(sender);
    let printable = sender.chars().all(|c| c == ' ' || c.is_ascii_graphic());
    if !printable || check_recipient(address).is_err() {
        anyhow::bail!(
            "{} is not a usable From address; set it to an address of a verified SES identity, e.g. orders@example.com or \"Shop <orders@example.com>\"",
            orders::config::EMAIL_SENDER
        );
    }
    Ok(())
}

/// The address part of `Name <address>`, or the whole text.
pub fn sender_address(sender: &str) -> &str {
    match (sender.rfind('<'), sender.rfind('>')) {
        (Some(open), Some(close)) if open < close => &sender[open + 1..close],
        _ => sender.trim(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recipients_must_be_plain_ascii_addresses() {
        assert!(check_recipient("minji@example.com").is_ok());
        assert!(check_recipient("minji+orders@mail.example.co.kr").is_ok());
        assert!(check_recipient("minji@example.com\r\nBcc: all@example.com").is_err());
        assert!(check_recipient("min ji@example.com").is_err());
        assert!(check_recipient("민지@example.com").is_err());
        assert!(check_recipient("Minji <minji@example.com>").is_err());
        assert!(check_recipient("minji@@example.com").is_err());
        assert!(check_recipient("minji@example..com").is_err());
        assert!(check_recipient("@example.com").is_err());
    }

    #[test]
    fn senders_may_have_a_display_name() {
        assert!(check_sender("orders@example.com").is_ok());
        assert!(check_sender("Shop <orders@example.com>").is_ok());
        assert_eq!(sender_address("Shop <orders@example.com>"), "orders@example.com");
        assert!(check_sender("Shop <orders@example.com>\r\nBcc: x@example.com").is_err());
        let error = check_sender("orders").unwrap_err().to_string();
        assert!(error.starts_with("EMAIL_SENDER is not a usable From address"), "{error}");
    }

    #[test]
    fn sent_mail_serializes_in_the_outbox_shape() {
        let sent = SentMail {
            event_id: "e-1".into(),
            order_id: "ORD-1".into(),
            kind: MailKind::Cancellation,
            delivery: Delivery::Ses { message_id: "m-1".into() },
        };
        let json = serde_json::to_string(&sent).unwrap();
        assert_eq!(json, r#"{"eventId":"e-1","orderId":"ORD-1","kind":"cancellation","messageId":"m-1"}"#);
        assert_eq!(serde_json::from_str::<SentMail>(&json).unwrap(), sent);
        let local = r#"{"eventId":"e-1","orderId":"ORD-1","kind":"confirmation","path":".local/outbox/e-1.eml"}"#;
        assert!(matches!(serde_json::from_str::<SentMail>(local).unwrap().delivery, Delivery::Outbox { .. }));
    }
}
