//! Keeping personal data out of what the toolkit prints.
//!
//! Reasons for failures quote what they were given: serde's type errors quote the value of the
//! field, and services quote the addresses they refuse. A body's e-mail address can land in any
//! field, so the two places a reason leaves the process, the batch layer's log line and a
//! record's outcome in the `replay` summary, pass it through [`email_addresses`].

/// `text` with every e-mail address (any word with an `@`) replaced by `<address>`.
pub fn email_addresses(text: &str) -> String {
    let is_part = |c: char| !(c.is_whitespace() || "<>()[],;:\"'`".contains(c));
    let mut out = String::with_capacity(text.len());
    let mut word = String::new();
    let flush = |word: &mut String, out: &mut String| {
        if word.contains('@') {
            // Keep trailing punctuation: "... a@b.com." reads better as "... <address>."
            let kept = word.trim_end_matches(['.', '!', '?']).len();
            out.push_str("<address>");
            out.push_str(&word[kept..]);
        } else {
            out.push_str(word);
        }
        word.clear();
    };
    for c in text.chars() {
        if is_part(c) {
            word.push(c);
        } else {
            flush(&mut word, &mut out);
            out.push(c);
        }
    }
    flush(&mut word, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_replaced_and_the_rest_kept() {
        assert_eq!(
            email_addresses(
                "Email address is not verified. The following identities failed the check in region US-EAST-1: a@b.com, Shop <c@d.org>."
            ),
            "Email address is not verified. The following identities failed the check in region US-EAST-1: <address>, Shop <<address>>."
        );
        assert_eq!(email_addresses("no address here: 12 @ 3"), "no address here: 12 <address> 3");
        assert_eq!(
            email_addresses(r#"invalid type: string "minji@example.com", expected u32"#),
            r#"invalid type: string "<address>", expected u32"#
        );
        assert_eq!(email_addresses("unknown variant `a@b.c`, expected one of"), "unknown variant `<address>`, expected one of");
    }
}
