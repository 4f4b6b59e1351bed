//! The order e-mails' wording: a subject, a plain-text body and an HTML body per kind.
//!
//! Plain Rust format strings rather than a template engine: two short mails do not justify a
//! dependency, and the compiler checks every placeholder. Every value that comes from the
//! event goes through [`escape`] in the HTML part: order ids, SKUs and addresses are written
//! by producers and customers, not by us.

use std::fmt::Write as _;

use orders::{Address, OrderEvent};

use crate::domain::MailKind;

/// A mail's content, before it is addressed and encoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rendered {
    pub subject: String,
    pub text: String,
    pub html: String,
}

pub fn render(kind: MailKind, order: &OrderEvent) -> Rendered {
    let order_id = &order.order_id;
    let (subject, intro) = match kind {
        MailKind::Confirmation => (
            format!("Your order {order_id} is confirmed"),
            format!("Thank you for your order. We have received order {order_id} and are preparing it for shipment."),
        ),
        MailKind::Cancellation => (
            format!("Your order {order_id} has been cancelled"),
            format!("Your order {order_id} has been cancelled, and nothing from it will be shipped. This is what the order contained."),
        ),
    };
    Rendered { text: text(order, &intro), html: html(order, &subject, &intro), subject }
}

fn text(order: &OrderEvent, intro: &str) -> String {
    let name = &order.shipping_address.name;
    let order_id = &order.order_id;
    let total = money(order.total_amount, &order.currency);
    let mut items = String::new();
    for item in &order.items {
        let unit = money(item.unit_price, &order.currency);
        let amount = money(item.quantity.saturating_mul(item.unit_price), &order.currency);
        let _ = writeln!(items, "  {}  x {}  at {unit}  = {amount}", item.sku, item.quantity);
    }
    let address = address_lines(&order.shipping_address).join("\n  ");
    format!(
        "Hello {name},

{intro}

Order {order_id}
{items}
Total: {total}

Shipping address:
  {address}

This message was sent automatically; replies are not read.
"
    )
}

fn html(order: &OrderEvent, subject: &str, intro: &str) -> String {
    let subject = escape(subject);
    let intro = escape(intro);
    let name = escape(&order.shipping_address.name);
    let order_id = escape(&order.order_id);
    let total = escape(&money(order.total_amount, &order.currency));
    let mut rows = String::new();
    for item in &order.items {
        let sku = escape(&item.sku);
        let quantity = item.quantity;
        let unit = escape(&money(item.unit_price, &order.currency));
        let amount = escape(&money(item.quantity.saturating_mul(item.unit_price), &order.currency));
        let _ = writeln!(
            rows,
            r#"<tr><td>{sku}</td><td align="right">{quantity}</td><td align="right">{unit}</td><td align="right">{amount}</td></tr>"#
        );
    }
    let address = address_lines(&order.shipping_address).iter().map(|line| escape(line)).collect::<Vec<_>>().join("<br>\n");
    format!(
        r#"<!DOCTYPE html>
<html>
<head>
<meta charset="utf-8">
<title>{subject}</title>
</head>
<body style="font-family: sans-serif; color: #222222;">
<p>Hello {name},</p>
<p>{intro}</p>
<table cellpadding="4" style="border-collapse: collapse;">
<caption style="text-align: left;"><strong>Order {order_id}</strong></caption>
<thead>
<tr><th align="left">Item</th><th align="right">Quantity</th><th align="right">Unit price</th><th align="right">Amount</th></tr>
</thead>
<tbody>
{rows}</tbody>
<tfoot>
<tr><td colspan="3" align="right"><strong>Total</strong></td><td align="right"><strong>{total}</strong></td></tr>
</tfoot>
</table>
<p>Shipping address:<br>
{address}</p>
<p style="color: #777777;">This message was sent automatically; replies are not read.</p>
</body>
</html>
"#
    )
}

fn address_lines(address: &Address) -> Vec<String> {
    let mut lines = vec![address.name.clone(), address.line1.clone()];
    lines.extend(address.line2.iter().filter(|line| !line.trim().is_empty()).cloned());
    let city = match address.postal_code.trim() {
        "" => address.city.clone(),
        postal_code => format!("{} {postal_code}", address.city),
    };
    lines.push(city);
    lines.push(address.country.clone());
    lines
}

/// Text made safe to place in HTML element content and in quoted attribute values.
pub fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            c => escaped.push(c),
        }
    }
    escaped
}

/// An amount in the currency's minor unit, written for people: `89,000 KRW`, `1,234.50 USD`.
pub fn money(minor: i64, currency: &str) -> String {
    let decimals = minor_unit_digits(currency);
    let sign = if minor < 0 { "-" } else { "" };
    let magnitude = minor.unsigned_abs();
    let scale = 10u64.pow(decimals);
    let whole = group_thousands(magnitude / scale);
    match decimals {
        0 => format!("{sign}{whole} {currency}"),
        _ => format!("{sign}{whole}.{:0width$} {currency}", magnitude % scale, width = decimals as usize),
    }
}

/// ISO 4217 minor-unit digits: most currencies have 2; these are the exceptions in use.
fn minor_unit_digits(currency: &str) -> u32 {
    match currency {
        "BIF" | "CLP" | "DJF" | "GNF" | "ISK" | "JPY" | "KMF" | "KRW" | "PYG" | "RWF" | "UGX" | "UYI" | "VND" | "VUV" | "XAF" | "XOF"
        | "XPF" => 0,
        "BHD" | "IQD" | "JOD" | "KWD" | "LYD" | "OMR" | "TND" => 3,
        "CLF" | "UYW" => 4,
        _ => 2,
    }
}

fn group_thousands(value: u64) -> String {
    let digits = value.to_string();
    let mut grouped = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(digit);
    }
    grouped
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_uses_the_currency_minor_unit() {
        assert_eq!(money(89_000, "KRW"), "89,000 KRW");
        assert_eq!(money(0, "KRW"), "0 KRW");
        assert_eq!(money(123_456_789, "KRW"), "123,456,789 KRW");
        assert_eq!(money(123_450, "USD"), "1,234.50 USD");
        assert_eq!(money(5, "EUR"), "0.05 EUR");
        assert_eq!(money(1_500, "KWD"), "1.500 KWD");
        assert_eq!(money(-100_000, "JPY"), "-100,000 JPY");
        assert_eq!(money(i64::MIN, "KRW"), "-9,223,372,036,854,775,808 KRW");
    }

    #[test]
    fn escape_covers_markup_and_attribute_quotes() {
        assert_eq!(escape(r#"<script>alert("x&'y")</script>"#), "&lt;script&gt;alert(&quot;x&amp;&#39;y&quot;)&lt;/script&gt;");
        assert_eq!(escape("김민지"), "김민지");
    }
}
